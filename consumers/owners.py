"""Owners as ownership (``lookup: owner``): a record's owner on one side becomes the user with the same
email on the other side, both ways, or the field is skipped with a reason.

The two directories are what the gateways read: HubSpot's owners (``GET /crm/owners/<version>``, active
and archived; ``id`` is what ``hubspot_owner_id`` holds, an archived owner cannot be assigned) and
Dataverse's system users (``systemuserid``, ``internalemailaddress``, ``isdisabled``; a record's owner is
bound as ``ownerid@odata.bind: /systemusers(<id>)`` and Dataverse refuses a disabled user with
``0x80040225`` UserDisabled, Learn web-service-error-codes). Emails compare trimmed and case-insensitively,
as both CRMs treat them. The decision is pure: the caller reads, this answers.

Reasons (metric label values, `Skipped.reason`):

- ``owner_unknown``: the value is not an owner/user of its own side (a team, or one added since the read);
- ``owner_no_counterpart``: no owner/user on the other side has that email;
- ``owner_disabled``: the only ones with that email on the other side are archived (HubSpot) or disabled
  (Dataverse), so the assignment would be refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from streams.keys import SourceSystem

__all__ = ["OWNER_REASONS", "Owner", "OwnerReason", "OwnerTable", "owner_table"]


class OwnerReason(StrEnum):
    UNKNOWN = "owner_unknown"
    NO_COUNTERPART = "owner_no_counterpart"
    DISABLED = "owner_disabled"


OWNER_REASONS = frozenset(r.value for r in OwnerReason)


@dataclass(frozen=True, slots=True)
class Owner:
    """One HubSpot owner or Dataverse system user."""

    id: str
    email: str
    active: bool = True
    """False: archived (HubSpot) or disabled (Dataverse): not assignable."""


OwnerTable = Mapping[str, "str | OwnerReason"]
"""Source value -> the counterpart's id, or why there is none."""


def _key(email: str) -> str:
    return email.strip().casefold()


def _id(value: str, system: SourceSystem) -> str:
    # A Dataverse id is a GUID, written lower-case by the service; HubSpot's owner ids are digits.
    return value.strip().lower() if system is SourceSystem.DATAVERSE else value.strip()


def owner_table(
    values: Iterable[str],
    source: SourceSystem,
    directories: Mapping[SourceSystem, Iterable[Owner]],
) -> dict[str, str | OwnerReason]:
    """For each owner value read on ``source``, the id of the active owner/user with the same email on the
    other side (the first by id when several share it, so the answer is stable), or the reason there is
    none."""
    own = {_id(o.id, source): o for o in directories.get(source, ())}
    by_email: dict[str, list[Owner]] = {}
    for other in sorted(directories.get(source.other, ()), key=lambda o: o.id):
        if other.email.strip():
            by_email.setdefault(_key(other.email), []).append(other)
    table: dict[str, str | OwnerReason] = {}
    for value in values:
        owner = own.get(_id(value, source))
        if owner is None or not owner.email.strip():
            table[value] = OwnerReason.UNKNOWN
            continue
        matches = by_email.get(_key(owner.email), [])
        active = [o for o in matches if o.active]
        if active:
            table[value] = _id(active[0].id, source.other)
        else:
            table[value] = OwnerReason.DISABLED if matches else OwnerReason.NO_COUNTERPART
    return table
