"""What `cdc poll` reads: the Dataverse tables and HubSpot object types the enabled sync steps sync.

The sync configuration decides (the same ``sync.config`` file, or the packaged default steps, that
`cdc sync` runs): every object an enabled step syncs from or to is polled on its side, in step order, so
enabling the lead steps polls ``leads`` with no other setting. ``poll.dataverse_tables`` and
``poll.hubspot_objects`` stay as explicit overrides (a custom table whose entity set is not the standard
plural, extra tables, or an empty list to turn a part off), and an override that leaves out an object an
enabled step syncs is a `SettingsError` naming it: its changes would never reach the sync.

HubSpot objects the reconciler cannot page (anything but contacts, companies, deals) are left to webhooks.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdc.dataverse.rows import entity_logical_name
from cdc.gateways.dataverse import entity_set_name
from cdc.settings import Settings, SettingsError, env_name
from consumers.config import SyncConfig
from consumers.loader import default_config, load_config
from streams.keys import SourceSystem

__all__ = ["RECONCILED", "dataverse_tables", "hubspot_objects", "sync_config", "synced_objects"]

RECONCILED = {"contact": "contacts", "company": "companies", "deal": "deals"}
"""HubSpot object type (as the configuration names it) -> the reconciler's name for it."""


def sync_config(settings: Settings) -> SyncConfig:
    """The configuration `cdc sync` runs: ``sync.config``, else the packaged default steps. Raises
    `consumers.loader.ConfigError`."""
    return load_config(settings.sync.config) if settings.sync.config else default_config()


def synced_objects(config: SyncConfig, system: SourceSystem) -> dict[str, tuple[str, ...]]:
    """Object type on ``system`` -> the enabled steps that sync it (from or to), in step order."""
    found: dict[str, list[str]] = {}
    for step in config.enabled_steps():
        for end in (step.source, step.target):
            if end.system is system:
                names = found.setdefault(end.object, [])
                if step.name not in names:
                    names.append(step.name)
    return {obj: tuple(steps) for obj, steps in found.items()}


def _checked(
    setting: str, override: Sequence[str], needed: dict[str, tuple[str, ...]], name_of: dict[str, str]
) -> tuple[str, ...]:
    """The override, unless it leaves out what a step needs (an empty override turns the part off)."""
    if not override:
        return ()
    omitted = [obj for obj in needed if obj not in name_of]
    if omitted:
        what = "; ".join(
            f"{obj!r} (enabled step{'s' if len(needed[obj]) > 1 else ''} {', '.join(needed[obj])})"
            for obj in omitted
        )
        variable = env_name(tuple(setting.split(".")))
        raise SettingsError(
            f"{setting} ({variable}) leaves out what the sync configuration syncs: {what}; add it, or drop "
            f"the setting to poll what the enabled steps sync"
        )
    return tuple(override)


def dataverse_tables(settings: Settings, config: SyncConfig) -> tuple[str, ...]:
    """The entity sets to poll: ``poll.dataverse_tables`` when set (checked), else every table an enabled
    step syncs (``lead`` -> ``leads``). Raises `SettingsError`."""
    needed = synced_objects(config, SourceSystem.DATAVERSE)
    override = settings.poll.dataverse_tables
    if override is None:
        return tuple(entity_set_name(table) for table in needed)
    by_logical = {entity_logical_name(entity_set): entity_set for entity_set in override}
    return _checked("poll.dataverse_tables", override, needed, by_logical)


def hubspot_objects(settings: Settings, config: SyncConfig) -> tuple[str, ...]:
    """The object types the reconciler pages: ``poll.hubspot_objects`` when set (checked), else every
    object an enabled step syncs that the reconciler can page. Raises `SettingsError`."""
    needed = {
        obj: steps for obj, steps in synced_objects(config, SourceSystem.HUBSPOT).items() if obj in RECONCILED
    }
    override = settings.poll.hubspot_objects
    if override is None:
        return tuple(RECONCILED[obj] for obj in needed)
    singular = {plural: obj for obj, plural in RECONCILED.items()}
    by_object = {singular.get(name, name): name for name in override}
    return _checked("poll.hubspot_objects", override, needed, by_object)
