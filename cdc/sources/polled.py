"""What `cdc poll` reads: the Dataverse tables and HubSpot object types the enabled sync steps sync.

The sync configuration decides (the same ``sync.config`` file, or the packaged default steps, that
`cdc sync` runs): every object an enabled step syncs from or to is polled on its side, in step order, so
enabling the lead steps polls ``leads`` with no other setting. ``poll.dataverse_tables`` and
``poll.hubspot_objects`` stay as explicit overrides (a custom table whose entity set is not the standard
plural, extra tables, or an empty list to turn a part off), and an override that leaves out an object an
enabled step syncs is a `SettingsError` naming it: its changes would never reach the sync.

The rule is here; each system's names are its package's: `cdc.dataverse.poller.dataverse_tables` (entity
sets) and `cdc.hubspot.reconciler.hubspot_objects` (the object types search can page; others are left to
webhooks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cdc.settings import Settings, SettingsError, env_name
from consumers.config import SyncConfig
from consumers.loader import default_config, load_config
from streams.keys import SourceSystem

__all__ = ["polled", "sync_config", "synced_objects"]


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


def polled(
    setting: str,
    override: Sequence[str] | None,
    needed: dict[str, tuple[str, ...]],
    *,
    name: Callable[[str], str],
    object_of: Callable[[str], str],
) -> tuple[str, ...]:
    """The names to poll: ``name`` of every object ``needed`` (object -> the steps syncing it), unless the
    ``setting`` gives an ``override``; then the override, unless it leaves out a needed object (an empty
    override turns the part off). ``object_of`` is the inverse of ``name``. Raises `SettingsError`."""
    if override is None:
        return tuple(name(obj) for obj in needed)
    if not override:
        return ()
    named = {object_of(entry) for entry in override}
    omitted = [obj for obj in needed if obj not in named]
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
