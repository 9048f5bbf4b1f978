"""CRM object routes for contacts, companies and deals, per API version: single, batch, search and merge.

Shapes and limits from fact sheet §3: ids are strings, batch endpoints take at most 100 inputs, a
duplicate id in a batch is a 400 for the whole request, unknown ids in batch read/update are a 207 with
``OBJECT_NOT_FOUND`` listing them. A failing input of a batch create/update/upsert fails the whole
request unless every input carries a unique ``objectWriteTraceId``; then the others are written and the
failures come back in a 207 under ``context.objectWriteTraceId``. Writes are checked before any is made.
2026-09 answers those 207s as 200/201 with the errors folded in, and refuses a write that breaks an
admin's validation rule, a batch whole (`cdc.sandbox.hubspot.versions`, `cdc.sandbox.hubspot.rules`).

Results come in a (seeded) random order: HubSpot does not answer batches in input order (see
`Context.order`). A written record's ``objectWriteTraceId`` is not echoed: the documented 207 example
(fact sheet §3.3, D-ERR) carries it only on the error, so only errors name their input by it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors, search
from cdc.sandbox.hubspot.api import JSON, Context, endpoint, json_object, path_type, query_list
from cdc.sandbox.hubspot.associations import known_types
from cdc.sandbox.hubspot.objects import OBJECT_TYPES, ObjectType
from cdc.sandbox.hubspot.render import batch_envelope, record_json
from cdc.sandbox.hubspot.store import Actor, Record, Store, iso
from cdc.sandbox.hubspot.versions import ApiVersion

__all__ = ["create_with_associations", "crm_routes", "privacy_delete"]

BATCH_LIMIT = 100
HISTORY_BATCH_LIMIT = 50
"""A batch read with ``propertiesWithHistory`` takes fewer inputs: history "will reduce the maximum number of
objects that can be read by a single request" (the objects spec, 2026-09), with no number given; 50 is
this emulator's guess (UNVERIFIED), so a caller that sends the plain 100 with history fails here too."""
SEARCH_BODY_LIMIT = 3000


def _inputs(body: dict[str, Any], key: str | None = "id") -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise errors.bad_request("inputs must be a list of objects")
    if len(inputs) > BATCH_LIMIT:
        raise errors.batch_too_large(BATCH_LIMIT, len(inputs))
    if key:
        ids = [str(i.get(key)) for i in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise errors.duplicate_ids(duplicates)
    return inputs


def _traced(inputs: list[dict[str, Any]]) -> bool:
    """Multi-status is on when every input has its own ``objectWriteTraceId`` (D-ERR)."""
    traces = [i.get("objectWriteTraceId") for i in inputs]
    return all(isinstance(t, str) and t for t in traces) and len(set(traces)) == len(traces)


def _error_entry(error: errors.HubSpotError, trace: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "status": "error",
        "category": error.fields.get("category", "VALIDATION_ERROR"),
        "message": error.message,
        "context": {"objectWriteTraceId": [trace]},
    }
    if "errors" in error.fields:
        entry["errors"] = error.fields["errors"]
    return entry


def _not_found_entry(ot: ObjectType, ids: list[str], verb: str = "get") -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not {verb} some {ot.label.upper()} objects, they may be deleted or not exist. "
        "Check that ids are valid.",
        "context": {"ids": ids},
    }


def _association_specs(store: Store, ot: ObjectType, raw: Any) -> list[tuple[ObjectType, str, list[int]]]:
    """``associations`` of a create body: the target type follows from the type id (§3.2)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise errors.bad_request("associations must be a list")
    specs = []
    for item in raw:
        to_id = str((item.get("to") or {}).get("id", "")) if isinstance(item, dict) else ""
        type_ids = (
            [t.get("associationTypeId") for t in item.get("types", [])] if isinstance(item, dict) else []
        )
        target = next(
            (
                t
                for t in OBJECT_TYPES.values()
                if type_ids and all(i in known_types(ot.name, t.name) for i in type_ids)
            ),
            None,
        )
        if target is None or not to_id:
            raise errors.bad_request(f"Invalid association: {item}")
        if store.get(target, to_id) is None:
            raise errors.bad_request(f"Association target {target.singular} {to_id} does not exist")
        specs.append((target, to_id, [int(i) for i in type_ids]))
    return specs


def create_with_associations(store: Store, ot: ObjectType, body: dict[str, Any], actor: Actor) -> Record:
    with store.lock:
        values = body.get("properties") or {}
        if not isinstance(values, dict):
            raise errors.bad_request("properties must be an object")
        specs = _association_specs(store, ot, body.get("associations"))
        record = store.create(ot, values, actor)
        for target, to_id, type_ids in specs:
            store.associate(ot, record.id, target, to_id, type_ids, actor)
        return record


def privacy_delete(store: Store, ot: ObjectType, body: dict[str, Any], actor: Actor) -> Response:
    """``POST .../contacts/gdpr-delete`` ``{objectId, idProperty?: "email"}``: 204 (fact sheet hubspot.md,
    SPEC). Contacts only (no other type has the path: 404); an email not found is blocklisted, still 204;
    an id not found is a 404 (not documented: the harsh answer)."""
    if ot.name != "contacts":
        raise errors.not_found(f"gdpr-delete is not available for {ot.name}")
    object_id, id_property = body.get("objectId"), body.get("idProperty")
    if not isinstance(object_id, str | int) or isinstance(object_id, bool) or str(object_id) == "":
        raise errors.bad_request("objectId is required", objectId=["required"])
    if id_property not in {None, "email", "hs_object_id"}:
        raise errors.bad_request(f"idProperty must be email, not {id_property!r}")
    found = store.privacy_delete(ot, str(object_id), actor, id_property=id_property)
    if not found and id_property != "email":
        raise errors.object_not_found(str(object_id))
    return Response(status_code=204)


def crm_routes(ctx: Context, version: ApiVersion) -> list[Route]:  # noqa: C901, PLR0915 -- one closure per endpoint
    store = ctx.store
    prefix = f"{version.objects}/{{objectType}}"

    def obey_rules(ot: ObjectType, writes: list[tuple[dict[str, str] | None, dict[str, Any]]]) -> None:
        """2026-09: refuse the request when a write breaks an admin's validation rule."""
        if version.enforces_validation_rules:
            ctx.rules.check(ot, writes)

    def now() -> str:
        return iso(ctx.clock.epoch_ms())

    async def list_objects(request: Request) -> Response:
        ot = path_type(request)
        limit = int(request.query_params.get("limit", "10"))
        if not 0 < limit <= BATCH_LIMIT:
            raise errors.bad_request(f"limit must be between 1 and {BATCH_LIMIT}")
        after = request.query_params.get("after", "0")
        archived = request.query_params.get("archived", "false") == "true"
        records = [r for r in store.all(ot, archived=archived) if int(r.id) >= int(after or 0)]
        props = query_list(request, "properties")
        body: dict[str, Any] = {"results": [record_json(store, r, props) for r in records[:limit]]}
        if len(records) > limit:
            body["paging"] = {"next": {"after": records[limit].id}}
        return JSON(body)

    async def create(request: Request) -> Response:
        ot, body = path_type(request), await json_object(request)
        obey_rules(ot, [(None, _values(body))])
        record = create_with_associations(store, ot, body, ctx.app_actor)
        return JSON(record_json(store, record, everything=True), 201)

    async def read(request: Request) -> Response:
        ot = path_type(request)
        object_id = request.path_params["objectId"]
        archived = request.query_params.get("archived", "false") == "true"
        record = store.get(
            ot, object_id, id_property=request.query_params.get("idProperty"), archived=archived
        )
        if record is None:
            raise errors.object_not_found(object_id)
        return JSON(
            record_json(
                store,
                record,
                query_list(request, "properties"),
                with_history=query_list(request, "propertiesWithHistory"),
                associations=query_list(request, "associations"),
            )
        )

    async def update(request: Request) -> Response:
        ot = path_type(request)
        body = await json_object(request)
        values = body.get("properties")
        if not isinstance(values, dict):
            raise errors.bad_request("properties must be an object")
        object_id, id_property = request.path_params["objectId"], request.query_params.get("idProperty")
        with store.lock:
            before = store.require(ot, object_id, id_property=id_property)
            obey_rules(ot, [(before.properties, values)])
            record = store.update(ot, object_id, values, ctx.app_actor, id_property=id_property)
        return JSON(record_json(store, record, everything=True))

    async def archive(request: Request) -> Response:
        store.archive(path_type(request), request.path_params["objectId"], ctx.app_actor)
        return Response(status_code=204)

    async def batch_read(request: Request) -> Response:
        ot = path_type(request)
        body = await json_object(request)
        inputs = _inputs(body)
        archived = request.query_params.get("archived", "false") == "true"
        id_property = body.get("idProperty")
        if id_property and id_property != "hs_object_id" and not store.is_unique(ot, id_property):
            raise errors.bad_request(f"{id_property} is not a unique property and cannot be an idProperty")
        started, results, missing = now(), [], []
        props = body.get("properties") if isinstance(body.get("properties"), list) else None
        history = (
            body.get("propertiesWithHistory") if isinstance(body.get("propertiesWithHistory"), list) else None
        )
        if history and len(inputs) > HISTORY_BATCH_LIMIT:
            raise errors.batch_too_large(HISTORY_BATCH_LIMIT, len(inputs))
        for item in inputs:
            record = store.get(ot, str(item.get("id")), id_property=id_property, archived=archived)
            if record is None:
                missing.append(str(item.get("id")))
            else:
                results.append(record_json(store, record, props, with_history=history))
        errs = [_not_found_entry(ot, missing)] if missing else []
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, now()), version.batch_status(200, errs)
        )

    async def batch_create(request: Request) -> Response:
        ot = path_type(request)
        inputs = _inputs(await json_object(request), key=None)
        started, traced = now(), _traced(inputs)
        results, errs = [], []
        with store.lock:
            obey_rules(ot, [(None, _values(item)) for item in inputs])
            plan = _plan_creates(store, ot, inputs, traced)
            for item, error in plan:
                if error is not None:
                    errs.append(_error_entry(error, item["objectWriteTraceId"]))
                    continue
                record = create_with_associations(store, ot, item, ctx.app_actor)
                results.append(record_json(store, record, everything=True))
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, now()), version.batch_status(201, errs)
        )

    async def batch_update(request: Request) -> Response:
        ot = path_type(request)
        inputs = _inputs(await json_object(request))
        started, traced = now(), _traced(inputs)
        results, errs, missing = [], [], []
        with store.lock:
            checked: list[tuple[dict[str, Any], Record | None, errors.HubSpotError | None]] = []
            writes: list[tuple[dict[str, str] | None, dict[str, Any]]] = []
            for item in inputs:
                object_id, id_property = str(item.get("id")), item.get("idProperty")
                record = store.get(ot, object_id, id_property=id_property)
                # Old ids of merged records work with single PATCH only (fact sheet 3.2).
                if record is None or (not id_property and record.id != object_id):
                    missing.append(object_id)
                    checked.append((item, None, None))
                    continue
                writes.append((record.properties, _values(item)))
                try:
                    store.check(ot, item.get("properties") or {}, record.id)
                    checked.append((item, record, None))
                except errors.HubSpotError as failure:
                    if not traced:
                        raise
                    checked.append((item, record, failure))
            obey_rules(ot, writes)
            for item, record, problem in checked:
                if record is None:
                    continue
                if problem is not None:
                    errs.append(_error_entry(problem, item["objectWriteTraceId"]))
                    continue
                updated = store.update(ot, record.id, item.get("properties") or {}, ctx.app_actor)
                results.append(record_json(store, updated, everything=True))
        if missing:
            errs.insert(0, _not_found_entry(ot, missing, "update"))
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, now()), version.batch_status(200, errs)
        )

    async def batch_upsert(request: Request) -> Response:
        ot = path_type(request)
        inputs = _inputs(await json_object(request))
        started, traced = now(), _traced(inputs)
        results, errs = [], []
        with store.lock:
            planned: list[
                tuple[dict[str, Any], dict[str, Any], Record | None, errors.HubSpotError | None]
            ] = []
            for item in inputs:
                id_property = item.get("idProperty")
                if not id_property or not store.is_unique(ot, id_property):
                    raise errors.bad_request("idProperty must name a unique property, e.g. email")
                values = {**(item.get("properties") or {}), id_property: str(item.get("id"))}
                existing = store.get(ot, str(item.get("id")), id_property=id_property)
                try:
                    store.check(ot, values, existing.id if existing else "")
                    planned.append((item, values, existing, None))
                except errors.HubSpotError as failure:
                    if not traced:
                        raise
                    planned.append((item, values, existing, failure))
            obey_rules(ot, [(e.properties if e else None, v) for _, v, e, _ in planned])
            for item, values, existing, problem in planned:
                if problem is not None:
                    errs.append(_error_entry(problem, item["objectWriteTraceId"]))
                    continue
                if existing is None:
                    record, new = store.create(ot, values, ctx.app_actor), True
                else:
                    record, new = store.update(ot, existing.id, values, ctx.app_actor), False
                results.append({**record_json(store, record, everything=True), "new": new})
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, now()), version.batch_status(200, errs)
        )

    async def batch_archive(request: Request) -> Response:
        ot = path_type(request)
        for item in _inputs(await json_object(request)):
            store.archive(ot, str(item.get("id")), ctx.app_actor)
        return Response(status_code=204)

    async def gdpr_delete(request: Request) -> Response:
        return privacy_delete(store, path_type(request), await json_object(request), ctx.app_actor)

    async def do_search(request: Request) -> Response:
        ot = path_type(request)
        raw = await request.body()
        if len(raw.decode("utf-8", "replace")) > SEARCH_BODY_LIMIT:
            raise errors.bad_request(
                f"The search request body must be at most {SEARCH_BODY_LIMIT} characters"
            )
        body = _parse(raw)
        parsed = search.parse_request(body)
        with store.lock:
            records = {r.id: r for r in store.records[ot.name].values() if not r.archived}  # run() sorts
            types = {name: prop.type for name, prop in store.properties[ot.name].items()}
            page = search.run([(i, r.properties) for i, r in records.items()], parsed, types, ot.defaults)
            props = list(parsed.properties) if parsed.properties is not None else None
            results = [record_json(store, records[i], props) for i in page.ids]
        out: dict[str, Any] = {"total": page.total, "results": results}
        if page.next_after:
            out["paging"] = {"next": {"after": page.next_after}}
        return JSON(out)

    async def merge(request: Request) -> Response:
        ot = path_type(request)
        body = await json_object(request)
        primary, other = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if primary is None or other is None:
            raise errors.bad_request("primaryObjectId and objectIdToMerge are required")
        record = store.merge(ot, str(primary), str(other), ctx.app_actor)
        return JSON(record_json(store, record, everything=True))

    api = [
        ("GET", prefix, list_objects),
        ("POST", prefix, create),
        ("POST", f"{prefix}/batch/read", batch_read),
        ("POST", f"{prefix}/batch/create", batch_create),
        ("POST", f"{prefix}/batch/update", batch_update),
        ("POST", f"{prefix}/batch/upsert", batch_upsert),
        ("POST", f"{prefix}/batch/archive", batch_archive),
        ("POST", f"{prefix}/merge", merge),
        ("POST", f"{prefix}/gdpr-delete", gdpr_delete),
        ("GET", f"{prefix}/{{objectId}}", read),
        ("PATCH", f"{prefix}/{{objectId}}", update),
        ("DELETE", f"{prefix}/{{objectId}}", archive),
    ]
    routes = [Route(path, endpoint(ctx, handler), methods=[method]) for method, path, handler in api]
    routes.insert(0, Route(f"{prefix}/search", endpoint(ctx, do_search, search=True), methods=["POST"]))
    return routes


def _values(item: dict[str, Any]) -> dict[str, Any]:
    """An input's ``properties`` (a malformed one is refused later, by the store's checks)."""
    values = item.get("properties")
    return values if isinstance(values, dict) else {}


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise errors.bad_request("Invalid input JSON on line 1") from None
    if not isinstance(body, dict):
        raise errors.bad_request("Invalid input: a JSON object is required")
    return body


def _plan_creates(
    store: Store, ot: ObjectType, inputs: list[dict[str, Any]], traced: bool
) -> list[tuple[dict[str, Any], errors.HubSpotError | None]]:
    """Checks every input (and unique values across the batch) before anything is written."""
    plan: list[tuple[dict[str, Any], errors.HubSpotError | None]] = []
    claimed: dict[tuple[str, str], int] = {}
    for index, item in enumerate(inputs):
        try:
            values = item.get("properties") or {}
            clean = store.check(ot, values)
            _association_specs(store, ot, item.get("associations"))
            for name, value in clean.items():
                if value and store.is_unique(ot, name):
                    key = (name, value.lower())
                    if key in claimed:
                        raise errors.bad_request(
                            f"Duplicate value {value} for unique property {name} in batch"
                        )
                    claimed[key] = index
            plan.append((item, None))
        except errors.HubSpotError as error:
            if not traced:
                raise
            plan.append((item, error))
    return plan
