"""HubSpot behind the sync engine's `CrmGateway` port, over the CRM objects and associations batch APIs of
the client's API version (``hubspot.api_version``: the paths of `cdc.hubspot.paths`).

Calls per operation (batches of at most 100 inputs, fact sheet §3.2):

- ``read``: one ``batch/read`` per 100 ids, plus one association ``batch/read`` per related object
  type per 1,000 ids when association keys are asked for;
- ``find``: ``email`` on contacts is a ``batch/read`` with ``idProperty=email`` (consistent at once, unlike
  search, and case-insensitive); any other property is a search (``EQ``, or ``IN`` for several values,
  through the client's 5-per-second limiter), so it lags behind recent writes;
- ``lookup("owner_email", ids)``: none while the cached owner list is fresh, else one owners list call
  per 500 owners (active and archived);
- ``write``: one ``batch/create`` / ``batch/update`` / ``batch/archive`` per 100 ops of one object type and
  kind, then for updates one association ``batch/create`` per related object type (associations to set)
  and one association ``batch/read`` + ``batch/labels/archive`` pair (associations to clear). Creates
  carry their associations in the create body. A create that copies a Dataverse record (``origin_id``) is a
  ``batch/upsert`` by the unique property ``cdc_d365id`` instead, when the object has it (one properties GET
  per object type and process tells), with its associations set afterwards as for updates: the same create
  sent twice then updates the record the first one made.

Every create and update input carries an ``objectWriteTraceId`` (its position in ``ops``), so a bad
input comes back next to the written ones: in a 207 (legacy, 2026-03), or as ``errors[]`` folded into a
200 (the 2026-09 spec documents no 207; every answer's ``errors`` are read, whatever its status). Should
HubSpot refuse a whole batch anyway (a 400 for one input, as 2026-09 answers a write an admin's validation
rule refuses), the batch is split in halves until the bad input stands alone, and that input's error is
HubSpot's: ``VALIDATION_ERROR (jobtitle): <the rule's message>``. Results come in no set
order and written records need not echo their trace id: updates are matched by id, creates and upserts
by what identifies each input (`cdc.hubspot._results`), never by position; two creates that
nothing tells apart (no unique property, the same values) go in different batches, and a create left
without a result is read back by its unique property (one ``batch/read``) before it is linked, never
created again.

Errors: throttles, 5xx, network errors and refused credentials become `CrmUnavailableError`: for reads
once the client's own retries are spent (so build the client with a short `RetryPolicy`, see
:func:`open_hubspot_gateway`), for writes at once, since HubSpot has no If-Match: a write held back and
sent again later would overwrite what a user wrote meanwhile, so the runtime reads and plans the batch
again after the pause. A refused input is that op's ``WriteOutcome.error``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import orjson

from cdc.hubspot._results import Sent, pair_results, sent_values, told_apart
from cdc.hubspot.client import HubSpotClient, hubspot_client
from cdc.hubspot.errors import FatalError, RequestError, RetriableError
from cdc.hubspot.events import MERGED_IDS, merged_ids
from cdc.hubspot.history import own_values
from cdc.hubspot.paths import Endpoint, plural
from cdc.hubspot.search import MAX_BODY_CHARS
from cdc.metrics import Metrics
from cdc.owner_lists import OWNERS_REFRESH_S, OwnerList
from cdc.settings import HubSpotSettings, require
from cdc.wire import chunks, packed, parse_time, short
from consumers.concurrent import concurrently
from consumers.config import DATAVERSE_ID_PROPERTY, OWNER_EMAIL
from consumers.owners import Owner
from consumers.ports import (
    CrmUnavailableError,
    FieldInfo,
    Record,
    WriteKind,
    WriteOp,
    WriteOutcome,
)
from consumers.retries import RetryPolicy
from streams.codec import Scalar
from streams.keys import SourceSystem

__all__ = ["DATAVERSE_ID_PROPERTY", "GATEWAY_POLICY", "HubSpotGateway", "open_hubspot_gateway"]

log = logging.getLogger(__name__)
# DATAVERSE_ID_PROPERTY (consumers.config): a unique-valued text property (`cdc provision` creates it), the id
# of the linked Dataverse record; creates upsert by it where the object has it.

BATCH_LIMIT = 100
HISTORY_BATCH_LIMIT = 50
"""Inputs per ``batch/read`` with ``propertiesWithHistory``: asking for history "will reduce the maximum
number of objects that can be read by a single request" (the objects spec, 2026-09, which names no
number). 50, half the plain limit, is a guess (UNVERIFIED); the sandbox refuses more."""
SEARCH_VALUES = 100
"""Values per ``IN`` filter at most, as many as a batch read takes (the fact sheets name no cap of their own
for ``IN``; UNVERIFIED); the body's 3,000-character limit (§3.5) usually binds first."""

SEARCH_PAGE = 200
ASSOCIATION_INPUTS = 1000
HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
GATEWAY_POLICY = RetryPolicy(retries=3, throttles=1, wait_max_s=5.0, retry_after_max_s=30.0)
"""Short client retries: the engine pauses the whole batch on `CrmUnavailableError` instead."""


def parse_key(key: str) -> tuple[str, int]:
    """``company:1`` -> (``companies``, 1)."""
    name, _, type_id = key.partition(":")
    if not name or not type_id.isdigit():
        raise ValueError(f"a HubSpot association key is <object>:<type id>, not {key!r}")
    return plural(name), int(type_id)


def wire_value(value: Scalar) -> str:
    """A property value as HubSpot takes it: strings; ``""`` clears."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@contextlib.contextmanager
def _system_errors() -> Iterator[None]:
    try:
        yield
    except RetriableError as error:
        raise CrmUnavailableError(SourceSystem.HUBSPOT, str(error), retry_after=error.retry_after) from error
    except FatalError as error:  # 401 / 403: credentials or scopes; never the record's fault
        raise CrmUnavailableError(SourceSystem.HUBSPOT, str(error)) from error


def _refusal(refused: RequestError) -> str:
    """A write HubSpot refused whole, as the record's error: its error body as :func:`_describe` puts it
    (category, the properties named, HubSpot's message: a validation rule's own), else the answer."""
    if refused.body.get("message"):
        return _describe(refused.body)
    return short(str(refused))


def _describe(error: Mapping[str, Any]) -> str:
    """A per-input error as one line, naming the properties HubSpot names."""
    names = [
        name
        for detail in error.get("errors") or []
        if isinstance(detail, Mapping)
        for name in (detail.get("context") or {}).get("propertyName") or []
    ]
    category = str(error.get("category") or "error")
    prefix = f"{category} ({', '.join(dict.fromkeys(names))})" if names else category
    return short(f"{prefix}: {error.get('message') or 'refused'}")


@dataclasses.dataclass
class _Batch:
    """The answer to one batch, split: results, error text per input position, and the text of errors
    that name no input."""

    results: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    errors: dict[int, str] = dataclasses.field(default_factory=dict)
    loose: list[str] = dataclasses.field(default_factory=list)


class HubSpotGateway:
    """`consumers.ports.CrmGateway` for one HubSpot portal, over an open `HubSpotClient`."""

    def __init__(
        self,
        client: HubSpotClient,
        *,
        portal_id: str,
        app_id: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        owners_refresh_s: float = OWNERS_REFRESH_S,
    ) -> None:
        self._client = client
        self._api = client.api
        self._portal_id = portal_id
        self._app_id = None if app_id is None else str(app_id)
        self._keyed: dict[str, bool] = {}
        self._clock = clock
        self.owner_list = OwnerList(self._read_owners, refresh_s=owners_refresh_s, clock=clock)
        self._owners_refused = False

    @property
    def client(self) -> HubSpotClient:
        """The API client under the gateway (the form-submissions loop, `cdc.forms`, calls it too)."""
        return self._client

    @property
    def system(self) -> SourceSystem:
        return SourceSystem.HUBSPOT

    @property
    def tenant(self) -> str:
        return self._portal_id

    # -- reads --------------------------------------------------------------------------------------

    async def owners(self, *, refresh: bool = False) -> Sequence[Owner]:
        """The portal's owners, active and archived (`cdc.owner_lists`)."""
        return await self.owner_list.get(refresh=refresh)

    async def _read_owners(self) -> list[Owner]:
        """The owner list for `owners`; refused (403: a token without the owners scope), it is empty for
        the list's interval, so every owner is skipped and counted (``owner_unknown``), said once."""
        try:
            return await self._client.owner_list()
        except RetriableError as error:
            raise CrmUnavailableError(
                SourceSystem.HUBSPOT, str(error), retry_after=error.retry_after
            ) from error
        except (FatalError, RequestError) as error:
            if not self._owners_refused:
                log.error(  # noqa: TRY400 -- the answer says it all; a traceback would not help
                    "hubspot refuses the owner list (%s): owners are not synced until the token has the "
                    "crm.objects.owners.read scope",
                    error,
                )
            self._owners_refused = True
            return []

    async def lookup(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """``owner_email``: owner id -> email, from the owner list `owners` keeps (active and archived: a
        record may still name an owner who has left), read again when an id is not in it (at most every
        `cdc.owner_lists.OWNERS_MISS_S`: an owner added since)."""
        if kind != OWNER_EMAIL:
            return {}
        emails = _emails(await self.owners())
        if any(key not in emails for key in keys):
            emails = _emails(await self.owners(refresh=True))
        return {key: emails[key] for key in keys if key in emails}

    async def fields(self, object_type: str, with_options: Collection[str]) -> dict[str, FieldInfo]:
        """The object's property definitions: ``type``, ``modificationMetadata.readOnlyValue`` and
        ``calculated`` (read-only), ``options[].value`` (developers.hubspot.com, properties API "Read
        all properties"); every option comes with the list, so ``with_options`` reads nothing more."""
        del with_options
        with _system_errors():
            try:
                listed = await self._client.call(self._api.list_properties, plural(object_type))
            except RequestError:  # an object type the portal does not have
                return {}
        found: dict[str, FieldInfo] = {}
        for p in listed.get("results") or []:
            if not isinstance(p, dict) or not p.get("name"):
                continue
            meta = p.get("modificationMetadata") or {}
            options = p.get("options") if p.get("type") in {"enumeration", "bool"} else None
            found[str(p["name"])] = FieldInfo(
                kind=str(p.get("type")),
                writable=not meta.get("readOnlyValue") and not p.get("calculated"),
                options=frozenset(str(o.get("value")) for o in options if isinstance(o, dict))
                if isinstance(options, list)
                else None,
            )
        return found

    async def option_labels(self, object_type: str, field: str) -> dict[str, str]:
        """An enumeration property's ``options[]`` as its definition lists them (hidden ones too: a hidden
        option only leaves the forms, records keep it; fact sheet ``hubspot.md``, the properties API)."""
        with _system_errors():
            try:
                found = await self._client.call(self._api.property, plural(object_type), field)
            except RequestError as error:  # 404: no such property
                raise LookupError(f"hubspot {object_type}.{field}: {short(str(error))}") from error
        options = found.get("options")
        if found.get("type") not in {"enumeration", "bool"} or not isinstance(options, list):
            raise LookupError(f"hubspot {object_type}.{field} is {found.get('type')}, not an enumeration")
        return {
            str(o["value"]): str(o.get("label") or o["value"])
            for o in options
            if isinstance(o, dict) and o.get("value") is not None
        }

    async def read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str],
        associations: Sequence[str] = (),
        archived: bool = False,
    ) -> dict[str, Record]:
        # `archived=true`: "Whether to return only results that have been archived" (the objects spec's
        # batch read); an archived record keeps its properties.
        query = {"archived": "true"} if archived else None
        found: dict[str, Record] = {}

        async def one(chunk: Sequence[str]) -> tuple[set[str], dict[str, Any]]:
            body = {"properties": _with_merged_ids(fields), "inputs": [{"id": i} for i in chunk]}
            answer = await self._client.call(
                self._api.batch_read, plural(object_type), query=query, body=body
            )
            return set(chunk), answer

        with _system_errors():
            # The chunks at once (the budget paces them): a batch waits one round trip, not one per 100 ids.
            reads = (one(chunk) for chunk in chunks(list(dict.fromkeys(ids)), BATCH_LIMIT))
            for asked, answer in await concurrently(reads):
                for item in answer.get("results") or []:
                    record = _record(object_type, item, fields)
                    found[record.object_id] = record
                    if record.object_id not in asked:  # asked by an id merged into it
                        for old in set(record.merged_ids) & asked:
                            found[old] = record
            if associations and found and not archived:
                current = list(dict.fromkeys(r.object_id for r in found.values()))
                linked = await self._read_associations(object_type, current, associations)
                found = {
                    i: dataclasses.replace(r, associations=linked[r.object_id]) for i, r in found.items()
                }
        return found

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        """The ``fields`` whose history names this app (``hubspot.app_id``) as their last writer
        (`cdc.hubspot.history`), with the value it wrote: one ``batch/read`` with ``propertiesWithHistory``
        per ``HISTORY_BATCH_LIMIT`` ids. Without an app id nothing can be told, and nothing is asked."""
        if self._app_id is None or not ids or not fields:
            return {}
        found: dict[str, dict[str, Scalar]] = {}
        with _system_errors():
            for chunk in chunks(list(dict.fromkeys(ids)), HISTORY_BATCH_LIMIT):
                body = {
                    "properties": list(fields),
                    "propertiesWithHistory": list(fields),
                    "inputs": [{"id": i} for i in chunk],
                }
                answer = await self._client.call(self._api.batch_read, plural(object_type), body=body)
                for item in answer.get("results") or []:
                    if own := own_values(item, fields, self._app_id):
                        found[str(item.get("id"))] = dict(own)
        return found

    async def _read_associations(
        self, object_type: str, ids: list[str], keys: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """Per record, per key, the (first) related id holding that type id, or None."""
        linked: dict[str, dict[str, str | None]] = {i: dict.fromkeys(keys) for i in ids}
        parsed = {key: parse_key(key) for key in keys}
        for to_type in dict.fromkeys(to for to, _ in parsed.values()):
            found = await self._client.read_associations(plural(object_type), to_type, ids)
            for record_id, related in found.items():
                for key, (to, type_id) in parsed.items():
                    if to != to_type or record_id not in linked:
                        continue
                    linked[record_id][key] = next((r.to_id for r in related if type_id in r.type_ids), None)
        return linked

    async def find(
        self,
        object_type: str,
        field: str,
        values: Sequence[str],
        *,
        fields: Sequence[str],
        contains: bool = False,
    ) -> dict[str, list[Record]]:
        # ``contains`` (a domain) compares equal all the same: a company's ``domain`` holds a bare host, the
        # key HubSpot itself de-duplicates companies by (default_mappings.md section 2), and the caller asks
        # for the host with and without ``www.``.
        del contains
        found: dict[str, list[Record]] = {value: [] for value in values}
        wanted = list(dict.fromkeys(values))
        properties = _with_merged_ids([*fields, field])
        with _system_errors():
            if field == "email" and plural(object_type) == "contacts":
                items = await self._read_by("contacts", "email", wanted, properties)
            else:
                items = await self._search(plural(object_type), field, wanted, properties)
        seen: set[tuple[str, str]] = set()
        for item in items:
            actual = str((item.get("properties") or {}).get(field) or "").casefold()
            record = _record(object_type, item, fields)
            for value in wanted:
                if value.casefold() == actual and (value, record.object_id) not in seen:
                    seen.add((value, record.object_id))
                    found[value].append(record)
        return found

    async def _read_by(
        self, object_type: str, id_property: str, values: list[str], properties: list[str]
    ) -> list[dict[str, Any]]:
        """``batch/read`` by a unique property (``idProperty``): consistent at once, unlike search."""
        items: list[dict[str, Any]] = []
        for chunk in chunks(values, BATCH_LIMIT):
            body = {"idProperty": id_property, "properties": properties, "inputs": [{"id": v} for v in chunk]}
            answer = await self._client.call(self._api.batch_read, object_type, body=body)
            items += answer.get("results") or []
        return items

    async def _search(
        self, object_type: str, field: str, values: list[str], properties: list[str]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        # As few searches as the body limit allows (searches are 5 a second, §5.1): the values fill what the
        # request's frame (properties, sort, paging) leaves of the 3,000 characters (§3.5).
        frame = len(orjson.dumps(_search_body(field, ["x", "y"], properties, after="9" * 12)))
        budget = MAX_BODY_CHARS - frame
        for chunk in packed(values, most=SEARCH_VALUES, budget=budget, size=_json_chars):
            after: str | None = None
            while True:
                page = await self._client.search(object_type, _search_body(field, chunk, properties, after))
                items += page.results
                if not page.has_more or not page.after:
                    break
                after = page.after
        return items

    # -- writes -------------------------------------------------------------------------------------

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Creates, updates and deletes batched per (kind, object type) in order of first appearance."""
        outcomes: dict[int, WriteOutcome] = {}
        groups: dict[tuple[WriteKind, str], list[int]] = {}
        for index, op in enumerate(ops):
            if op.kind is not WriteKind.CREATE and not op.object_id:
                outcomes[index] = WriteOutcome(op.ref, ok=False, error=f"{op.kind} needs an object id")
                continue
            groups.setdefault((op.kind, plural(op.object_type)), []).append(index)
        with _system_errors():
            for (kind, object_type), indexes in groups.items():
                for chunk in _rounds(ops, indexes):
                    if kind is WriteKind.CREATE:
                        outcomes.update(await self._create(object_type, ops, chunk))
                    elif kind is WriteKind.UPDATE:
                        outcomes.update(await self._update(object_type, ops, chunk))
                    else:
                        outcomes.update(await self._archive(object_type, ops, chunk))
            await self._update_associations(ops, outcomes)
        return [outcomes[index] for index in range(len(ops))]

    async def _create(
        self, object_type: str, ops: Sequence[WriteOp], indexes: Sequence[int]
    ) -> dict[int, WriteOutcome]:
        """Creates; those copying a Dataverse record (``origin_id``) upsert by `DATAVERSE_ID_PROPERTY`
        when the object has it, so a create sent twice finds the record the first one made."""
        keyed = await self._upserts_by_origin(object_type)
        creates: dict[int, dict[str, Any]] = {}
        upserts: dict[int, dict[str, Any]] = {}
        keys: dict[int, dict[str, str]] = {}
        for index in indexes:
            op = ops[index]
            body: dict[str, Any] = {
                "properties": {name: wire_value(value) for name, value in op.values.items()},
                "objectWriteTraceId": str(index),
            }
            if keyed and op.origin_id:
                # Upsert inputs take no associations: they are set afterwards, as for updates.
                upserts[index] = {**body, "idProperty": DATAVERSE_ID_PROPERTY, "id": op.origin_id}
                keys[index] = {DATAVERSE_ID_PROPERTY: op.origin_id}
                continue
            links = [
                {"to": {"id": to_id}, "types": [_spec(parse_key(key)[1])]}
                for key, to_id in op.associations.items()
                if to_id is not None
            ]
            if links:
                body["associations"] = links
            creates[index] = body
            keys[index] = _unique_keys(object_type, body["properties"])
        done: dict[int, WriteOutcome] = {}
        for batch in told_apart(creates, keys):
            done |= await self._written(object_type, self._api.batch_create, batch, ops, keys)
        if upserts:
            done |= await self._written(object_type, self._api.batch_upsert, upserts, ops, keys)
        return done

    async def _written(
        self,
        object_type: str,
        endpoint: Endpoint,
        inputs: dict[int, dict[str, Any]],
        ops: Sequence[WriteOp],
        keys: Mapping[int, Mapping[str, str]],
    ) -> dict[int, WriteOutcome]:
        """One create or upsert batch; each input's record matched by identity, not position; an input
        left without one read back by its unique property."""
        batch = await self._send(endpoint, object_type, inputs)
        done = {index: WriteOutcome(ops[index].ref, ok=False, error=e) for index, e in batch.errors.items()}
        sent = [
            Sent(index, str(body["objectWriteTraceId"]), sent_values(body), keys[index])
            for index, body in inputs.items()
            if index not in batch.errors
        ]
        pairing = pair_results(sent, batch.results)
        done |= {index: _written(ops[index].ref, item) for index, item in pairing.matched.items()}
        if not pairing.unmatched:
            return done
        found = await self._read_back(object_type, {i: keys[i] for i in pairing.unmatched if keys[i]})
        claimed = {str(item.get("id")) for item in found.values()}
        stray = [str(item.get("id")) for item in pairing.stray if str(item.get("id")) not in claimed]
        for index in pairing.unmatched:
            if index in found:
                done[index] = _written(ops[index].ref, found[index])
                continue
            why = "; ".join(batch.loose) or "no result in HubSpot's answer"
            if keys[index]:
                named = ", ".join(keys[index])
                error = f"{why}, and no record holds its {named}: not written"
            else:  # nothing it carries tells which record, if any, HubSpot made for it
                error = f"unresolved: {why}, and it carries no unique property to read it back by"
            done[index] = WriteOutcome(ops[index].ref, ok=False, error=short(error))
        if stray:
            log.warning(
                "hubspot %s: the batch answer has records no input could be matched to (%s); the creates "
                "left unresolved are retried, and find them by their match key",
                object_type,
                ", ".join(stray),
            )
        return done

    async def _read_back(
        self, object_type: str, keys: Mapping[int, Mapping[str, str]]
    ) -> dict[int, dict[str, Any]]:
        """Input index -> the record holding its unique value (one ``batch/read`` per property, consistent
        at once, unlike search)."""
        found: dict[int, dict[str, Any]] = {}
        wanted: dict[str, dict[str, list[int]]] = {}
        for index, held in keys.items():
            name, value = next(iter(held.items()))
            wanted.setdefault(name, {}).setdefault(value.casefold(), []).append(index)
        for name, by_value in wanted.items():
            for item in await self._read_by(object_type, name, list(by_value), [name]):
                value = str((item.get("properties") or {}).get(name) or "").casefold()
                for index in by_value.get(value, []):
                    found[index] = item
        return found

    async def _upserts_by_origin(self, object_type: str) -> bool:
        """Whether ``object_type`` has the unique `DATAVERSE_ID_PROPERTY`: one GET per type and process."""
        if (known := self._keyed.get(object_type)) is not None:
            return known
        try:
            found = await self._client.call(self._api.property, object_type, DATAVERSE_ID_PROPERTY)
        except RequestError:  # 404: not provisioned
            found = {}
        keyed = bool(found.get("hasUniqueValue"))
        if not keyed:
            log.warning(
                "hubspot %s has no unique property %s (`cdc provision` creates it): a create sent twice "
                "(a retried batch, two sync replicas during a rebalance) can make two records",
                object_type,
                DATAVERSE_ID_PROPERTY,
            )
        self._keyed[object_type] = keyed
        return keyed

    async def _update(
        self, object_type: str, ops: Sequence[WriteOp], indexes: Sequence[int]
    ) -> dict[int, WriteOutcome]:
        done = await self._changed_since_read(object_type, ops, indexes)
        indexes = [index for index in indexes if index not in done]
        if not indexes:
            return done
        return done | await self._update_now(object_type, ops, indexes)

    async def _changed_since_read(
        self, object_type: str, ops: Sequence[WriteOp], indexes: Sequence[int]
    ) -> dict[int, WriteOutcome]:
        """HubSpot has no ETag: updates planned from a version (``if_match`` = the ``updatedAt`` read) are
        checked against the current ``updatedAt`` first (one batch read), and a record changed since is a
        conflict for the caller to re-read and re-plan, rather than a user's edit silently overwritten."""
        planned = {index: ops[index].if_match for index in indexes if ops[index].if_match}
        if not planned:
            return {}
        current = await self.read(object_type, [str(ops[index].object_id) for index in planned], fields=[])
        conflicts: dict[int, WriteOutcome] = {}
        for index, version in planned.items():
            record = current.get(str(ops[index].object_id))
            if record is not None and record.version != version:
                conflicts[index] = WriteOutcome(ops[index].ref, ok=False, conflict=True)
        return conflicts

    async def _update_now(
        self, object_type: str, ops: Sequence[WriteOp], indexes: Sequence[int]
    ) -> dict[int, WriteOutcome]:
        inputs = {
            index: {
                "id": ops[index].object_id,
                "properties": {name: wire_value(value) for name, value in ops[index].values.items()},
                "objectWriteTraceId": str(index),
            }
            for index in indexes
        }
        batch = await self._send(self._api.batch_update, object_type, inputs)
        by_id = {str(ops[index].object_id): index for index in indexes}
        done = {index: WriteOutcome(ops[index].ref, ok=False, error=e) for index, e in batch.errors.items()}
        for item in batch.results:
            index = by_id.get(str(item.get("id")))
            if index is not None:
                done[index] = _written(ops[index].ref, item)
        for index in indexes:  # neither written nor refused by trace id: HubSpot did not find it
            done.setdefault(index, WriteOutcome(ops[index].ref, ok=False, error="OBJECT_NOT_FOUND"))
        return done

    async def _archive(
        self, object_type: str, ops: Sequence[WriteOp], indexes: Sequence[int]
    ) -> dict[int, WriteOutcome]:
        inputs = {index: {"id": ops[index].object_id} for index in indexes}
        batch = await self._send(self._api.batch_archive, object_type, inputs)
        return {
            index: WriteOutcome(
                ops[index].ref,
                ok=index not in batch.errors,
                object_id=ops[index].object_id,
                error=batch.errors.get(index),
            )
            for index in indexes
        }

    async def _send(self, endpoint: Endpoint, object_type: str, inputs: dict[int, dict[str, Any]]) -> _Batch:
        """One batch call; a whole-batch 400 is split in halves until the refused input stands alone."""
        try:
            # Sent once: a write held back by a 429 or 5xx and sent again later would carry values planned
            # before whatever a user wrote meanwhile. The batch is read and planned again instead.
            body = {"inputs": list(inputs.values())}
            answer = await self._client.call(endpoint, object_type, body=body, retry=False)
        except RequestError as refused:
            if len(inputs) == 1:
                return _Batch(errors={next(iter(inputs)): _refusal(refused)})
            items = list(inputs.items())
            half = len(items) // 2
            first, second = (
                await self._send(endpoint, object_type, dict(items[:half])),
                await self._send(endpoint, object_type, dict(items[half:])),
            )
            return _Batch(
                first.results + second.results, first.errors | second.errors, first.loose + second.loose
            )
        batch = _Batch(results=list(answer.get("results") or []))
        by_trace = {str(body.get("objectWriteTraceId")): index for index, body in inputs.items()}
        by_id = {str(body.get("id")): index for index, body in inputs.items() if "id" in body}
        # A StandardError's ``context`` is {key: [string]} (the CRM specs); the keys naming inputs are
        # ``objectWriteTraceId`` (D-ERR's 207 example) and ``ids`` (not-found answers, fact sheet §3.2).
        for entry in answer.get("errors") or []:
            context = entry.get("context") or {}
            hit = [by_trace[t] for t in context.get("objectWriteTraceId") or [] if t in by_trace]
            hit += [by_id[i] for i in context.get("ids") or [] if i in by_id]
            for index in hit:
                batch.errors[index] = _describe(entry)
            if not hit:
                batch.loose.append(_describe(entry))
        return batch

    async def _update_associations(self, ops: Sequence[WriteOp], outcomes: dict[int, WriteOutcome]) -> None:
        """Set and clear the associations of updated and upserted records (creates carried theirs in the
        body)."""
        sets: dict[tuple[str, str], list[tuple[int, str, str, int]]] = {}
        clears: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
        for index, op in enumerate(ops):
            keyed = bool(op.origin_id) and self._keyed.get(plural(op.object_type), False)
            upserted = op.kind is WriteKind.CREATE and keyed
            if not (op.kind is WriteKind.UPDATE or upserted) or not outcomes[index].ok:
                continue
            object_id = str(op.object_id or outcomes[index].object_id)
            for key, to_id in op.associations.items():
                to_type, type_id = parse_key(key)
                pair = (plural(op.object_type), to_type)
                if to_id is None:
                    clears.setdefault(pair, []).append((index, object_id, type_id))
                else:
                    sets.setdefault(pair, []).append((index, object_id, to_id, type_id))
        failed: dict[int, str] = {}
        for pair, items in sets.items():
            for chunk in chunks(items, ASSOCIATION_INPUTS):
                failed |= await self._associate(pair, chunk)
        for pair, pending in clears.items():
            failed |= await self._dissociate(pair, pending)
        for index, problem in failed.items():
            outcomes[index] = dataclasses.replace(outcomes[index], ok=False, error=f"association: {problem}")

    async def _associate(
        self, pair: tuple[str, str], items: Sequence[tuple[int, str, str, int]]
    ) -> dict[int, str]:
        """One association batch create; the error text of each op whose association was refused.

        An association is written when the answer's results hold its pair (``fromObjectId``,
        ``toObjectId``: ``LabelsBetweenObjectPair`` in the associations specs, v4 to 2026-09; the errors
        come in a 207, or folded into the 2026-09 answer's 200). The spec's errors are
        ``StandardError`` entries whose ``context`` names no input pair (HubSpot answers invalid ids with
        ``INVALID_OBJECT_IDS`` / ``objectId`` lists, hubspot-api-nodejs issue 646), so an input without a
        result is refused, with the errors that name one of its ids (else all of them) as the reason."""
        inputs = [
            {"from": {"id": from_id}, "to": {"id": to_id}, "types": [_spec(type_id)]}
            for _, from_id, to_id, type_id in items
        ]
        try:
            answer = await self._client.call(self._api.associate, *pair, body={"inputs": inputs}, retry=False)
        except RequestError as refused:
            return {index: _refusal(refused) for index, *_ in items}
        written = {
            (str(result.get("fromObjectId")), str(result.get("toObjectId")))
            for result in answer.get("results") or []
            if isinstance(result, Mapping)
        }
        errors = [entry for entry in answer.get("errors") or [] if isinstance(entry, Mapping)]
        failed: dict[int, str] = {}
        for index, from_id, to_id, type_id in items:
            if (from_id, to_id) in written:
                continue
            naming = [entry for entry in errors if {from_id, to_id} & _named_ids(entry)]
            why = (
                "; ".join(dict.fromkeys(_describe(e) for e in naming or errors)) or "no result in the answer"
            )
            failed[index] = short(f"{pair[0]} {from_id} -> {pair[1]} {to_id} (type {type_id}) refused: {why}")
        return failed

    async def _dissociate(
        self, pair: tuple[str, str], items: Sequence[tuple[int, str, int]]
    ) -> dict[int, str]:
        """Remove the given association type from each record to whichever record holds it now; the error
        text of each op whose removal was refused.

        v4 answers 204 (nothing to read); 2026-03 and 2026-09 answer 200 with a batch body whose
        ``errors`` may refuse some inputs (the associations specs): an error naming one of an input's ids
        refuses that input's op, one naming none refuses every op of the call (which it is, is unknown)."""
        related = await self._client.read_associations(pair[0], pair[1], [from_id for _, from_id, _ in items])
        inputs = [
            (index, from_id, other.to_id, type_id)
            for index, from_id, type_id in items
            for other in related.get(from_id, [])
            if type_id in other.type_ids
        ]
        failed: dict[int, str] = {}
        for chunk in chunks(inputs, ASSOCIATION_INPUTS):
            body = {
                "inputs": [
                    {"from": {"id": from_id}, "to": {"id": to_id}, "types": [_spec(type_id)]}
                    for _, from_id, to_id, type_id in chunk
                ]
            }
            try:
                answer = await self._client.call(self._api.dissociate, *pair, body=body, retry=False)
            except RequestError as refused:
                why = _refusal(refused)
                failed |= {index: short(f"removing {pair[1]} {to_id}: {why}") for index, _, to_id, _ in chunk}
                continue
            errors = [entry for entry in answer.get("errors") or [] if isinstance(entry, Mapping)]
            for index, from_id, to_id, _ in chunk:
                naming = [entry for entry in errors if {from_id, to_id} & _named_ids(entry)]
                refusing = naming or [entry for entry in errors if not _named_ids(entry)]
                if refusing:
                    why = "; ".join(dict.fromkeys(_describe(entry) for entry in refusing))
                    failed[index] = short(f"removing {pair[1]} {to_id}: {why}")
        return failed


def _named_ids(entry: Mapping[str, Any]) -> set[str]:
    """Every id an error's ``context`` lists, e.g. ``objectId: ["123"]`` or ``"COMPANY=123 is not valid"``."""
    context = entry.get("context")
    values = context.values() if isinstance(context, Mapping) else []
    texts = [str(v) for listed in values if isinstance(listed, list) for v in listed]
    return {word for text in texts for word in text.replace("=", " ").split() if word.isdigit()}


def _spec(type_id: int) -> dict[str, Any]:
    return {"associationCategory": HUBSPOT_DEFINED, "associationTypeId": type_id}


def _rounds(ops: Sequence[WriteOp], indexes: list[int]) -> Iterator[list[int]]:
    """Chunks of at most 100 in which no id appears twice (HubSpot refuses a whole batch for that)."""
    chunk: list[int] = []
    ids: set[str] = set()
    for index in indexes:
        object_id = ops[index].object_id
        if len(chunk) >= BATCH_LIMIT or (object_id is not None and object_id in ids):
            yield chunk
            chunk, ids = [], set()
        chunk.append(index)
        if object_id is not None:
            ids.add(object_id)
    if chunk:
        yield chunk


def _with_merged_ids(fields: Sequence[str]) -> list[str]:
    """The properties to read: ``fields`` and the merged ids, which every read brings (Record.merged_ids)."""
    return list(dict.fromkeys([*fields, MERGED_IDS]))


def _record(object_type: str, item: Mapping[str, Any], fields: Sequence[str]) -> Record:
    properties = item.get("properties") or {}
    values: dict[str, Scalar] = {name: properties[name] for name in fields if name in properties}
    updated = item.get("updatedAt")
    object_id = str(item.get("id"))
    return Record(
        object_type=object_type,
        object_id=object_id,
        values=values,
        version=str(updated) if updated else None,
        modified_at=parse_time(updated),
        merged_ids=merged_ids(properties, object_id),
    )


UNIQUE_PROPERTIES = {"contacts": ("email", DATAVERSE_ID_PROPERTY)}
"""Properties HubSpot holds one record per value of (fact sheet §3.1: a contact's email; the provisioned
``cdc_d365id``), by which a create is matched to its result and read back."""


def _unique_keys(object_type: str, properties: Mapping[str, str]) -> dict[str, str]:
    names = UNIQUE_PROPERTIES.get(object_type, (DATAVERSE_ID_PROPERTY,))
    return {name: properties[name].strip() for name in names if (properties.get(name) or "").strip()}


def _written(ref: str, item: Mapping[str, Any]) -> WriteOutcome:
    updated = item.get("updatedAt")
    return WriteOutcome(
        ref,
        ok=True,
        object_id=str(item.get("id")),
        version=str(updated) if updated else None,
        modified_at=parse_time(updated),
    )


@contextlib.asynccontextmanager
async def open_hubspot_gateway(
    settings: HubSpotSettings, metrics: Metrics, *, policy: RetryPolicy = GATEWAY_POLICY
) -> AsyncIterator[HubSpotGateway]:
    """A gateway with its own client session and token provider for ``Settings.hubspot`` (credentials and
    portal id required: a `cdc.settings.SettingsError` names what is missing)."""
    require(settings.portal_id, "hubspot.portal_id", "sync")
    assert settings.portal_id is not None  # noqa: S101 -- checked just above
    async with hubspot_client(settings, metrics, command="sync", policy=policy) as client:
        yield HubSpotGateway(client, portal_id=settings.portal_id, app_id=settings.app_id)


def _emails(owners: Sequence[Owner]) -> dict[str, str]:
    """Owner id -> email; the active owner first, should an id be listed twice."""
    emails: dict[str, str] = {}
    for owner in owners:
        emails.setdefault(owner.id, owner.email)
    return emails


def _json_chars(value: str) -> int:
    """What one more ``IN`` value adds to a search body: its JSON string and a comma."""
    return len(orjson.dumps(value.lower())) + 1


def _search_body(
    field: str, values: Sequence[str], properties: list[str], after: str | None
) -> dict[str, Any]:
    condition: dict[str, Any] = {"propertyName": field}
    if len(values) == 1:
        condition |= {"operator": "EQ", "value": values[0]}  # EQ on strings ignores case
    else:
        # IN compares a string property's value, lowercased, with the values as sent: "the searched values
        # must be lowercase" (D-SRCH). Answers are matched back casefolded in `find`.
        condition |= {"operator": "IN", "values": list(dict.fromkeys(v.lower() for v in values))}
    body: dict[str, Any] = {
        "filterGroups": [{"filters": [condition]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": properties,
        "limit": SEARCH_PAGE,
    }
    if after:
        body["after"] = after
    return body
