"""`cdc sandbox`: the local HubSpot and Dataverse emulators until Ctrl-C (imported lazily)."""

from __future__ import annotations

import asyncio
import sys

import click
import orjson

from cdc.commands._context import State
from cdc.signals import stop_on_signals


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--hubspot-port", type=int, default=0, help="HubSpot emulator port (default: a free one).")
@click.option("--dataverse-port", type=int, default=0, help="Dataverse emulator port (default: a free one).")
@click.option("--webhook-url", help="Where the HubSpot emulator posts webhooks (e.g. the ingest receiver).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for ids, tokens and fault dice.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line of URLs and credentials.")
@click.pass_obj
def sandbox(
    state: State,
    *,
    host: str,
    hubspot_port: int,
    dataverse_port: int,
    webhook_url: str | None,
    seed: int,
    as_json: bool,
) -> None:
    """Run the local HubSpot and Dataverse emulators until Ctrl-C; prints their URLs and credentials."""
    from cdc.sandbox.runner import run_sandbox  # noqa: PLC0415 -- keeps `cdc --help` fast

    _ = state.settings  # its servers' warnings are logged in the log settings' format

    async def run() -> None:
        async with run_sandbox(
            host=host,
            hubspot_port=hubspot_port,
            dataverse_port=dataverse_port,
            webhook_url=webhook_url,
            seed=seed,
        ) as box:
            if as_json:
                click.echo(orjson.dumps(box.info.as_json()).decode())
            else:
                hub, dv = box.info.hubspot, box.info.dataverse
                click.echo(f"HubSpot   {hub.base_url}  token {hub.token}  app {hub.app_id}")
                click.echo(f"          portal {hub.portal_id}  client secret {hub.client_secret}")
                click.echo(
                    f"          OAuth client id {hub.client_id}  refresh token {hub.refresh_token}  "
                    f"access tokens last {hub.access_token_lifetime_s:g} s"
                )
                click.echo(f"Dataverse {dv.base_url}  authority {dv.authority}  client {dv.client_id}")
                click.echo(f"          CA bundle {dv.ca_bundle}; app certificate {dv.client_certificate}")
                click.echo("          admin APIs under /_admin; Ctrl-C stops")
            sys.stdout.flush()
            await _until_signal()

    asyncio.run(run())


async def _until_signal() -> None:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await stop.wait()
