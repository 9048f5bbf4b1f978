"""What the fields with a lookup need for a pass's records, asked of the CRMs: owner ids -> the other side's
users (`consumers.owners`), other kinds through `CrmGateway.lookup`. Part of the applier's shell."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from consumers.config import OWNER
from consumers.fieldsets import FieldSets
from consumers.owners import OwnerReason, owner_table
from consumers.planner import PairState
from consumers.ports import CrmGateway
from streams.keys import SourceSystem

__all__ = ["field_lookups"]

_MISSES = frozenset({OwnerReason.UNKNOWN, OwnerReason.NO_COUNTERPART})
"""An owner list may lack someone added since it was read: asked again (bounded by the gateway)."""


async def field_lookups(
    fields: FieldSets, gateways: Mapping[SourceSystem, CrmGateway], states: Iterable[PairState]
) -> dict[str, dict[str, str]]:
    """What the fields with a lookup need for these records (owner ids -> emails), asked of the CRM the
    values come from, once per kind and system for the whole pass."""
    wanted: dict[tuple[str, SourceSystem], set[str]] = {}
    for state in states:
        for kind, system, prop in fields.lookups(state.pair):
            record = state.record(system)
            value = None if record is None else record.values.get(prop)
            if isinstance(value, str | int) and str(value).strip():
                wanted.setdefault((kind, system), set()).add(str(value).strip())
    found: dict[str, dict[str, str]] = {}
    for (kind, system), keys in wanted.items():
        if kind == OWNER:
            found.setdefault(kind, {}).update(await _owners(gateways, system, sorted(keys)))
        else:
            found.setdefault(kind, {}).update(await gateways[system].lookup(kind, sorted(keys)))
    return found


async def _owners(
    gateways: Mapping[SourceSystem, CrmGateway], source: SourceSystem, keys: list[str]
) -> dict[str, str]:
    """``lookup: owner``: each owner id read on ``source`` -> the other side's user with its email
    (`consumers.owners`). Both lists come from the gateways' caches; an owner missing from either is asked
    again once (each gateway bounds how often a miss re-reads its list)."""
    table: dict[str, str] = {}
    for refresh in (False, True):
        directories = {s: await gateways[s].owners(refresh=refresh) for s in SourceSystem}
        table = dict(owner_table(keys, source, directories))
        if not any(r in _MISSES for r in table.values()):
            break
    return table
