"""Both CRMs' metadata for the objects the configuration's enabled steps touch, and the check of the
configuration against it (`consumers.crm_check`): `cdc config check --against-crm` and the start of
`cdc sync`, which refuses to start on a problem (`consumers.loader.ConfigError`, exit 78)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from consumers.config import SyncConfig
from consumers.crm_check import Fields, check_against_crm, fields_needed
from consumers.loader import ConfigError, field_lines
from consumers.ports import CrmGateway, FieldInfo
from streams.keys import SourceSystem

__all__ = ["SOURCE", "crm_problems", "read_fields", "require_crm_fit"]

SOURCE = "against the CRMs"
"""What a `ConfigError` of this check adds to the file it names."""


async def read_fields(config: SyncConfig, gateways: Mapping[SourceSystem, CrmGateway]) -> Fields:
    """One metadata read per object (and per choice column an option set names, on Dataverse)."""
    fields: dict[tuple[SourceSystem, str], Mapping[str, FieldInfo]] = {}
    for (system, object_type), with_options in sorted(fields_needed(config).items()):
        fields[(system, object_type)] = await gateways[system].fields(object_type, with_options)
    return fields


async def crm_problems(
    config: SyncConfig, gateways: Mapping[SourceSystem, CrmGateway], *, path: Path | None = None
) -> list[str]:
    """The problems of ``config`` (read from ``path``, whose lines they name; None: the packaged defaults)."""
    return check_against_crm(config, await read_fields(config, gateways), field_lines(path))


async def require_crm_fit(
    config: SyncConfig, gateways: Mapping[SourceSystem, CrmGateway], *, path: Path | None = None
) -> None:
    """Raise `ConfigError` listing every problem of ``config`` against the CRMs."""
    problems = await crm_problems(config, gateways, path=path)
    if problems:
        raise ConfigError(f"{path or 'the packaged defaults'} {SOURCE}", problems)
