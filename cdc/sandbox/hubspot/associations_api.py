"""Association routes per API version (fact sheet §4): default and labelled, single and batch, read and
archive: v4 (``legacy``), 2026-03 and 2026-09, with their differences (`cdc.sandbox.hubspot.versions`:
archive answers 204 in v4 and 200 with a batch body since 2026-03, 2026-09 folds errors into its 200s and
has no single-record read, its labels name no object type ids).

Object types in paths are names or type ids. Ids in v4 read bodies are numbers (``toObjectId``), in
batch inputs strings, as HubSpot shows them. Labels are the HubSpot-defined ones only. Batch results come
in a seeded random order (`Context.order`).

A batch create's refused inputs come back in a 207 (2026-09: the 200) as ``StandardError`` entries
(the associations v4 spec's ``BatchResponseLabelsBetweenObjectPairWithErrors``: ``status``, ``category``,
``message``, ``context: {key: [string]}``, ``errors``, ``links``). The spec names no context keys, and
nothing in it ties an error to an input pair; the one answer seen from HubSpot for invalid association
ids (HubSpot/hubspot-api-nodejs issue 646) is "One or more associations are invalid" with
``context: {"INVALID_OBJECT_IDS": ["CONTACT=<id> is not valid"], "objectId": [...], "objectType": [...]}``.
So one such entry lists every invalid id of the batch, and a caller learns which pairs were written
from the results (``fromObjectId``/``toObjectId``), not from the errors.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, endpoint, json_body, json_object, path_type
from cdc.sandbox.hubspot.associations import HUBSPOT_DEFINED, known_types, label_of, unlabeled
from cdc.sandbox.hubspot.objects import ObjectType
from cdc.sandbox.hubspot.render import batch_envelope
from cdc.sandbox.hubspot.store import iso
from cdc.sandbox.hubspot.versions import ApiVersion

__all__ = ["association_routes"]

READ_LIMIT, CREATE_LIMIT, PAGE_LIMIT = 1000, 2000, 500


def _types_json(type_ids: set[int]) -> list[dict[str, Any]]:
    return [{"category": HUBSPOT_DEFINED, "typeId": t, "label": label_of(t)} for t in sorted(type_ids)]


def _labels_json(
    source: ObjectType, target: ObjectType, type_ids: set[int], *, named: bool
) -> list[dict[str, Any]]:
    """``AssociationSpecWithLabel``s: with ``fromObjectTypeId``/``toObjectTypeId`` before 2026-09."""
    ends = {"fromObjectTypeId": source.type_id, "toObjectTypeId": target.type_id} if named else {}
    return [{**spec, **ends} for spec in _types_json(type_ids)]


def _spec_ids(source: ObjectType, target: ObjectType, raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise errors.bad_request("A list of association types is required")
    ids = []
    for spec in raw:
        if not isinstance(spec, dict) or spec.get("associationTypeId") not in known_types(
            source.name, target.name
        ):
            raise errors.bad_request(
                f"Invalid association type {spec} from {source.singular} to {target.singular}"
            )
        ids.append(int(spec["associationTypeId"]))
    return ids


def _pair(
    source: ObjectType, from_id: str, target: ObjectType, to_id: str, type_ids: set[int]
) -> dict[str, Any]:
    return {
        "fromObjectTypeId": source.type_id,
        "fromObjectId": int(from_id),
        "toObjectTypeId": target.type_id,
        "toObjectId": int(to_id),
        "labels": [label for t in sorted(type_ids) if (label := label_of(t))],
    }


def _batch_inputs(body: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise errors.bad_request("inputs must be a list of objects")
    if len(inputs) > limit:
        raise errors.batch_too_large(limit, len(inputs))
    return inputs


def _invalid_ids(found: list[tuple[ObjectType, str]]) -> dict[str, Any]:
    """One error for every id of the batch that names no record (HubSpot's shape, see the docstring)."""
    found = list(dict.fromkeys(found))
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "One or more associations are invalid",
        "context": {
            "INVALID_OBJECT_IDS": [f"{ot.singular.upper()}={i} is not valid" for ot, i in found],
            "objectId": [i for _, i in found],
            "objectType": [ot.singular.upper() for ot, _ in found],
        },
        "errors": [],
        "links": {},
    }


def _refused(error: errors.HubSpotError) -> dict[str, Any]:
    """Any other refused input (an association type the pair does not have) as a ``StandardError``."""
    return {
        "status": "error",
        "category": error.fields.get("category", "VALIDATION_ERROR"),
        "message": error.message,
        "context": error.fields.get("context") or {},
        "errors": [],
        "links": {},
    }


def association_routes(ctx: Context, version: ApiVersion) -> list[Route]:  # noqa: C901, PLR0915 -- one closure per endpoint
    store = ctx.store
    many = f"{version.associations}/{{fromObjectType}}/{{toObjectType}}"
    one = f"{version.object_associations}/{{objectType}}/{{objectId}}/associations"

    def archived(started: str) -> Response:
        """v4: 204, no body; 2026-03 and 2026-09: 200 with a batch body (``BatchResponse``/``Void``)."""
        if not version.dated:
            return Response(status_code=204)
        return JSON(batch_envelope([], [], started, iso(ctx.clock.epoch_ms())))

    def types_of(request: Request) -> tuple[ObjectType, ObjectType]:
        source = path_type(
            request, "fromObjectType" if "fromObjectType" in request.path_params else "objectType"
        )
        target = path_type(request, "toObjectType")
        if not known_types(source.name, target.name):
            raise errors.bad_request(f"No associations between {source.name} and {target.name}")
        return source, target

    def default_results(
        source: ObjectType, from_id: str, target: ObjectType, to_id: str
    ) -> list[dict[str, Any]]:
        return [
            {
                "from": {"id": from_id},
                "to": {"id": to_id},
                "associationSpec": {
                    "associationCategory": HUBSPOT_DEFINED,
                    "associationTypeId": unlabeled(a.name, b.name),
                },
            }
            for a, b, from_id, to_id in ((source, target, from_id, to_id), (target, source, to_id, from_id))
        ]

    async def put_default(request: Request) -> Response:
        source, target = types_of(request)
        left, right = store.associate(
            source,
            request.path_params["objectId"],
            target,
            request.path_params["toObjectId"],
            [],
            ctx.app_actor,
        )
        started = iso(ctx.clock.epoch_ms())
        return JSON(batch_envelope(default_results(source, left.id, target, right.id), [], started, started))

    async def put_labelled(request: Request) -> Response:
        source, target = types_of(request)
        type_ids = _spec_ids(source, target, await json_body(request))
        with store.lock:
            left, right = store.associate(
                source,
                request.path_params["objectId"],
                target,
                request.path_params["toObjectId"],
                type_ids,
                ctx.app_actor,
            )
            held = store.associations.types_between((source.name, left.id), (target.name, right.id))
        return JSON(_pair(source, left.id, target, right.id, held), 201)

    async def read_one(request: Request) -> Response:
        source, target = types_of(request)
        limit = min(int(request.query_params.get("limit", str(PAGE_LIMIT))), PAGE_LIMIT)
        after = int(request.query_params.get("after", "0") or 0)
        found = sorted(
            store.associations_of(source, request.path_params["objectId"], target).items(),
            key=lambda item: int(item[0]),
        )
        page = [(i, t) for i, t in found if int(i) >= after]
        body: dict[str, Any] = {
            "results": [{"toObjectId": int(i), "associationTypes": _types_json(t)} for i, t in page[:limit]]
        }
        if len(page) > limit:
            body["paging"] = {"next": {"after": page[limit][0]}}
        return JSON(body)

    async def delete_one(request: Request) -> Response:
        source, target = types_of(request)
        store.disassociate(
            source,
            request.path_params["objectId"],
            target,
            request.path_params["toObjectId"],
            None,
            ctx.app_actor,
        )
        return Response(status_code=204)

    def missing_ids(
        source: ObjectType, from_id: str, target: ObjectType, to_id: str
    ) -> list[tuple[ObjectType, str]]:
        return [(ot, i) for ot, i in ((source, from_id), (target, to_id)) if store.get(ot, i) is None]

    async def batch_default(request: Request) -> Response:
        source, target = types_of(request)
        started, results, errs = iso(ctx.clock.epoch_ms()), [], []
        invalid: list[tuple[ObjectType, str]] = []
        for item in _batch_inputs(await json_object(request), CREATE_LIMIT):
            from_id, to_id = str(item.get("from", {}).get("id")), str(item.get("to", {}).get("id"))
            with store.lock:
                if missing := missing_ids(source, from_id, target, to_id):
                    invalid += missing
                    continue
                try:
                    left, right = store.associate(source, from_id, target, to_id, [], ctx.app_actor)
                except errors.HubSpotError as error:
                    errs.append(_refused(error))
                    continue
            results += default_results(source, left.id, target, right.id)
        errs = ([_invalid_ids(invalid)] if invalid else []) + errs
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, iso(ctx.clock.epoch_ms())),
            version.batch_status(200, errs),
        )

    async def batch_create(request: Request) -> Response:
        source, target = types_of(request)
        started, results, errs = iso(ctx.clock.epoch_ms()), [], []
        invalid: list[tuple[ObjectType, str]] = []
        for item in _batch_inputs(await json_object(request), CREATE_LIMIT):
            from_id, to_id = str(item.get("from", {}).get("id")), str(item.get("to", {}).get("id"))
            with store.lock:
                if missing := missing_ids(source, from_id, target, to_id):
                    invalid += missing
                    continue
                try:
                    type_ids = _spec_ids(source, target, item.get("types"))
                    left, right = store.associate(source, from_id, target, to_id, type_ids, ctx.app_actor)
                except errors.HubSpotError as error:
                    errs.append(_refused(error))
                    continue
                held = store.associations.types_between((source.name, left.id), (target.name, right.id))
            results.append(_pair(source, left.id, target, right.id, held))
        errs = ([_invalid_ids(invalid)] if invalid else []) + errs
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, iso(ctx.clock.epoch_ms())),
            version.batch_status(version.association_create_status, errs),
        )

    async def batch_read(request: Request) -> Response:
        source, target = types_of(request)
        started, results, missing = iso(ctx.clock.epoch_ms()), [], []
        for item in _batch_inputs(await json_object(request), READ_LIMIT):
            from_id = str(item.get("id"))
            record = store.get(source, from_id)
            if record is None:
                missing.append(from_id)
                continue
            found = sorted(store.associations_of(source, record.id, target).items(), key=lambda i: int(i[0]))
            results.append(
                {
                    "from": {"id": record.id},
                    "to": [{"toObjectId": int(i), "associationTypes": _types_json(t)} for i, t in found],
                }
            )
        errs = (
            [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not find {source.singular} objects: {', '.join(missing)}",
                    "context": {"fromIds": missing},
                }
            ]
            if missing
            else []
        )
        return JSON(
            batch_envelope(ctx.shuffled(results), errs, started, iso(ctx.clock.epoch_ms())),
            version.batch_status(200, errs),
        )

    async def batch_archive(request: Request) -> Response:
        source, target = types_of(request)
        started = iso(ctx.clock.epoch_ms())
        for item in _batch_inputs(await json_object(request), CREATE_LIMIT):
            from_id = str(item.get("from", {}).get("id"))
            for to in item.get("to") or []:
                store.disassociate(source, from_id, target, str(to.get("id")), None, ctx.app_actor)
        return archived(started)

    async def batch_archive_labels(request: Request) -> Response:
        source, target = types_of(request)
        started = iso(ctx.clock.epoch_ms())
        for item in _batch_inputs(await json_object(request), CREATE_LIMIT):
            type_ids = _spec_ids(source, target, item.get("types"))
            store.disassociate(
                source,
                str(item.get("from", {}).get("id")),
                target,
                str(item.get("to", {}).get("id")),
                type_ids,
                ctx.app_actor,
            )
        return archived(started)

    async def labels(request: Request) -> Response:
        source, target = types_of(request)
        known = set(known_types(source.name, target.name))
        return JSON({"results": _labels_json(source, target, known, named=version.labels_name_object_types)})

    api = [
        ("PUT", f"{one}/default/{{toObjectType}}/{{toObjectId}}", put_default),
        ("PUT", f"{one}/{{toObjectType}}/{{toObjectId}}", put_labelled),
        ("DELETE", f"{one}/{{toObjectType}}/{{toObjectId}}", delete_one),
        ("POST", f"{many}/batch/associate/default", batch_default),
        ("POST", f"{many}/batch/create", batch_create),
        ("POST", f"{many}/batch/read", batch_read),
        ("POST", f"{many}/batch/archive", batch_archive),
        ("POST", f"{many}/batch/labels/archive", batch_archive_labels),
        *(("GET", f"{root}/{{fromObjectType}}/{{toObjectType}}/labels", labels) for root in version.labels),
    ]
    if version.reads_one_record_associations:  # absent from the 2026-09 draft
        api.append(("GET", f"{one}/{{toObjectType}}", read_one))
    return [Route(path, endpoint(ctx, handler), methods=[method]) for method, path, handler in api]
