"""The Webhooks Journal's subscriptions as code (`cdc provision`): what the sync configuration reads, made
idempotently, the drift listed on a dry run.

From the webhook subscriptions the configuration needs (`cdc.provisioning.needs`: per HubSpot object an
enabled step touches, its actions and the properties it reads), per portal (``portalId`` is required, so
one subscription per account, fact sheet hubspot_2026.md §5):

- one ``OBJECT`` subscription per object type: CREATE, UPDATE, DELETE, MERGE, RESTORE, and the properties
  the steps read (``objectIds`` empty: every record; the spec marks it required, so it is sent);
- one ``ASSOCIATION`` subscription per object type synced with others: ASSOCIATION_ADDED/_REMOVED to those;
- one ``GDPR_PRIVACY_DELETION`` subscription per object type whose privacy deletions the configuration needs
  (``contact.privacyDeletion``, `cdc.provisioning.needs.PRIVACY_DELETION_OBJECTS`): GDPR_DELETE. Without it
  a privacy deletion never reaches a journal-only deployment (``hubspot.change_sources: journal``, or every
  webhook lost), and no sweep finds it later: the record is gone for good. Schema
  ``GdprPrivacyDeletionSubscriptionUpsertRequest`` (``actions``, ``objectTypeId``, ``portalId`` required).

Compared with what is there by (subscription type, portal, object type); a subscription that lacks an action,
a property or an associated type, or holds others, is drift: a ``POST`` upserts it (the journal's API
upserts, spec ``post-/webhooks-journal/subscriptions/2026-03``). Subscriptions of other types or portals are
left alone. Schemas: spec ``PublicApiSpecs/Webhooks Journal/Webhooks Journal/Rollouts/284944/2026-03/
webhooksJournal.json`` (``ObjectSubscriptionUpsertRequest``, ``AssociationSubscriptionUpsertRequest``,
``GdprPrivacyDeletionSubscriptionUpsertRequest``).

Not made here: property filters (a filter on a sync flag would hide the change that turns the flag off, which
the sync must see to stop syncing a record; the step's own filter decides).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cdc.hubspot.client import HubSpotClient
from cdc.hubspot.events import OBJECT_TYPE_IDS
from cdc.provisioning.report import Item, Section
from cdc.provisioning.specs import SubscriptionSpec

__all__ = ["ensure_journal_subscriptions", "journal_drift", "wanted_journal_subscriptions"]

Say = Callable[[str], None]
OBJECT_ACTIONS = ("CREATE", "UPDATE", "DELETE", "MERGE", "RESTORE")
ASSOCIATION_ACTIONS = ("ASSOCIATION_ADDED", "ASSOCIATION_REMOVED")
GDPR_ACTIONS = ("GDPR_DELETE",)
_TYPE_IDS = {name: type_id for type_id, name in OBJECT_TYPE_IDS.items()}


def wanted_journal_subscriptions(specs: Sequence[SubscriptionSpec], portal: int) -> list[dict[str, Any]]:
    """The subscription bodies ``specs`` (the webhook subscriptions the configuration needs) come to."""
    objects = [obj for obj in dict.fromkeys(spec.object for spec in specs) if obj in _TYPE_IDS]
    bodies: list[dict[str, Any]] = []
    for obj in objects:
        properties = sorted({s.property_name for s in specs if s.object == obj and s.property_name})
        type_id = _TYPE_IDS[obj]
        bodies.append({
            "subscriptionType": "OBJECT", "portalId": portal, "objectTypeId": type_id,
            "actions": list(OBJECT_ACTIONS), "properties": properties, "objectIds": [],
        })  # fmt: skip
        if any(s.object == obj and s.action == "privacyDeletion" for s in specs):
            bodies.append({
                "subscriptionType": "GDPR_PRIVACY_DELETION", "portalId": portal, "objectTypeId": type_id,
                "actions": list(GDPR_ACTIONS),
            })  # fmt: skip
        others = [_TYPE_IDS[o] for o in objects if o != obj]
        if others:
            bodies.append({
                "subscriptionType": "ASSOCIATION", "portalId": portal, "objectTypeId": type_id,
                "actions": list(ASSOCIATION_ACTIONS), "associatedObjectTypeIds": others, "objectIds": [],
            })  # fmt: skip
    return bodies


def _key(body: dict[str, Any]) -> tuple[str, str, str]:
    return (
        str(body.get("subscriptionType", "OBJECT")),
        str(body.get("portalId")),
        str(body.get("objectTypeId")),
    )


def _differs(want: dict[str, Any], have: dict[str, Any]) -> str:
    """What an existing subscription lacks or holds beyond what is wanted ('' when nothing)."""
    wrong = []
    for field in ("actions", "properties", "associatedObjectTypeIds"):
        if field not in want:
            continue
        wanted, held = {str(v) for v in want[field]}, {str(v) for v in have.get(field) or []}
        if wanted - held:
            wrong.append(f"{field} lacks {', '.join(sorted(wanted - held))}")
        if held - wanted:
            wrong.append(f"{field} also holds {', '.join(sorted(held - wanted))}")
    if have.get("objectIds"):
        wrong.append("objectIds limits it to some records")
    return "; ".join(wrong)


def journal_drift(
    wanted: Sequence[dict[str, Any]], listed: Sequence[dict[str, Any]]
) -> list[tuple[dict[str, Any], str]]:
    """Each wanted body with what is wrong with it ('' when it is there as wanted)."""
    existing = {_key(sub): sub for sub in listed}
    return [
        (want, "missing" if _key(want) not in existing else _differs(want, existing[_key(want)]))
        for want in wanted
    ]


def _item(body: dict[str, Any], detail: str = "") -> Item:
    name = OBJECT_TYPE_IDS.get(str(body["objectTypeId"]), str(body["objectTypeId"]))
    return Item("journal subscription", name, str(body["subscriptionType"]).lower(), detail=detail)


async def ensure_journal_subscriptions(
    client: HubSpotClient, wanted: Sequence[dict[str, Any]], section: Section, *, dry_run: bool, say: Say
) -> None:
    """Upsert what drifted (missing on a dry run, with what is wrong); what is as wanted is present."""
    api = client.api
    listed = (await client.call(api.journal_subscriptions)).get("results") or []
    for want, wrong in journal_drift(wanted, [s for s in listed if isinstance(s, dict)]):
        if not wrong:
            section.present.append(_item(want))
            continue
        if dry_run:
            section.missing.append(_item(want, wrong))
            say(f"would upsert {_item(want, wrong)}")
            continue
        await client.call(api.journal_upsert_subscription, body=want)
        section.created.append(_item(want, wrong))
        say(f"upserted {_item(want, wrong)}")
