"""HubSpot's lifecycle stage order, and what a rule may write to a related record.

HubSpot orders the default stages subscriber, lead, marketingqualifiedlead, salesqualifiedlead,
opportunity, customer, evangelist, other (knowledge.hubspot.com/contacts/use-lifecycle-stages) and moves
a record forward only: an API write of an earlier stage answers success and changes nothing; to go back
the value is cleared ("") first, in a request of its own, then set, since a batch's inputs are not applied
in a guaranteed order (integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333, HubSpot's answer).
So a rule never asks for a backwards move it would not get: it skips it (counted), or, when the rule says
``allow_backwards``, writes it in two rounds, the clear and then the stage.

Pure: (the related record's current values, the rule's values) -> the rounds of writes, and the skips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.codec import Scalar
from streams.keys import SourceSystem

__all__ = ["LIFECYCLE_PROPERTY", "LIFECYCLE_STAGES", "RuleWrites", "rule_writes", "stage_rank"]

LIFECYCLE_PROPERTY = "lifecyclestage"
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
"""HubSpot's default stages (internal values) in HubSpot's order."""


def stage_rank(value: Scalar) -> int | None:
    """A stage's place in HubSpot's order; None for no stage or one this order does not know."""
    text = _text(value)
    return LIFECYCLE_STAGES.index(text) if text in LIFECYCLE_STAGES else None


@dataclass(frozen=True, slots=True)
class RuleWrites:
    rounds: tuple[Mapping[str, Scalar], ...] = ()
    """The values to write, one request per round, in order (a round is never empty)."""
    skips: tuple[tuple[str, str], ...] = ()
    """(field, reason) for each value the rule may not write."""


def rule_writes(
    system: SourceSystem,
    current: Mapping[str, Scalar],
    wanted: Mapping[str, Scalar],
    *,
    allow_backwards: bool,
) -> RuleWrites:
    """What a rule writes to a record holding ``current``: each wanted value it does not hold yet, but a
    HubSpot lifecycle stage only forward, or (``allow_backwards``) cleared in a first round and set in a
    second. A stage the order does not know (a portal's custom stage) is not provably forward: skipped
    unless backwards is allowed."""
    first: dict[str, Scalar] = {}
    second: dict[str, Scalar] = {}
    skips: list[tuple[str, str]] = []
    for field, value in wanted.items():
        have = current.get(field)
        if _text(have) == _text(value):
            continue
        if system is not SourceSystem.HUBSPOT or field != LIFECYCLE_PROPERTY or _text(have) == "":
            first[field] = value
            continue
        have_rank, want_rank = stage_rank(have), stage_rank(value)
        if have_rank is not None and want_rank is not None and want_rank > have_rank:
            first[field] = value
        elif allow_backwards:
            first[field], second[field] = "", value
        else:
            skips.append(
                (field, "lifecycle_backwards" if have_rank is not None else "lifecycle_unknown_stage")
            )
    rounds = tuple(r for r in (first, second) if r)
    return RuleWrites(rounds=rounds, skips=tuple(skips))


def _text(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip().lower()
