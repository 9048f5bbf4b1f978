"""`cdc ingest`, `cdc poll`, `cdc sync` and `cdc admin`: each starts its role and runs it until SIGINT or
SIGTERM; and `cdc demo`, all three roles at once on a local Kafka and the sandbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from cdc.commands._context import State, say, sync_config_option
from cdc.exits import CliError, ExitCode
from cdc.logs import setup_logging
from cdc.signals import stop_on_signals

MIN_PASSWORD = 12
"""The shortest password `cdc admin hash-password` hashes (NIST SP 800-63B asks at least 8; the page
guards CRM data, so a little more)."""


def _run_role(role: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``role(stop)`` on a fresh event loop until it returns: while it runs, SIGINT and SIGTERM set
    ``stop`` and the role's numbered, bounded shutdown follows; SIGUSR1 logs where its tasks wait
    (`cdc.signals.stop_on_signals`). What the role raises, the command maps to its exit code."""

    async def run() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await role(stop)

    asyncio.run(run())


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="Make one edit of each kind (7), exit 0 only when every one was seen synced.",
)
@click.pass_obj
def demo(state: State, once: bool) -> None:
    """Run the product end to end on an embedded local Kafka and the sandbox CRMs."""
    from cdc.tools.demo.run import run as run_demo  # noqa: PLC0415 -- a tool: lazily
    from cdc.tools.devkafka.runner import LocalKafka  # noqa: PLC0415

    # The demo prints its own story; the roles' logs join it at WARNING unless log.level asks for more.
    setup_logging(state.settings.log, default_level="WARNING")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # fresh topics log leader elections as warnings
    say("starting a local Apache Kafka (first run: its jars are resolved from Maven Central) ...")
    with LocalKafka(progress=say) as kafka:
        settings = state.settings.kafka.model_copy(update={"bootstrap_servers": kafka.bootstrap})
        click.echo(f"Kafka bootstrap: {kafka.bootstrap}")

        _run_role(lambda stop: run_demo(settings, click.echo, once=once, stop=stop))
        say("stopping ...")


@click.command()
@click.pass_obj
def ingest(state: State) -> None:
    """Receive HubSpot webhooks and publish them to Kafka (answers 2xx only once Kafka acknowledged)."""
    from cdc.roles.ingest import run_ingest  # noqa: PLC0415 -- keeps `cdc --help` fast

    settings = state.settings
    setup_logging(settings.log)

    _run_role(
        lambda stop: run_ingest(settings, stop, on_listening=lambda url: say(f"receiving webhooks at {url}"))
    )


@click.command()
@click.pass_obj
def poll(state: State) -> None:
    """Poll Dataverse change tracking and reconcile HubSpot; replicas share the tables (one poller each)."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 -- keeps `cdc --help` fast

    from cdc.dataverse import FatalError as DataverseFatal  # noqa: PLC0415
    from cdc.hubspot.errors import HubSpotApiError  # noqa: PLC0415
    from cdc.metrics import Metrics  # noqa: PLC0415
    from cdc.roles.poll import MissingTopicsError, run_poll  # noqa: PLC0415
    from consumers.loader import load_config  # noqa: PLC0415

    settings = state.settings
    # What to poll follows from the steps `cdc sync` runs: the same configuration, read the same way.
    config = load_config(settings.sync.config)
    setup_logging(settings.log)

    try:
        _run_role(
            lambda stop: run_poll(
                settings,
                stop,
                metrics=Metrics(CollectorRegistry()),
                on_ready=lambda url: say(f"poll: metrics at {url}/metrics"),
                config=config,
            )
        )
    except MissingTopicsError as error:
        raise CliError(str(error), ExitCode.DRIFT) from None
    except (DataverseFatal, HubSpotApiError) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None


@click.command()
@click.option("--dry-run", is_flag=True, help="Plan and audit the writes without performing them.")
@sync_config_option
@click.pass_obj
def sync(state: State, dry_run: bool, sync_config: Path | None) -> None:
    """Apply changes from Kafka to the other CRM by the configured sync steps."""
    from cdc.dataverse import FatalError as DataverseFatal  # noqa: PLC0415
    from cdc.hubspot.errors import HubSpotApiError  # noqa: PLC0415
    from cdc.roles.sync import run_sync  # noqa: PLC0415 -- keeps `cdc --help` fast
    from cdc.supervision import LoopFailedError  # noqa: PLC0415
    from consumers.loader import load_config  # noqa: PLC0415
    from consumers.ports import CrmUnavailableError  # noqa: PLC0415

    settings = state.settings
    updates: dict[str, Any] = {}
    if dry_run:
        updates["dry_run"] = True
    if sync_config is not None:
        updates["config"] = sync_config
    if updates:
        settings = settings.model_copy(update={"sync": settings.sync.model_copy(update=updates)})
    config = load_config(settings.sync.config)
    setup_logging(settings.log)

    try:
        _run_role(
            lambda stop: run_sync(
                settings, stop, config=config, on_ready=lambda url: say(f"metrics at {url}/metrics")
            )
        )
    except LoopFailedError as error:
        raise CliError(
            f"{error}; exiting for the supervisor to restart `cdc sync`", ExitCode.SOFTWARE
        ) from None
    except CrmUnavailableError as error:  # still down after the start-up's retries (the CRM check)
        raise CliError(f"{error}; `cdc sync` did not start", ExitCode.UNAVAILABLE) from None
    except (DataverseFatal, HubSpotApiError) as error:
        # Credentials refused or unusable at start-up (a certificate file that cannot be read, a secret the
        # identity provider refuses): one line and exit 78, as `cdc poll` does, never a traceback.
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None


@click.group(invoke_without_command=True)
@click.pass_context
def admin(ctx: click.Context) -> None:
    """Serve the sync health page (login required; admin.host, admin.port), or a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    from cdc.roles.admin import run_admin  # noqa: PLC0415 -- keeps `cdc --help` fast
    from consumers.loader import load_config  # noqa: PLC0415

    settings = ctx.find_object(State).settings  # type: ignore[union-attr]  # the root group sets it
    config = load_config(settings.sync.config)
    setup_logging(settings.log)

    _run_role(
        lambda stop: run_admin(
            settings, stop, config=config, on_listening=lambda url: say(f"admin page at {url}")
        )
    )


@admin.command("hash-password")
@click.option("--user", help="Print the line for admin.users (USER: HASH) instead of the hash alone.")
def admin_hash_password(user: str | None) -> None:
    """Read a password from a prompt (twice, not echoed) and print its hash for admin.users."""
    from cdc.admin.passwords import hash_password  # noqa: PLC0415

    password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < MIN_PASSWORD:
        raise CliError(f"a password of fewer than {MIN_PASSWORD} characters is refused", ExitCode.USAGE)
    hashed = hash_password(password)
    click.echo(f"{user}: {hashed}" if user else hashed)
