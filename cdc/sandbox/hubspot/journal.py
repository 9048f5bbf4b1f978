"""The Webhooks Journal: every change the sandbox would send as a webhook, kept as entries read by offset.

What HubSpot documents, and the sandbox does (fact sheet hubspot_2026.md §5; spec
HubSpot/HubSpot-public-api-spec-collection ``PublicApiSpecs/Webhooks Journal/Webhooks Journal/Rollouts/
284944/2026-03/webhooksJournal.json``, schemas ``JournalFetchResponse``, ``ObjectSubscriptionUpsertRequest``,
``AssociationSubscriptionUpsertRequest``, ``GdprPrivacyDeletionSubscriptionUpsertRequest``,
``FilterCreateRequest``, ``Condition``):

- an entry holds the events of one store change for the journal subscriptions they match; its offset is an
  opaque UUID string (never a number: nothing can be computed from it);
- entries are kept for 3 days of the sandbox clock; a read naming an offset that expired (or never
  existed) is a 404;
- a read answers ``{currentOffset, expiresAt, url}``: the file behind ``url`` is the entry
  (``{offset, publishedAt, journalEvents[]}``, fact sheet: second-hand) and the URL ends at ``expiresAt``;
- subscriptions are per portal and object type (``portalId`` is required), with actions, properties,
  object ids (empty: every record) and, for associations, the associated type ids; filters are
  ``CRM_OBJECT_PROPERTY`` conditions on the record's current values, all of which must hold;
- ``GDPR_PRIVACY_DELETION`` subscriptions (schema ``GdprPrivacyDeletionSubscriptionUpsertRequest``:
  ``actions``, ``objectTypeId``, ``portalId`` required; no properties, no object ids) journal a privacy
  deletion as a GDPR_DELETE event when they name that action; OBJECT subscriptions journal only the DELETE
  that comes with it (the spec lets any action be named; which type sends GDPR_DELETE is not documented:
  here only the subscription type made for it). Other subscription types are refused (400).

What HubSpot does not document, and the sandbox does the harsh way: the delay before an entry appears
(knob ``journal_delay_ms``: an entry is appended only once it is due, so it lands after entries read
meanwhile, never before them), lost entries (knob ``journal_gap_rate``), who made a change (the events
carry no ``changeSource``/``sourceId``), merge fields (the webhook's names, unverified), a GDPR_DELETE
event's shape (here a ``crmObject`` event with no values, as a DELETE's). Which key a
``POST`` upserts by is not documented either: here (subscription type, portal, object type).
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cdc.sandbox.clock import Clock
from cdc.sandbox.faults import Faults
from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.store import Change, Record, iso

__all__ = [
    "ACTIONS",
    "FILE_URL_LIFETIME_S",
    "GDPR",
    "MAX_BATCH",
    "RETENTION_S",
    "SUBSCRIPTION_TYPES",
    "Entry",
    "Journal",
    "JournalSubscription",
]

RETENTION_S = 3 * 24 * 3600
"""Entries are kept "for the past 3 days" (journal-entries guide)."""
FILE_URL_LIFETIME_S = 300.0
"""How long a file URL lasts: not documented (``expiresAt`` says it per answer); short on purpose."""
MAX_BATCH = 100
"""Batch reads take a ``count`` of 1 to 100 (2027-03-beta reference pages, fact sheet §5)."""
ACTIONS = frozenset({
    "CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE", "ASSOCIATION_ADDED", "ASSOCIATION_REMOVED",
    "SNAPSHOT", "APP_INSTALL", "APP_UNINSTALL", "ADDED_TO_LIST", "REMOVED_FROM_LIST", "GDPR_DELETE",
})  # fmt: skip
OPERATORS = frozenset({
    "EQ", "N_EQ", "LT", "GT", "LTE", "GTE", "CONTAINS", "STARTS_WITH", "ENDS_WITH", "IN", "NOT_IN",
    "IS_EMPTY", "IS_NOT_EMPTY",
})  # fmt: skip
GDPR = "GDPR_PRIVACY_DELETION"
SUBSCRIPTION_TYPES = frozenset({"OBJECT", "ASSOCIATION", GDPR})
_KINDS = {"creation": "CREATE", "propertyChange": "UPDATE", "deletion": "DELETE", "restore": "RESTORE",
          "merge": "MERGE"}  # fmt: skip


@dataclass
class JournalSubscription:
    id: int
    subscription_type: str  # SUBSCRIPTION_TYPES
    portal_id: int
    object_type_id: str
    actions: list[str]
    properties: list[str]
    object_ids: list[int]
    associated_type_ids: list[str]
    created_at: str
    updated_at: str

    def as_json(self, app_id: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "appId": app_id, "subscriptionType": self.subscription_type,
            "portalId": self.portal_id, "objectTypeId": self.object_type_id, "actions": self.actions,
            "properties": self.properties, "objectIds": self.object_ids,
            "createdAt": self.created_at, "updatedAt": self.updated_at,
        }  # fmt: skip
        if self.subscription_type == "ASSOCIATION":
            body["associatedObjectTypeIds"] = self.associated_type_ids
        if self.subscription_type == GDPR:  # its upsert request has neither (module docstring)
            del body["properties"], body["objectIds"]
        return body

    def covers(self, type_id: str, object_id: str) -> bool:
        return self.object_type_id == type_id and (not self.object_ids or int(object_id) in self.object_ids)


@dataclass
class Entry:
    offset: str
    published_ms: int
    events: list[dict[str, Any]]

    def file(self) -> dict[str, Any]:
        return {"offset": self.offset, "publishedAt": iso(self.published_ms), "journalEvents": self.events}


@dataclass
class _Pending:
    due_ms: int
    events: list[dict[str, Any]]


def _str_list(body: dict[str, Any], name: str, *, required: bool = True) -> list[str]:
    value = body.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise errors.bad_request(f"{name} must be a list", **{name: ["required"]})
    return [str(v) for v in value]


def _holds(condition: dict[str, Any], properties: dict[str, str]) -> bool:
    """One ``CRM_OBJECT_PROPERTY`` condition over a record's current values (absent = empty)."""
    op, actual = condition["operator"], properties.get(condition["property"]) or ""
    wanted, values = str(condition.get("value") or ""), [str(v) for v in condition.get("values") or []]
    numbers = {"LT": float.__lt__, "GT": float.__gt__, "LTE": float.__le__, "GTE": float.__ge__}
    if op in numbers:
        try:
            return bool(numbers[op](float(actual), float(wanted)))
        except ValueError:
            return False
    checks: dict[str, Callable[[], bool]] = {
        "EQ": lambda: actual == wanted, "N_EQ": lambda: actual != wanted,
        "CONTAINS": lambda: wanted in actual, "STARTS_WITH": lambda: actual.startswith(wanted),
        "ENDS_WITH": lambda: actual.endswith(wanted), "IN": lambda: actual in values,
        "NOT_IN": lambda: actual not in values, "IS_EMPTY": lambda: actual == "",
        "IS_NOT_EMPTY": lambda: actual != "",
    }  # fmt: skip
    return checks[op]()


@dataclass
class Journal:
    """The journal of one portal: subscriptions, filters, entries, file links (module docstring)."""

    clock: Clock
    faults: Faults
    portal_id: int
    app_id: int
    rng: random.Random
    lookup: Callable[[str, str], Record | None] = lambda _type_id, _id: None
    """The record behind a change (object type id, id), archived or not: what filters test."""
    subscriptions: dict[int, JournalSubscription] = field(default_factory=dict)
    filters: dict[int, dict[str, Any]] = field(default_factory=dict)
    entries: deque[Entry] = field(default_factory=deque)
    pending: list[_Pending] = field(default_factory=list)
    files: dict[str, tuple[str, float]] = field(default_factory=dict)
    lost: int = 0
    unfetchable: set[int] = field(default_factory=set)
    """A fault for tests: an entry naming one of these object ids has a file that answers 500 at every
    fetch (a storage object that can never be read)."""
    next_id: int = 0
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.next_id = self.rng.randrange(1_000_000, 9_000_000)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ---- subscriptions and filters ---------------------------------------------------------------
    def upsert(self, body: dict[str, Any]) -> JournalSubscription:
        kind = body.get("subscriptionType", "OBJECT")
        if kind not in SUBSCRIPTION_TYPES:
            raise errors.bad_request(
                f"subscriptionType {kind!r} is not served here ({', '.join(sorted(SUBSCRIPTION_TYPES))})"
            )
        portal, type_id = body.get("portalId"), body.get("objectTypeId")
        if not isinstance(portal, int) or not isinstance(type_id, str):
            raise errors.bad_request("portalId (integer) and objectTypeId (string) are required")
        actions = _str_list(body, "actions")
        if unknown := sorted(set(actions) - ACTIONS):
            raise errors.bad_request(f"unknown actions {unknown}")
        object_ids = [int(i) for i in _str_list(body, "objectIds", required=kind != GDPR)]
        properties = _str_list(body, "properties", required=kind == "OBJECT")
        associated = _str_list(body, "associatedObjectTypeIds", required=kind == "ASSOCIATION")
        now = iso(self.clock.epoch_ms())
        for sub in self.subscriptions.values():
            if (sub.subscription_type, sub.portal_id, sub.object_type_id) == (kind, portal, type_id):
                sub.actions, sub.properties, sub.object_ids = actions, properties, object_ids
                sub.associated_type_ids, sub.updated_at = associated, now
                return sub
        self.next_id += 1
        sub = JournalSubscription(
            self.next_id, kind, portal, type_id, actions, properties, object_ids, associated, now, now
        )
        self.subscriptions[sub.id] = sub
        return sub

    def subscription(self, subscription_id: str) -> JournalSubscription:
        found = self.subscriptions.get(int(subscription_id)) if subscription_id.isdigit() else None
        if found is None:
            raise errors.not_found(f"Subscription {subscription_id} not found")
        return found

    def delete(self, subscription_id: str) -> None:
        sub = self.subscription(subscription_id)
        del self.subscriptions[sub.id]
        for filter_id in [f for f, v in self.filters.items() if v["subscriptionId"] == sub.id]:
            del self.filters[filter_id]

    def add_filter(self, body: dict[str, Any]) -> int:
        sub = self.subscription(str(body.get("subscriptionId")))
        conditions = (body.get("filter") or {}).get("conditions")
        if not isinstance(conditions, list) or not conditions:
            raise errors.bad_request("filter.conditions must be a non-empty list")
        for condition in conditions:
            if not isinstance(condition, dict) or condition.get("filterType") != "CRM_OBJECT_PROPERTY":
                raise errors.bad_request("filterType must be CRM_OBJECT_PROPERTY")
            if condition.get("operator") not in OPERATORS or not isinstance(condition.get("property"), str):
                raise errors.bad_request(f"operator must be one of {sorted(OPERATORS)}, with a property")
        self.next_id += 1
        self.filters[self.next_id] = {
            "id": self.next_id, "subscriptionId": sub.id, "filter": {"conditions": conditions},
            "createdAt": self.clock.epoch_ms(),
        }  # fmt: skip
        return self.next_id

    def filter(self, filter_id: str) -> dict[str, Any]:
        found = self.filters.get(int(filter_id)) if filter_id.isdigit() else None
        if found is None:
            raise errors.not_found(f"Filter {filter_id} not found")
        return found

    def _passes(self, sub: JournalSubscription, change: Change) -> bool:
        filters = [f for f in self.filters.values() if f["subscriptionId"] == sub.id]
        if not filters:
            return True
        record = self.lookup(change.object_type.type_id, change.object_id)
        values = record.properties if record is not None else {}
        return all(all(_holds(c, values) for c in f["filter"]["conditions"]) for f in filters)

    # ---- journaling ------------------------------------------------------------------------------
    def record(self, changes: Iterable[Change]) -> None:
        """Journal one store change (what one API call did): one entry, after the delay knob."""
        events: list[dict[str, Any]] = []
        updates: dict[tuple[str, str], dict[str, Any]] = {}
        for change in changes:
            for sub in self.subscriptions.values():
                event = self._event(sub, change)
                if event is None:
                    continue
                if event["action"] != "UPDATE":
                    events.append(event)
                    continue
                held = updates.get((sub.object_type_id, event["objectId"]))
                if held is None:  # one UPDATE per record and write, with every subscribed value changed
                    updates[(sub.object_type_id, event["objectId"])] = event
                    events.append(event)
                else:
                    held["propertyChanges"].update(event["propertyChanges"])
        if not events:
            return
        if self.faults.roll(self.faults.knobs.journal_gap_rate):
            self.lost += 1
            return
        delay_ms = int(self.faults.knobs.journal_delay_ms)
        self.pending.append(_Pending(self.clock.epoch_ms() + delay_ms, events))

    def _event(self, sub: JournalSubscription, change: Change) -> dict[str, Any] | None:
        ot = change.object_type
        if not sub.covers(ot.type_id, change.object_id) or sub.portal_id != self.portal_id:
            return None
        base = {"portalId": self.portal_id, "objectTypeId": ot.type_id, "objectId": int(change.object_id),
                "occurredAt": iso(change.occurred_at)}  # fmt: skip
        if change.kind == "associationChange":
            return self._association(sub, change, base)
        if change.kind == "privacyDeletion" or sub.subscription_type == GDPR:
            return self._privacy_deletion(sub, change, base)
        action = _KINDS.get(change.kind)
        if sub.subscription_type != "OBJECT" or action not in sub.actions or not self._passes(sub, change):
            return None
        event: dict[str, Any] = {**base, "type": "crmObject", "action": action}
        if action == "UPDATE":
            if change.property_name not in sub.properties:
                return None
            event["propertyChanges"] = {change.property_name: change.property_value}
        elif action == "MERGE":
            event.update({k: v for k, v in change.extra.items() if k.endswith(("ObjectId", "Ids"))})
        return event

    def _privacy_deletion(
        self, sub: JournalSubscription, change: Change, base: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A privacy deletion, for a GDPR_PRIVACY_DELETION subscription naming GDPR_DELETE (an OBJECT one
        never sends it: nothing says it does). The record is gone: a filter sees no values."""
        if sub.subscription_type != GDPR or change.kind != "privacyDeletion":
            return None
        if "GDPR_DELETE" not in sub.actions or not self._passes(sub, change):
            return None
        return {**base, "type": "crmObject", "action": "GDPR_DELETE"}

    @staticmethod
    def _association(sub: JournalSubscription, change: Change, base: dict[str, Any]) -> dict[str, Any] | None:
        """An association change, for an ASSOCIATION subscription naming its action and the other type."""
        action = "ASSOCIATION_REMOVED" if change.extra["associationRemoved"] else "ASSOCIATION_ADDED"
        to_type = change.extra["_toObjectTypeId"]
        if sub.subscription_type != "ASSOCIATION" or action not in sub.actions:
            return None
        if to_type not in sub.associated_type_ids:
            return None
        return {**base, "type": "association", "action": action, "associatedObjectTypeId": to_type,
                "associatedObjectId": change.extra["toObjectId"],
                "associationTypeId": change.extra["_associationTypeId"]}  # fmt: skip

    def _settle(self) -> None:
        """Append the entries now due (in due order), and forget those past retention."""
        now = self.clock.epoch_ms()
        due = sorted((p for p in self.pending if p.due_ms <= now), key=lambda p: p.due_ms)
        if due:
            self.pending = [p for p in self.pending if p.due_ms > now]
            self.entries.extend(Entry(self._uuid(), now, p.events) for p in due)
        while self.entries and self.entries[0].published_ms < now - RETENTION_S * 1000:
            self.entries.popleft()
        for key in [k for k, (_, ends) in self.files.items() if ends <= self.clock.time()]:
            del self.files[key]

    # ---- snapshots -------------------------------------------------------------------------------
    def snapshot(self, request: Any) -> dict[str, Any]:
        """One ``CrmObjectSnapshotRequest``: the record's current ``properties`` journaled as a SNAPSHOT
        event (that snapshots land in the journal is inferred from the action enum, fact sheet §5), with a
        status readable at ``status/{id}``: SUCCESS, or FAILED (VALIDATION_ERROR) for a record not found."""
        if not isinstance(request, dict) or not isinstance(request.get("properties"), list):
            raise errors.bad_request(
                "each snapshot request needs objectId, objectTypeId, portalId, properties"
            )
        type_id, object_id = str(request.get("objectTypeId")), str(request.get("objectId"))
        status_id, now = self._uuid(), self.clock.epoch_ms()
        record = self.lookup(type_id, object_id) if object_id.isdigit() else None
        status: dict[str, Any] = {
            "id": status_id,
            "initiatedAt": now,
            "completedAt": now,
            "status": "SUCCESS",
        }
        if record is None or record.archived or request.get("portalId") != self.portal_id:
            status.update(
                status="FAILED", errorCode="VALIDATION_ERROR", message=f"object {object_id} not found"
            )
        else:
            wanted = [str(p) for p in request["properties"]]
            event = {"type": "crmObject", "portalId": self.portal_id, "objectTypeId": type_id,
                     "objectId": int(record.id), "action": "SNAPSHOT", "occurredAt": iso(now),
                     "propertyChanges": {p: record.properties.get(p) for p in wanted}}  # fmt: skip
            self.pending.append(_Pending(now + int(self.faults.knobs.journal_delay_ms), [event]))
        self.snapshots[status_id] = status
        return {"portalId": request.get("portalId"), "objectTypeId": type_id,
                "objectId": request.get("objectId"), "snapshotStatusId": status_id}  # fmt: skip

    def status(self, status_id: str) -> dict[str, Any]:
        found = self.snapshots.get(status_id)
        if found is None:
            raise errors.not_found(f"Status {status_id} not found")
        return found

    # ---- reading ---------------------------------------------------------------------------------
    def _index(self, offset: str) -> int:
        for index, entry in enumerate(self.entries):
            if entry.offset == offset:
                return index
        raise errors.not_found(f"Offset {offset} not found or expired")

    def after(self, offset: str | None, count: int, *, latest: bool = False) -> list[Entry]:
        """Up to ``count`` entries: after ``offset``, the first ones (None), or the last ones (``latest``)."""
        if not 1 <= count <= MAX_BATCH:
            raise errors.bad_request(f"count must be between 1 and {MAX_BATCH}")
        self._settle()
        entries = list(self.entries)
        if latest:
            return entries[-count:]
        start = 0 if offset is None else self._index(offset) + 1
        return entries[start : start + count]

    def at(self, offsets: list[str]) -> tuple[list[Entry], list[str]]:
        """The entries at ``offsets`` (batch/read), and the offsets not found."""
        self._settle()
        found = {e.offset: e for e in self.entries}
        return [found[o] for o in offsets if o in found], [o for o in offsets if o not in found]

    def fetched(self, entry: Entry, base_url: str) -> dict[str, Any]:
        """A read's answer for ``entry``: its offset and a file URL that ends (``JournalFetchResponse``)."""
        key = self._uuid()
        ends = self.clock.time() + FILE_URL_LIFETIME_S
        self.files[key] = (entry.offset, ends)
        return {
            "currentOffset": entry.offset,
            "expiresAt": iso(int(ends * 1000)),
            "url": f"{base_url.rstrip('/')}/_journal-files/{key}",
        }

    def broken(self, key: str) -> bool:
        """Whether the file behind ``key`` is one of the `unfetchable` entries'."""
        held = self.files.get(key)
        entry = next((e for e in self.entries if held is not None and e.offset == held[0]), None)
        return entry is not None and any(e.get("objectId") in self.unfetchable for e in entry.events)

    def file(self, key: str) -> dict[str, Any] | None:
        """The entry a file URL points at; None once the URL ended or the entry expired."""
        self._settle()
        held = self.files.get(key)
        if held is None:
            return None
        for entry in self.entries:
            if entry.offset == held[0]:
                return entry.file()
        return None

    def state(self) -> dict[str, Any]:
        self._settle()
        return {"entries": len(self.entries), "pending": len(self.pending), "lost": self.lost,
                "subscriptions": len(self.subscriptions), "filters": len(self.filters)}  # fmt: skip
