"""`cdc config check`: a sync configuration and the settings validated, optionally against both CRMs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cdc.commands._context import State, echo_json
from cdc.exits import CliError, ExitCode
from cdc.settings import Settings

if TYPE_CHECKING:
    from consumers.config import SyncConfig


@click.group("config")
def config_group() -> None:
    """The sync configuration."""


def _dataverse_connection(settings: Settings) -> str | None:
    """How the daemon will reach Dataverse (credential, proxy), or None when no org is configured; a
    credential or proxy that cannot be used is a `CliError` naming the setting."""
    import os  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from cdc.dataverse.credentials import CredentialError, describe_credential  # noqa: PLC0415
    from cdc.dataverse.proxy import ProxyError, proxy_for  # noqa: PLC0415

    dv = settings.dataverse
    if not dv.base_url:
        return None
    try:
        credential = describe_credential(dv, now=datetime.now(UTC))
        proxy = proxy_for(dv.base_url, dv, os.environ)
    except (CredentialError, ProxyError) as error:
        raise CliError(str(error), ExitCode.CONFIG) from None
    return f"dataverse {dv.base_url}: {credential}, {f'proxy {proxy}' if proxy else 'no proxy'}"


def _check_against_crm(settings: Settings, config: SyncConfig, path: Path | None) -> None:
    """`ConfigError` (exit 78) naming every problem of ``config`` against both CRMs' metadata."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from cdc.crm_metadata import require_crm_fit  # noqa: PLC0415
    from cdc.dataverse import FatalError as DataverseFatal  # noqa: PLC0415
    from cdc.hubspot.errors import HubSpotApiError  # noqa: PLC0415
    from cdc.metrics import Metrics  # noqa: PLC0415
    from cdc.roles.sync import open_gateways  # noqa: PLC0415
    from consumers.ports import CrmUnavailableError  # noqa: PLC0415

    async def run() -> None:
        async with open_gateways(settings, Metrics(CollectorRegistry())) as gateways:
            await require_crm_fit(config, gateways, path=path)

    try:
        asyncio.run(run())
    except (DataverseFatal, HubSpotApiError) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None
    except CrmUnavailableError as error:
        raise CliError(f"{error.system} did not answer: {error}", ExitCode.UNAVAILABLE) from None


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the effective steps as JSON.")
@click.option(
    "--against-crm",
    is_flag=True,
    help="Also read both CRMs' metadata and refuse duplicate, missing, read-only or mistyped targets and "
    "unknown option values (as `cdc sync` does at start).",
)
@click.pass_obj
def config_check(state: State, file: Path | None, as_json: bool, against_crm: bool) -> None:
    """Validate a sync configuration (the defaults when no FILE is given) and print its steps in order;
    validate the settings too (`--config`, ``CDC_*``), with the Dataverse credential and proxy they name."""
    from consumers.loader import describe, load_config  # noqa: PLC0415

    config = load_config(file)
    connection = _dataverse_connection(state.settings)
    if against_crm:
        _check_against_crm(state.settings, config, file)
    described = describe(config)
    if as_json:
        echo_json(described)
        return
    for n, step in enumerate(described["steps"], start=1):
        on = "on " if step["enabled"] else "off"
        source, target = step["source"], step["target"]
        click.echo(
            f"{n}. [{on}] {step['name']}: {source['system']}.{source['object']} -> "
            f"{target['system']}.{target['object']} ({len(step['fields'])} fields)"
        )
    for rule in config.rules:
        when, sets = rule.when, ", ".join(f"{k}={v}" for k, v in rule.set.items())
        back = " (backwards allowed)" if rule.allow_backwards else ""
        click.echo(
            f"rule {rule.name}: {when.system}.{when.object} {when.field} = {when.equals} -> {sets} on "
            f"{rule.on.system} {', '.join(rule.on.associations)}{back}"
        )
    if connection is not None:
        click.echo(connection)
    click.echo(
        f"ok: {sum(1 for s in described['steps'] if s['enabled'])} of {len(described['steps'])} steps enabled"
    )
