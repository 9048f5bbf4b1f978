"""The app's webhook settings and subscriptions (webhooks API v3), and which events they let through.

Facts (sheet §1.3, §1.5): one target URL per app; subscriptions are created paused (``active: false``);
``propertyChange`` subscriptions name one property each and ``hs_lastmodifieddate`` cannot be subscribed;
1,000 subscriptions per app at most. Generic ``object.*`` subscriptions carry ``objectTypeId``.

Sandbox choice: with ``require_subscriptions`` off (the default, so ``cdc sandbox --webhook-url`` works
before anything is provisioned) every event is sent, under a synthetic subscription id when none
matches; switched on (admin API), only events an active subscription matches are sent, as HubSpot does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.objects import OBJECT_TYPES

__all__ = ["Subscription", "Subscriptions"]

MAX_SUBSCRIPTIONS = 1000
ACTIONS = ("creation", "deletion", "propertyChange", "associationChange", "merge", "restore")
PREFIXES = ("contact", "company", "deal", "ticket", "product", "line_item", "conversation", "object")
UNSUBSCRIBABLE = frozenset({"hs_lastmodifieddate", "num_unique_conversion_events"})
TYPE_IDS = {ot.singular: ot.type_id for ot in OBJECT_TYPES.values()}


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
    def __init__(self, first_id: int) -> None:
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
        if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
            raise errors.bad_request("eventType is required")
        event_type: str = body["eventType"]
        prefix, _, action = event_type.partition(".")
        if prefix not in PREFIXES or action not in (*ACTIONS, "privacyDeletion", "newMessage"):
            raise errors.bad_request(f"Unknown eventType: {event_type}")
        prop = body.get("propertyName")
        if action == "propertyChange" and not prop:
            raise errors.bad_request("propertyName is required for propertyChange subscriptions")
        if prop in UNSUBSCRIBABLE:
            raise errors.bad_request(f"Cannot subscribe to changes of {prop}")
        object_type_id = body.get("objectTypeId")
        if prefix == "object" and not object_type_id:
            raise errors.bad_request("objectTypeId is required for object.* subscriptions")
        with self._lock:
            if len(self.items) >= MAX_SUBSCRIPTIONS:
                raise errors.bad_request(
                    "Couldn't create another subscription. You've reached the maximum number allowed per "
                    "application (1000)."
                )
            self._next_id += 1
            sub = Subscription(
                self._next_id,
                event_type,
                prop,
                object_type_id,
                bool(body.get("active", False)),
                now_iso,
                now_iso,
            )
            self.items[sub.id] = sub
            return sub

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
        return _synthetic_id(singular, action), f"{singular}.{action}"


def _synthetic_id(singular: str, action: str) -> int:
    return 1000 * (PREFIXES.index(singular) + 1) + ACTIONS.index(action)
