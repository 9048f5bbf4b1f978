"""Live option sets: labels read from both CRMs' metadata, folded into the configuration.

An option set with ``live: true`` takes its labels from the fields that name it: each HubSpot property's
definition (``options[].value`` -> ``options[].label``) and each Dataverse choice column's option-set
metadata (``Value`` -> ``Label.UserLocalizedLabel.Label``). The labels read override those written in the
configuration (the CRM is the truth; the written ones stay for values the CRM does not list, and for a
field whose metadata could not be read). Values still meet by label (`consumers.values`): the same label
on both sides maps, a label on one side only skips the field (``no_option_counterpart``).

Pure: the gateways read (`consumers.ports.CrmGateway.option_labels`), the sync role refreshes
(`cdc.live_options`); this module only says what to read and what the configuration becomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consumers.config import OptionSet, SyncConfig
from streams.keys import SourceSystem

__all__ = ["Labels", "OptionField", "live_fields", "with_labels"]


@dataclass(frozen=True, order=True, slots=True)
class OptionField:
    """One enumerated field whose labels a live option set reads: a HubSpot property or a choice column."""

    system: SourceSystem
    object_type: str
    field: str

    def __str__(self) -> str:
        return f"{self.system}.{self.object_type}.{self.field}"


Labels = Mapping[OptionField, Mapping[str, str]]
"""What was read: field -> option value -> label. A field absent here was not read (or failed)."""


def live_fields(config: SyncConfig) -> dict[str, tuple[OptionField, ...]]:
    """Each live option set -> the fields of every step (enabled or not) that name it, on both sides."""
    found: dict[str, set[OptionField]] = {name: set() for name, s in config.option_sets.items() if s.live}
    for step in config.steps:
        for f in step.fields:
            if f.options not in found:
                continue
            found[f.options].add(OptionField(step.source.system, step.source.object, f.source))
            found[f.options].add(OptionField(step.target.system, step.target.object, f.target))
    return {name: tuple(sorted(fields)) for name, fields in found.items()}


def with_labels(config: SyncConfig, labels: Labels) -> SyncConfig:
    """``config`` with each live option set's labels replaced by those read (per side, merged over the
    set's fields in order; the configured labels under them). Nothing read: ``config`` itself."""
    changed: dict[str, OptionSet] = {}
    for name, fields in live_fields(config).items():
        base = config.option_sets[name]
        hubspot, dataverse = dict(base.hubspot), dict(base.dataverse)
        for f in fields:
            read = labels.get(f)
            if read:
                (hubspot if f.system is SourceSystem.HUBSPOT else dataverse).update(read)
        if hubspot != base.hubspot or dataverse != base.dataverse:
            changed[name] = base.model_copy(update={"hubspot": hubspot, "dataverse": dataverse})
    if not changed:
        return config
    return config.model_copy(update={"option_sets": {**config.option_sets, **changed}})
