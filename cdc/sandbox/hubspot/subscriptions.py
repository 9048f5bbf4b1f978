"""The app's webhook settings and subscriptions, and which events they let through.

Two kinds of app (fact sheet hubspot_2026.md §2-§3): a legacy public app manages them through the
webhooks API v3 (:meth:`Subscriptions.create`); a project app (the default) has them in its webhooks
component file, which ``hs project upload`` deploys whole (:meth:`Subscriptions.deploy`, the admin API's
stand-in for the upload).

Facts (sheet §1.3, §1.5): one target URL per app; subscriptions are created paused (``active: false``);
``propertyChange`` subscriptions name one property each and ``hs_lastmodifieddate`` cannot be subscribed;
1,000 subscriptions per app at most. Generic ``object.*`` subscriptions carry ``objectTypeId``.

Sandbox choice: with ``require_subscriptions`` off (the default, so ``cdc sandbox --webhook-url`` works
before anything is provisioned) every event is sent, under a synthetic subscription id when none
matches, in the format of the app's kind (generic ``object.*`` for a project app, whose files list
``crmObjects``; ``contact.*`` for a legacy one); switched on (admin API), only events an active
subscription matches are sent, as HubSpot does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.objects import OBJECT_TYPES

__all__ = ["Subscription", "Subscriptions"]

MAX_SUBSCRIPTIONS = 1000
ACTIONS = ("creation", "deletion", "propertyChange", "associationChange", "merge", "restore")
HUB_EVENTS = ("privacyDeletion", "newMessage")
"""Actions with no generic ``object.*`` form: ``contact.privacyDeletion``, ``conversation.*`` exist only in
the old format (fact sheet hubspot_2026.md §3), a project app lists them under ``hubEvents``."""
PREFIXES = ("contact", "company", "deal", "ticket", "product", "line_item", "conversation", "object")
UNSUBSCRIBABLE = frozenset({"hs_lastmodifieddate", "num_unique_conversion_events"})
TYPE_IDS = {ot.singular: ot.type_id for ot in OBJECT_TYPES.values()}
AppKind = Literal["project", "legacy"]
# The arrays of a webhooks component's ``config.subscriptions`` (configure-webhooks page, fact sheet §3).
ARRAYS = ("crmObjects", "legacyCrmObjects", "hubEvents")


@dataclass
class Subscription:
    id: int
    event_type: str
    property_name: str | None
    object_type_id: str | None
    active: bool
    created_at: str
    updated_at: str

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(self.id),
            "eventType": self.event_type,
            "active": self.active,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.property_name:
            body["propertyName"] = self.property_name
        if self.object_type_id:
            body["objectTypeId"] = self.object_type_id
        return body


class Subscriptions:
    def __init__(self, first_id: int, app_kind: AppKind = "project") -> None:
        self.app_kind: AppKind = app_kind
        self._lock = threading.Lock()
        self._next_id = first_id
        self.items: dict[int, Subscription] = {}
        self.target_url: str | None = None
        self.max_concurrent = 10
        self.period = "SECONDLY"
        self.settings_times: tuple[str, str] | None = None
        self.require_subscriptions = False

    # ---- settings ------------------------------------------------------------------------------
    def settings_json(self) -> dict[str, Any] | None:
        if self.target_url is None or self.settings_times is None:
            return None
        return {
            "targetUrl": self.target_url,
            "throttling": {"maxConcurrentRequests": self.max_concurrent, "period": self.period},
            "createdAt": self.settings_times[0],
            "updatedAt": self.settings_times[1],
        }

    def put_settings(self, body: Any, now_iso: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("targetUrl"), str):
            raise errors.bad_request("targetUrl is required")
        throttling = body.get("throttling") or {}
        concurrent = throttling.get("maxConcurrentRequests", self.max_concurrent)
        if not isinstance(concurrent, int) or concurrent <= 5:  # noqa: PLR2004 -- "must be greater than five" (D-WH)
            raise errors.bad_request("maxConcurrentRequests must be a number greater than five")
        period = throttling.get("period", self.period)
        if period not in {"SECONDLY", "ROLLING_MINUTE"}:
            raise errors.bad_request("period must be SECONDLY or ROLLING_MINUTE")
        with self._lock:
            self.target_url, self.max_concurrent, self.period = body["targetUrl"], concurrent, period
            created = self.settings_times[0] if self.settings_times else now_iso
            self.settings_times = (created, now_iso)
        settings = self.settings_json()
        assert settings is not None  # noqa: S101 -- just set above
        return settings

    def set_target(self, url: str | None, now_iso: str) -> None:
        with self._lock:
            self.target_url = url
            created = self.settings_times[0] if self.settings_times else now_iso
            self.settings_times = (created, now_iso) if url else None

    # ---- subscriptions ---------------------------------------------------------------------------
    def create(self, body: Any, now_iso: str) -> Subscription:
        fields = _checked(body)
        with self._lock:
            if len(self.items) >= MAX_SUBSCRIPTIONS:
                raise errors.bad_request(
                    "Couldn't create another subscription. You've reached the maximum number allowed per "
                    "application (1000)."
                )
            return self._add(fields, now_iso)

    def _add(self, fields: tuple[str, str | None, str | None, bool], now_iso: str) -> Subscription:
        self._next_id += 1
        sub = Subscription(self._next_id, *fields, now_iso, now_iso)
        self.items[sub.id] = sub
        return sub

    def deploy(self, component: Any, now_iso: str) -> list[Subscription]:
        """Replace every subscription with those of a webhooks component, as an upload of the project does;
        ``config.settings`` (``targetUrl``, ``maxConcurrentRequests``) is taken when present. Each entry is
        checked as the API checks a new subscription; one wrong entry refuses the whole file."""
        config = component.get("config") if isinstance(component, dict) else None
        subs = config.get("subscriptions") if isinstance(config, dict) else None
        if not isinstance(config, dict) or not isinstance(subs, dict):
            raise errors.bad_request("config.subscriptions is required")
        checked = []
        for array in ARRAYS:
            entries = subs.get(array) or []
            if not isinstance(entries, list):
                raise errors.bad_request(f"subscriptions.{array} must be a list")
            checked += [_checked(_v3_body(array, entry)) for entry in entries]
        if len(checked) > MAX_SUBSCRIPTIONS:
            raise errors.bad_request(f"{len(checked)} subscriptions; an app takes {MAX_SUBSCRIPTIONS}")
        settings = config.get("settings")
        if isinstance(settings, dict) and settings.get("targetUrl"):
            concurrent = settings.get("maxConcurrentRequests", self.max_concurrent)
            throttling = {"maxConcurrentRequests": concurrent}
            self.put_settings({"targetUrl": settings["targetUrl"], "throttling": throttling}, now_iso)
        with self._lock:
            self.items = {}
            return [self._add(fields, now_iso) for fields in checked]

    def get(self, sub_id: str) -> Subscription:
        sub = self.items.get(int(sub_id)) if sub_id.isdigit() else None
        if sub is None:
            raise errors.not_found(f"Subscription {sub_id} not found")
        return sub

    def set_active(self, sub_id: str, active: Any, now_iso: str) -> Subscription:
        if not isinstance(active, bool):
            raise errors.bad_request("active must be a boolean")
        sub = self.get(sub_id)
        with self._lock:
            sub.active, sub.updated_at = active, now_iso
        return sub

    def delete(self, sub_id: str) -> None:
        with self._lock:
            self.items.pop(self.get(sub_id).id, None)

    # ---- matching --------------------------------------------------------------------------------
    def route(self, singular: str, action: str, property_name: str | None) -> tuple[int, str] | None:
        """(subscriptionId, subscriptionType) for an event, or None when nothing would send it."""
        type_id = TYPE_IDS.get(singular)
        for sub in sorted(self.items.values(), key=lambda s: s.id):
            if not sub.active or (sub.property_name and sub.property_name != property_name):
                continue
            if sub.event_type == f"{singular}.{action}":
                return sub.id, sub.event_type
            if sub.event_type == f"object.{action}" and sub.object_type_id == type_id:
                return sub.id, sub.event_type
        if self.require_subscriptions:
            return None
        prefix = "object" if self.app_kind == "project" and action not in HUB_EVENTS else singular
        return _synthetic_id(singular, action), f"{prefix}.{action}"


def _checked(body: Any) -> tuple[str, str | None, str | None, bool]:
    """(eventType, propertyName, objectTypeId, active) of a subscription body HubSpot would take."""
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        raise errors.bad_request("eventType is required")
    event_type: str = body["eventType"]
    prefix, _, action = event_type.partition(".")
    if prefix not in PREFIXES or action not in (*ACTIONS, *HUB_EVENTS):
        raise errors.bad_request(f"Unknown eventType: {event_type}")
    prop = body.get("propertyName")
    if action == "propertyChange" and not prop:
        raise errors.bad_request("propertyName is required for propertyChange subscriptions")
    if prop in UNSUBSCRIBABLE:
        raise errors.bad_request(f"Cannot subscribe to changes of {prop}")
    object_type_id = body.get("objectTypeId")
    if prefix == "object" and not object_type_id:
        raise errors.bad_request("objectTypeId is required for object.* subscriptions")
    return event_type, prop, object_type_id, bool(body.get("active", False))


def _v3_body(array: str, entry: Any) -> dict[str, Any]:
    """A webhooks component entry as the body the API would take for it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("subscriptionType"), str):
        raise errors.bad_request(f"every entry of {array} needs a subscriptionType")
    kind = entry["subscriptionType"]
    generic = kind.startswith("object.")
    if generic != (array == "crmObjects"):
        raise errors.bad_request(f"{kind} does not belong in {array}")
    body: dict[str, Any] = {"eventType": kind, "active": entry.get("active", False) is True}
    if entry.get("propertyName") is not None:
        body["propertyName"] = entry["propertyName"]
    if generic:
        type_id = TYPE_IDS.get(str(entry.get("objectType")))
        if type_id is None:
            raise errors.bad_request(f"Unknown objectType: {entry.get('objectType')}")
        body["objectTypeId"] = type_id
    return body


def _synthetic_id(singular: str, action: str) -> int:
    return 1000 * (PREFIXES.index(singular) + 1) + (*ACTIONS, *HUB_EVENTS).index(action)
