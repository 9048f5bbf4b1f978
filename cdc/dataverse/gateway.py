"""Dataverse behind the sync engine's `CrmGateway` port, over the Web API and ``$batch``.

Object types are table logical names (``contact``); the entity set is the standard plural (``contacts``,
``opportunities``) unless ``entity_sets`` says otherwise. Calls per operation:

- the first ``read`` or ``find`` of a table in the process: one metadata GET of its columns (see
  `DataverseGateway._columns`), then cached;
- ``read``: one GET per 50 ids (``$filter=<table>id eq .. or ..``, ``$select``, following nextLinks);
  the ETag is the version, ``modifiedon`` the modification time, and association keys
  (``parentcustomerid:account``) come from ``_<lookup>_value`` plus its ``lookuplogicalname``
  annotation: the id is reported only when the lookup points at that table;
- ``find``: one GET per 25 values (``<column> eq '..' or ..``; Dataverse compares text case-insensitively).

A requested field that is a lookup column (``parentaccountid``, ``ownerid``) is selected as
``_<column>_value`` and returned under the plain name as the referenced record's display name (its
``FormattedValue`` annotation; None when empty): the configuration maps such columns with
``lookup: formatted_value``. A field the table does not have is left out of ``$select`` with one warning
per (table, column), so one misspelt column costs that field, not every read of the table.
- ``write``: one ``$batch`` per ``batch_size`` ops (default 100; Dataverse takes up to 1,000), without
  change sets and with ``Prefer: odata.continue-on-error``, so each op succeeds or fails on its own.
  Creates are POSTs with ``Prefer: return=representation`` (the new id and ETag come back); updates
  are PATCHes with ``If-Match: <etag>`` when the op has one (412 -> ``conflict``, by the status: the
  documented body carries an empty code), else ``If-Match: *``
  (a PATCH would otherwise re-create a deleted record). A create copying a HubSpot record (``origin_id``)
  is a PATCH upsert addressed by the alternate key ``cdc_hubspotid='<id>'`` when the table has that key
  and its index is Active (one metadata GET of its keys per table; a key that is missing, or whose index
  Dataverse is still building or failed to build, is asked about again after ``key_recheck_s``, so a key
  created while the daemon runs is used within a minute), so the same create sent twice (a retried batch,
  two replicas across a rebalance) updates the row the first one made; lookups are written as
  ``<navigation>@odata.bind: "/<set>(<id>)"`` and cleared with ``null``.

Errors: a 429, 5xx, network error or a 401 after the client renewed its token is `CrmUnavailableError`
(the client's own retries first: build it with a short `RetryPolicy`, see :func:`open_dataverse_gateway`);
a part answered 400/404/409/412/413 is that op's ``WriteOutcome.error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cdc.dataverse import paths
from cdc.dataverse._multipart import Part, PartAnswer, decode, encode
from cdc.dataverse.auth import TokenProvider
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import FatalError, RetriableError, UnauthorizedError
from cdc.dataverse.paths import entity_set_name, literal
from cdc.metrics import Metrics
from cdc.owner_lists import OWNERS_REFRESH_S, OwnerList
from cdc.settings import DataverseSettings
from cdc.wire import chunks, packed, parse_time, short
from consumers.concurrent import concurrently
from consumers.config import HUBSPOT_ID_COLUMN, OWNER_COLUMN
from consumers.owners import Owner
from consumers.ports import CrmUnavailableError, FieldInfo, Record, WriteKind, WriteOp, WriteOutcome
from consumers.retries import RetryPolicy
from streams.codec import Scalar
from streams.keys import SourceSystem

__all__ = ["GATEWAY_POLICY", "HUBSPOT_ID_COLUMN", "DataverseGateway", "open_dataverse_gateway"]

GATEWAY_POLICY = RetryPolicy(retries=2, throttles=1, wait_max_s=5.0)
"""Short client retries: the engine pauses the whole batch on `CrmUnavailableError` instead."""
READ_IDS = 100
"""Rows per read (``<table>id eq <guid> or ...``): a full batch of the engine's, ~5.4 KB of filter, far below
the 32 KB a URL may hold (dataverse.md §2.1)."""
FIND_VALUES = 100
"""Values per lookup at most, as many as a read's ids; `FIND_FILTER_CHARS` binds first for long values."""
FIND_FILTER_CHARS = 16_000
"""Characters of a lookup's ``$filter`` (each URL-encoded to ~1.2x): half the 32 KB URL limit (§2.1), the
rest left to ``$select`` and the host."""
BATCH_SIZE = 100
MAX_BATCH = 1000
POLYMORPHIC = frozenset({"customerid", "parentcustomerid"})
"""Customer-type lookups: their navigation property names the target (``parentcustomerid_account``)."""
LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
"""Metadata ``AttributeType`` values of lookup columns: read as ``_<column>_value``, never by plain name."""
STANDARD_LOOKUPS = frozenset(
    {
        *("ownerid", "owninguser", "owningteam", "owningbusinessunit"),
        *("createdby", "modifiedby", "createdonbehalfby", "modifiedonbehalfby"),
        *("parentaccountid", "parentcontactid", "parentcustomerid", "customerid", "primarycontactid"),
        *("campaignid", "originatingleadid", "qualifyingopportunityid", "masterid"),
        *("transactioncurrencyid", "pricelevelid", "preferredsystemuserid", "slaid"),
    }
)
"""Lookup columns of the standard tables, used only when a table's metadata cannot be read."""
_LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
_FORMATTED = "OData.Community.Display.V1.FormattedValue"
_PREFER_READ = f'odata.include-annotations="{_LOGICAL}"'
_PREFER_FORMATTED = f'odata.include-annotations="{_FORMATTED},{_LOGICAL}"'
_USER_DISABLED = "0x80040225"
_USER_COLUMNS = ["systemuserid", "internalemailaddress", "isdisabled"]
_RAW_LOOKUP = re.compile(r"^_(?P<column>\w+)_value$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ENTITY_ID = re.compile(r"\(([0-9a-fA-F-]{36})\)\s*$")
_RECORD_ERRORS = frozenset({400, 404, 409, 412, 413, 422})
_DUPLICATE_CODES = frozenset({"0x80040237", "0x80060892"})
"""DuplicateRecord and DuplicateRecordEntityKey: a 412 that is not about the ETag (fact sheet §2.4, §5), so
writing again after a re-read would only be refused again."""
KEY_RECHECK_S = 60.0
"""How long a "no usable key" answer is trusted: a key's index is built by a background job (Pending ->
InProgress -> Active, Learn define-alternate-keys-entity, "Monitor index creation for alternate keys"),
so a key still being built at the first create is looked at again, not given up on for the process's life."""

log = logging.getLogger(__name__)
# HUBSPOT_ID_COLUMN (consumers.config): the text column (`cdc provision` creates it, with an alternate key of
# its own) holding the id of the linked HubSpot record. Creates upsert by it where the table has the key.


@dataclass(frozen=True, slots=True)
class _Columns:
    """What one table's metadata says about its columns."""

    lookups: frozenset[str]
    known: frozenset[str] | None
    """Readable column logical names; None when the metadata could not be read (every name is trusted)."""

    def exists(self, name: str) -> bool:
        return self.known is None or name in self.known

    def read_name(self, name: str) -> str:
        """The name a row carries the column under: ``_<column>_value`` for a lookup."""
        return f"_{name}_value" if name in self.lookups else name


_FALLBACK = _Columns(lookups=STANDARD_LOOKUPS, known=None)


@dataclass(frozen=True, slots=True)
class _KeyState:
    """What the key metadata said of the alternate key on `HUBSPOT_ID_COLUMN`: its ``EntityKeyIndexStatus``
    (None: no such key), and when it was asked (the gateway's clock)."""

    status: str | None
    checked: float

    @property
    def active(self) -> bool:
        return self.status == "Active"


def parse_key(key: str) -> tuple[str, str]:
    """``parentcustomerid:account`` -> (``parentcustomerid``, ``account``)."""
    lookup, _, table = key.partition(":")
    if not lookup or not table:
        raise ValueError(f"a Dataverse association key is <lookup>:<table>, not {key!r}")
    return lookup, table


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return orjson.dumps(value).decode()


def _record_error(answer: PartAnswer) -> bool:
    """A refusal of this record's write, not of the daemon: a 403 UserDisabled (an owner disabled since
    the user list was read) fails the record, it does not pause the sync as a refused credential would."""
    return answer.status in _RECORD_ERRORS or _error_text(answer)[0] == _USER_DISABLED


def _owner_bound(body: dict[str, Any]) -> dict[str, Any]:
    """`OWNER_COLUMN` (``lookup: owner``, the user's id) bound as the owner lookup,
    ``ownerid@odata.bind: /systemusers(<id>)``; a row always has an owner, so an empty one is not sent."""
    owner = body.pop(OWNER_COLUMN, None)
    if owner is not None and not (isinstance(owner, str) and _GUID.match(owner)):
        raise ValueError(f"{OWNER_COLUMN}: {owner!r} is not a user id")
    if owner is not None:
        body["ownerid@odata.bind"] = paths.reference("systemusers", owner)
    return body


@contextlib.contextmanager
def _system_errors() -> Iterator[None]:
    try:
        yield
    except RetriableError as error:
        wait = error.retry_after
        raise CrmUnavailableError(SourceSystem.DATAVERSE, str(error), retry_after=wait) from error
    except FatalError as error:
        # Refused credentials or privileges (401 after renewal, 403, the token service) pause the
        # sync; any other fatal answer (a query naming an unknown column) is a configuration bug.
        if isinstance(error, UnauthorizedError) or error.status in {0, 401, 403}:
            raise CrmUnavailableError(SourceSystem.DATAVERSE, str(error)) from error
        raise


def _error_text(answer: PartAnswer) -> tuple[str, str]:
    """(code, a short message) of a refused part; the OData exception text names the field."""
    try:
        body = orjson.loads(answer.body) if answer.body else {}
    except orjson.JSONDecodeError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code, message = str(error.get("code") or ""), str(error.get("message") or f"HTTP {answer.status}")
    message = message.rpartition("ODataException: ")[2] or message
    return code.lower(), short(f"{answer.status} {code}: {message}".replace("  ", " "))


def _stale(op: WriteOp, status: int, code: str) -> bool:
    """A write sent with the ETag it was planned from was refused because the record changed since: 412 on
    an ``If-Match: <etag>`` write, decided by the status. The code may be empty (the documented body of a
    failed If-Match is ``{"error": {"code": "", ...}}``, fact sheet §2.5/§5) or ConcurrencyVersionMismatch
    (``0x80060882``); only a duplicate-key code says the 412 is about something else."""
    conditional = op.kind is not WriteKind.CREATE and bool(op.if_match) and op.if_match != "*"
    return status == 412 and conditional and code not in _DUPLICATE_CODES  # noqa: PLR2004 -- HTTP 412


class DataverseGateway:
    """`consumers.ports.CrmGateway` for one Dataverse org, over a started `DataverseClient`."""

    def __init__(
        self,
        client: DataverseClient,
        *,
        tenant: str,
        entity_sets: Mapping[str, str] | None = None,
        navigation: Mapping[str, str] | None = None,
        batch_size: int = BATCH_SIZE,
        key_recheck_s: float = KEY_RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
        owners_refresh_s: float = OWNERS_REFRESH_S,
    ) -> None:
        if not 0 < batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self._client = client
        self._tenant = tenant
        self._sets = dict(entity_sets or {})
        self._navigation = dict(navigation or {})
        """Association key -> navigation property, where the default rule is wrong for a custom lookup."""
        self._batch_size = batch_size
        self._keys: dict[str, _KeyState] = {}
        self._key_recheck_s = key_recheck_s
        self._clock = clock
        self._metadata: dict[str, _Columns] = {}
        self._metadata_lock = asyncio.Lock()
        self._warned: set[tuple[str, str]] = set()
        self.owner_list = OwnerList(self._system_users, refresh_s=owners_refresh_s, clock=clock)

    @property
    def client(self) -> DataverseClient:
        """The API client under the gateway (the form-submissions loop, `cdc.forms`, calls it too)."""
        return self._client

    @property
    def system(self) -> SourceSystem:
        return SourceSystem.DATAVERSE

    @property
    def tenant(self) -> str:
        return self._tenant

    def _set(self, table: str) -> str:
        return self._sets.get(table) or entity_set_name(table)

    def _nav(self, key: str) -> str:
        lookup, table = parse_key(key)
        return self._navigation.get(key) or (f"{lookup}_{table}" if lookup in POLYMORPHIC else lookup)

    # -- reads --------------------------------------------------------------------------------------

    async def read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str],
        associations: Sequence[str] = (),
        archived: bool = False,
    ) -> dict[str, Record]:
        if archived:
            return {}  # a deleted row is gone: Dataverse keeps no archive to read
        key = f"{object_type}id"
        wanted = list(dict.fromkeys(i.lower() for i in ids if _GUID.match(i)))  # others cannot exist
        if not wanted:
            return {}
        columns = await self._columns(object_type)
        fields = self._readable(object_type, columns, fields)
        lookups = [f"_{parse_key(k)[0]}_value" for k in associations]
        select = [key, *(columns.read_name(f) for f in fields), "modifiedon", *lookups]
        prefer = self._prefer(columns, fields)
        found: dict[str, Record] = {}
        queries = (
            self._query(object_type, select, " or ".join(f"{key} eq {i}" for i in chunk), "read", prefer)
            for chunk in chunks(wanted, READ_IDS)
        )
        # The chunks at once (the budget paces them, within the org's concurrency limit): one round trip.
        for rows in await concurrently(queries):
            for row in rows:
                record = self._record(object_type, row, columns, fields, associations)
                found[record.object_id] = record
        return found

    async def find(
        self,
        object_type: str,
        field: str,
        values: Sequence[str],
        *,
        fields: Sequence[str],
        contains: bool = False,
    ) -> dict[str, list[Record]]:
        """``contains``: ``contains(field, 'value')``, an OData standard query function Dataverse's $filter
        supports (Learn: "Filter rows", standard query functions contains/endswith/startswith), for a domain
        inside a ``websiteurl`` holding a whole URL; the applier normalizes what it finds."""
        found: dict[str, list[Record]] = {value: [] for value in values}
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return found
        columns = await self._columns(object_type)
        if not columns.exists(field) or field in columns.lookups:
            # The match rule names it: answering "no match" would create duplicates, so refuse loudly.
            what = "a lookup column" if columns.exists(field) else "not a column"
            raise ValueError(
                f"cannot match {object_type} records on {field!r}: it is {what} of the table "
                "(fix the step's match rule)"
            )
        fields = self._readable(object_type, columns, fields)
        select = [f"{object_type}id", field, *(columns.read_name(f) for f in fields), "modifiedon"]
        prefer = self._prefer(columns, fields)
        test = "contains({0}, {1})" if contains else "{0} eq {1}"

        def term(value: str) -> int:
            return len(test.format(field, literal(value))) + len(" or ")

        for chunk in packed(wanted, most=FIND_VALUES, budget=FIND_FILTER_CHARS, size=term):
            where = " or ".join(test.format(field, literal(value)) for value in chunk)
            for row in await self._query(object_type, select, where, "find", prefer):
                actual = row.get(field)
                record = self._record(object_type, row, columns, fields, ())
                for value in chunk:
                    if isinstance(actual, str) and _compares(actual, value, contains=contains):
                        found[value].append(record)
        return found

    async def _columns(self, table: str) -> _Columns:
        """The table's lookup columns and readable columns, from the metadata API, once per process.

        Why metadata rather than a list: whether a column is a lookup is a fact of the org (custom
        ``new_..id`` lookups, Customer and Owner columns), and only the metadata also says which names
        do not exist, so a misspelt field can be dropped with a warning instead of failing the query.
        Its price is one GET per table per process (columns change only through a deployment, and a
        new column needs a restart to be synced anyway). When the org answers the metadata query with a
        request error (400, 404: an org or proxy without that endpoint) the gateway falls back to
        `STANDARD_LOOKUPS`, trusts every name, and caches that too; an outage (429, 5xx, network) or
        refused credentials (401, 403) is `CrmUnavailableError`, as for any read, and nothing is cached.
        """
        if (cached := self._metadata.get(table)) is not None:
            return cached
        async with self._metadata_lock:  # concurrent first reads of a table make one call
            if (cached := self._metadata.get(table)) is not None:
                return cached
            try:
                url = paths.attributes(self._client.api_root, table)
                attributes = await self._metadata_of(url, ["LogicalName", "AttributeType", "IsValidForRead"])
            except FatalError as error:  # 401 and 403 left _system_errors as CrmUnavailableError
                log.warning(
                    "dataverse: cannot read the columns of %s (%s %s); assuming the standard lookups",
                    table,
                    error.status,
                    error.code,
                )
                columns = _FALLBACK
            else:
                columns = _Columns(
                    lookups=frozenset(
                        str(a.get("LogicalName"))
                        for a in attributes
                        if a.get("AttributeType") in LOOKUP_TYPES
                    ),
                    known=frozenset(
                        str(a.get("LogicalName")) for a in attributes if a.get("IsValidForRead") is not False
                    ),
                )
            self._metadata[table] = columns
            return columns

    async def _metadata_of(self, url: str, select: Sequence[str]) -> list[dict[str, Any]]:
        """The items of a table definition's list (its columns, its keys); an outage or refused
        credentials is `CrmUnavailableError`, a request error (no such endpoint) `FatalError`."""
        with _system_errors():
            listed = await self._client.get_json(
                paths.with_options(url, select=select), endpoint=paths.METADATA_ATTRIBUTES
            )
        return [item for item in listed.get("value") or [] if isinstance(item, dict)]

    async def _keyed(self, table: str) -> bool:
        """Whether `HUBSPOT_ID_COLUMN` is an alternate key of ``table`` on its own whose index is Active.
        Asked at the table's first create; an Active key is trusted for the process's life, any other
        answer for ``key_recheck_s`` (`KEY_RECHECK_S`). Each change of the answer is logged once."""
        known = self._keys.get(table)
        now = self._clock()
        if known is not None and (known.active or now - known.checked < self._key_recheck_s):
            return known.active
        try:
            url = paths.keys(self._client.api_root, table)
            keys = await self._metadata_of(url, ["KeyAttributes", "EntityKeyIndexStatus"])
        except FatalError:
            keys = []
        statuses = [
            str(k.get("EntityKeyIndexStatus") or "Active")
            for k in keys
            if list(k.get("KeyAttributes") or ()) == [HUBSPOT_ID_COLUMN]
        ]
        state = _KeyState("Active" if "Active" in statuses else next(iter(statuses), None), now)
        self._keys[table] = state
        if known is None or known.status != state.status:
            self._log_key(table, state.status)
        return state.active

    def _log_key(self, table: str, status: str | None) -> None:
        column = HUBSPOT_ID_COLUMN
        if status == "Active":
            log.info("dataverse %s: the alternate key on %s is Active: creates upsert by it", table, column)
            return
        if status is None:
            state = f"has no alternate key on {column} (`cdc provision --dataverse` creates it)"
        elif status == "Failed":
            state = (
                f"has an alternate key on {column} whose index build Failed (most likely rows hold duplicate "
                "values of the column): remove the duplicates, then reactivate the key (ReactivateEntityKey, "
                "or `cdc provision --dataverse`)"
            )
        else:
            state = (
                f"has an alternate key on {column} that is {status}: Dataverse is still building its index"
            )
        log.warning(
            "dataverse %s %s; until the key is Active creates are plain POSTs, so a create sent twice "
            "(a retried batch, two sync replicas during a rebalance) can make two rows; asked again "
            "every %.0f s",
            table,
            state,
            self._key_recheck_s,
        )

    def _readable(self, table: str, columns: _Columns, fields: Sequence[str]) -> list[str]:
        """The fields worth selecting, in order, without repeats: a name the table lacks is a
        configuration mistake, warned about once per (table, column) and left out of ``$select``.
        ``_<lookup>_value`` is accepted as it is (the raw id)."""
        kept: list[str] = []
        for name in dict.fromkeys(fields):
            raw = _RAW_LOOKUP.match(name)
            if columns.exists(name) or (raw is not None and raw.group("column") in columns.lookups):
                kept.append(name)
            elif (table, name) not in self._warned:
                self._warned.add((table, name))
                log.warning(
                    "dataverse table %s has no readable column %r: it is left out of reads "
                    "(check the sync configuration)",
                    table,
                    name,
                )
        return kept

    @staticmethod
    def _prefer(columns: _Columns, fields: Sequence[str]) -> str:
        """Formatted values only when a lookup is read by name: they cost the server a lookup per row."""
        return _PREFER_FORMATTED if any(f in columns.lookups for f in fields) else _PREFER_READ

    async def _query(
        self, table: str, select: list[str], where: str | None, purpose: str, prefer: str
    ) -> list[dict[str, Any]]:
        entity_set = self._set(table)
        root, select = self._client.api_root, list(dict.fromkeys(select))
        url: str | None = paths.with_options(paths.rows(root, entity_set), select=select, where=where)
        rows: list[dict[str, Any]] = []
        with _system_errors():
            while url:
                page = await self._client.get_json(
                    url, endpoint=paths.rows_label(entity_set, purpose), prefer=prefer
                )
                rows += [row for row in page.get("value") or [] if isinstance(row, dict)]
                next_link = page.get("@odata.nextLink")
                url = next_link if isinstance(next_link, str) else None
        return rows

    async def answer(
        self,
        object_type: str,
        values: Mapping[str, Scalar],
        *,
        version: str | None,
        fields: Sequence[str],
        associations: Sequence[str],
    ) -> Record | None:
        """`consumers.answered.ChangeAnswers`: a delta row (its columns, without annotations) as `read`
        returns it; the table's metadata is read first, once per process, as `read` does. None, so the row
        is read, when a field is a lookup read by name (its formatted value is an annotation the event does
        not keep), a column or a lookup is not in the row (a configured ``$select``), a polymorphic lookup
        holds an id (its target table is the ``lookuplogicalname`` annotation), or the row version is
        unknown (writes send it as If-Match)."""
        if version is None or not version.isdigit():
            return None
        columns = await self._columns(object_type)
        readable = [f for f in dict.fromkeys(fields) if columns.exists(f) or _RAW_LOOKUP.match(f)]
        if any(f in columns.lookups or f not in values for f in readable):
            return None
        for key in associations:
            lookup = parse_key(key)[0]
            raw = f"_{lookup}_value"
            if raw not in values or (lookup in POLYMORPHIC and values[raw] is not None):
                return None
        row = {**values, "@odata.etag": f'W/"{version}"'}
        return self._record(object_type, row, columns, readable, associations)

    def _record(
        self,
        table: str,
        row: Mapping[str, Any],
        columns: _Columns,
        fields: Sequence[str],
        associations: Sequence[str],
    ) -> Record:
        linked: dict[str, str | None] = {}
        for key in associations:
            lookup, target = parse_key(key)
            value = row.get(f"_{lookup}_value")
            points_to = row.get(f"_{lookup}_value@{_LOGICAL}")
            linked[key] = str(value) if value and points_to in {None, target} else None
        values: dict[str, Scalar] = {}
        for name in fields:
            if name in columns.lookups:
                raw = f"_{name}_value"
                if raw in row:  # the display name of the record it points to; None when it is empty
                    shown = row.get(f"{raw}@{_FORMATTED}") if row[raw] is not None else None
                    values[name] = shown if isinstance(shown, str) else None
            elif name in row:
                values[name] = _scalar(row[name])
        etag = row.get("@odata.etag")
        return Record(
            object_type=table,
            object_id=str(row.get(f"{table}id")).lower(),
            values=values,
            version=etag if isinstance(etag, str) else None,
            modified_at=parse_time(row.get("modifiedon")),
            associations=linked,
        )

    # -- writes -------------------------------------------------------------------------------------

    async def fields(self, object_type: str, with_options: Collection[str]) -> dict[str, FieldInfo]:
        """The table's columns: ``AttributeType``, ``IsValidForCreate``/``IsValidForUpdate`` (Learn,
        AttributeMetadata), and the options of the choice columns in ``with_options``."""
        url = paths.with_options(
            paths.attributes(self._client.api_root, object_type),
            select=["LogicalName", "AttributeType", "IsValidForCreate", "IsValidForUpdate"],
        )
        with _system_errors():
            try:
                answer = await self._client.get_json(url, endpoint=paths.METADATA_ATTRIBUTES)
            except FatalError as error:
                if error.status in {0, 401, 403}:
                    raise
                return {}  # a table the org does not have
        found: dict[str, FieldInfo] = {}
        for a in answer.get("value") or []:
            if not isinstance(a, dict) or not a.get("LogicalName"):
                continue
            name, kind = str(a["LogicalName"]), str(a.get("AttributeType"))
            options = None
            if kind == "Picklist" and name in with_options:
                with contextlib.suppress(LookupError):
                    options = frozenset(await self.option_labels(object_type, name))
            writable = bool(a.get("IsValidForCreate")) or bool(a.get("IsValidForUpdate"))
            found[name] = FieldInfo(kind=kind, writable=writable, options=options)
        return found

    async def option_labels(self, object_type: str, field: str) -> dict[str, str]:
        """A choice column's options: ``PicklistAttributeMetadata`` with its ``OptionSet`` expanded,
        ``Options[].Value`` -> ``Label.UserLocalizedLabel.Label`` (fact sheet ``dataverse.md``, metadata)."""
        url = paths.attribute_options(self._client.api_root, object_type, field)
        url = paths.with_options(url, select=["LogicalName"], expand="OptionSet")
        with _system_errors():
            try:
                answer = await self._client.get_json(url, endpoint=paths.METADATA_ATTRIBUTE_OPTIONS)
            except FatalError as error:  # 404: no such column, or not a choice column
                if error.status in {0, 401, 403}:
                    raise
                raise LookupError(f"dataverse {object_type}.{field}: {short(str(error))}") from error
        options = (answer.get("OptionSet") or {}).get("Options")
        if not isinstance(options, list):
            raise LookupError(f"dataverse {object_type}.{field} lists no options")
        found: dict[str, str] = {}
        for option in options:
            value = option.get("Value") if isinstance(option, dict) else None
            if isinstance(value, int):
                label = ((option.get("Label") or {}).get("UserLocalizedLabel") or {}).get("Label")
                found[str(value)] = str(label) if label else str(value)
        return found

    async def lookup(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        """No lookup is made here: a lookup column is read as its display name (``formatted_value``)."""
        del kind, keys
        return {}

    async def owners(self, *, refresh: bool = False) -> Sequence[Owner]:
        """The org's system users, enabled or not (`cdc.owner_lists`)."""
        return await self.owner_list.get(refresh=refresh)

    async def _system_users(self) -> list[Owner]:
        """``systemusers`` with ``internalemailaddress`` (the user's primary email) and ``isdisabled``
        (a disabled user cannot own records: 0x80040225 UserDisabled), every page."""
        rows = await self._query("systemuser", _USER_COLUMNS, None, "owners", _PREFER_READ)
        return [
            Owner(str(row["systemuserid"]).lower(), str(row["internalemailaddress"]), not row["isdisabled"])
            for row in rows
            if row.get("systemuserid") and row.get("internalemailaddress")
        ]

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        """Nothing known: Dataverse records who last modified a row (``modifiedby``), not a column, so a
        value this daemon wrote cannot be told from a user's edit of another column (README, known gaps)."""
        del object_type, ids, fields
        return {}

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        outcomes: dict[int, WriteOutcome] = {}
        parts: list[tuple[int, Part]] = []
        for index, op in enumerate(ops):
            keyed, columns = False, _FALLBACK
            if op.kind is WriteKind.CREATE and op.origin_id:
                keyed, columns = await self._keyed(op.object_type), await self._columns(op.object_type)
            try:
                parts.append((index, self._part(op, columns, keyed=keyed)))
            except ValueError as error:
                outcomes[index] = WriteOutcome(op.ref, ok=False, error=short(str(error)))
        for chunk in chunks(parts, self._batch_size):
            answers = await self._batch([part for _, part in chunk])
            for (index, _), answer in zip(chunk, answers, strict=True):
                outcomes[index] = self._outcome(ops[index], answer)
        return [outcomes[index] for index in range(len(ops))]

    def _part(self, op: WriteOp, columns: _Columns, *, keyed: bool) -> Part:
        """One request of the batch; ValueError for an op that cannot be sent (that op's error). A create
        copying a HubSpot record (``origin_id``) is an upsert by the alternate key on `HUBSPOT_ID_COLUMN`
        when the table has one (the same create sent twice updates the row the first one made), else a
        POST that still fills the column when the table has it."""
        root, entity_set, key = self._client.api_root, self._set(op.object_type), f"{op.object_type}id"
        if op.kind is not WriteKind.CREATE and not (op.object_id and _GUID.match(op.object_id)):
            raise ValueError(f"{op.kind} needs the record's id (a GUID), not {op.object_id!r}")
        row = paths.row(root, entity_set, op.object_id or "")  # the id of an update or delete (checked)
        if op.kind is WriteKind.DELETE:
            headers = {"If-Match": op.if_match} if op.if_match else {}
            return Part("DELETE", row, headers)
        body = _owner_bound(dict(op.values))
        for assoc, related in op.associations.items():
            target = parse_key(assoc)[1]
            if related is not None and not _GUID.match(related):
                raise ValueError(f"{assoc}: {related!r} is not a record id")
            bind = paths.reference(self._set(target), related) if related is not None else None
            body[f"{self._nav(assoc)}@odata.bind"] = bind
        headers = {"Content-Type": "application/json; type=entry", "Prefer": "return=representation"}
        answered = [key, "modifiedon"]
        if op.kind is WriteKind.CREATE and op.origin_id and keyed:
            url = paths.row_by_key(root, entity_set, HUBSPOT_ID_COLUMN, op.origin_id)
            return Part("PATCH", paths.with_options(url, select=answered), headers, orjson.dumps(body))
        if op.kind is WriteKind.CREATE:
            if op.origin_id and columns.known is not None and HUBSPOT_ID_COLUMN in columns.known:
                body[HUBSPOT_ID_COLUMN] = op.origin_id
            url = paths.with_options(paths.rows(root, entity_set), select=answered)
            return Part("POST", url, headers, orjson.dumps(body))
        headers["If-Match"] = op.if_match or "*"
        return Part("PATCH", paths.with_options(row, select=answered), headers, orjson.dumps(body))

    async def _batch(self, parts: list[Part]) -> list[PartAnswer]:
        content_type, body = encode(parts)
        headers = {
            "Content-Type": content_type,
            "Accept": "multipart/mixed",
            "Prefer": "odata.continue-on-error",
        }
        with _system_errors():
            answer = await self._client.send(
                "POST", paths.batch(self._client.api_root), endpoint=paths.BATCH, body=body, headers=headers
            )
        answers = decode(answer.headers.get("Content-Type", ""), answer.body)
        if len(answers) != len(parts):
            raise CrmUnavailableError(
                SourceSystem.DATAVERSE, f"$batch answered {len(answers)} of {len(parts)} parts"
            )
        for part_answer in answers:
            if part_answer.status >= 400 and not _record_error(part_answer):  # noqa: PLR2004
                _, message = _error_text(part_answer)
                retry_after = part_answer.headers.get("retry-after", "")
                raise CrmUnavailableError(
                    SourceSystem.DATAVERSE,
                    f"a $batch part: {message}",
                    retry_after=float(retry_after) if retry_after.isdigit() else None,
                )
        return answers

    def _outcome(self, op: WriteOp, answer: PartAnswer) -> WriteOutcome:
        if answer.status >= 400:  # noqa: PLR2004 -- HTTP error range
            code, message = _error_text(answer)
            if answer.status == 404 and op.kind is WriteKind.DELETE:  # noqa: PLR2004 -- already gone
                return WriteOutcome(op.ref, ok=True, object_id=op.object_id)
            if _stale(op, answer.status, code):
                return WriteOutcome(op.ref, ok=False, object_id=op.object_id, conflict=True)
            return WriteOutcome(op.ref, ok=False, object_id=op.object_id, error=message)
        row: Any = {}
        if answer.body:
            with contextlib.suppress(orjson.JSONDecodeError):
                row = orjson.loads(answer.body)
        row = row if isinstance(row, dict) else {}
        object_id = row.get(f"{op.object_type}id") or op.object_id
        if object_id is None and (found := _ENTITY_ID.search(answer.headers.get("odata-entityid", ""))):
            object_id = found.group(1)
        etag = row.get("@odata.etag")
        return WriteOutcome(
            op.ref,
            ok=True,
            object_id=str(object_id).lower() if object_id else None,
            version=etag if isinstance(etag, str) else None,
            modified_at=parse_time(row.get("modifiedon")),
        )


@contextlib.asynccontextmanager
async def open_dataverse_gateway(
    settings: DataverseSettings, metrics: Metrics, *, policy: RetryPolicy = GATEWAY_POLICY, **options: Any
) -> AsyncIterator[DataverseGateway]:
    """A gateway with its own token provider and client for ``Settings.dataverse``; the tenant is the org
    host, as in the poller's keys. ``options`` go to `DataverseGateway` (``entity_sets``, ...)."""
    tokens = TokenProvider(settings)
    client = DataverseClient(settings, tokens, metrics, policy=policy)
    try:
        with _system_errors():
            await tokens.token()
        await client.start()
        yield DataverseGateway(client, tenant=tokens.org_host, **options)
    finally:
        await client.close()
        tokens.close()


def _compares(actual: str, value: str, *, contains: bool) -> bool:
    """A row's value against a value asked for, case-insensitively as Dataverse's collation compares."""
    return value.casefold() in actual.casefold() if contains else actual.casefold() == value.casefold()
