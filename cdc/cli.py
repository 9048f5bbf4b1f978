"""The ``cdc`` command line: thin commands over the settings tree and the library.

Errors end a command with one ``cdc: error: ...`` line on stderr and a named exit code
(`cdc.exits.ExitCode`); tracebacks are for bugs only. Progress goes to stderr, results to stdout, and
``--json`` prints what a script would read. Logs go to stderr through `cdc.logs` in the ``log`` settings'
format, set up as soon as a command has read its settings: the roles at ``log.level``, the demo and the
short commands (which print their own progress) at WARNING unless ``log.level`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

import click
import orjson
from aiokafka.errors import KafkaConnectionError

from cdc.exits import CliError, ExitCode
from cdc.logs import setup_logging
from cdc.settings import Settings, SettingsError, load_settings
from cdc.signals import sigterm_as_interrupt, stop_on_signals
from consumers.loader import ConfigError
from streams.admin import EnsureReport, KafkaUnavailableError, TopicAdminError, ensure_topics, open_admin
from streams.topics import TopicCatalog

if TYPE_CHECKING:  # the tools are imported by their commands only (the product path never loads them)
    from cdc.provisioning.report import ProvisionReport
    from cdc.tools.devkafka.runner import LocalKafka
    from consumers.config import SyncConfig


@dataclass
class _State:
    config_file: Path | None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            setup_logging(self._settings.log, default_level="WARNING")
        return self._settings


MIN_PASSWORD = 12
"""The shortest password `cdc admin hash-password` hashes (NIST SP 800-63B asks at least 8; the page
guards CRM data, so a little more)."""


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML settings file (else $CDC_CONFIG); CDC_* environment variables override it.",
)
@click.version_option(package_name="crm-cdc", prog_name="cdc")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Near-real-time HubSpot <-> Dynamics 365 sync through Kafka."""
    ctx.obj = _State(config_file)


# --- topics -------------------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """The topic catalog: describe it, or make the cluster match it."""
    # A short command reports a connection failure itself, in one line; aiokafka would log it twice more.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@topics.command("describe")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as a JSON list.")
@click.pass_obj
def topics_describe(state: _State, as_json: bool) -> None:
    """Print every topic the daemon uses, with partitions, replication and configs."""
    catalog = TopicCatalog.from_settings(state.settings.kafka)
    if as_json:
        _echo_json(catalog.as_json())
        return
    for spec in catalog:
        config = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        click.echo(f"{spec.name:<32} partitions={spec.partitions:<3} rf={spec.replication_factor}  {config}")
        click.echo(f"{'':<32} {spec.description}")


@topics.command("ensure")
@click.option("--json", "as_json", is_flag=True, help="Print what was created, what existed and any drift.")
@click.pass_obj
def topics_ensure(state: _State, as_json: bool) -> None:
    """Create the catalog's missing topics; fail (exit 3) when an existing topic drifts from it."""
    kafka = state.settings.kafka
    catalog = TopicCatalog.from_settings(kafka)

    async def run() -> EnsureReport:
        async with open_admin(kafka) as admin:
            return await ensure_topics(admin, catalog)

    report = asyncio.run(run())
    if as_json:
        _echo_json(report.as_json())
    else:
        for name in report.created:
            click.echo(f"created  {name}")
        for name in report.existing:
            click.echo(f"{'drifted' if name in report.drifted else 'ok':<8} {name}")
            for problem in report.drifted.get(name, []):
                click.echo(f"         - {problem}")
    if not report.ok:
        raise CliError(
            f"{len(report.drifted)} topic(s) differ from the catalog: "
            + "; ".join(f"{name} {', '.join(problems)}" for name, problems in report.drifted.items())
            + " (change the topic with kafka-configs/kafka-topics, or the catalog settings)",
            ExitCode.DRIFT,
        )


# --- dev ----------------------------------------------------------------------------------------


@cli.group()
def dev() -> None:
    """Local development helpers."""


def _wait_for_signal(kafka: LocalKafka) -> None:
    """Block until SIGINT/SIGTERM, or fail if the broker dies first."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            if not kafka.running:
                raise CliError(f"the broker exited; last lines of its log:\n{kafka.log_tail(20)}")
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dev.command("kafka")
@click.option("--port", type=int, help="PLAINTEXT port on 127.0.0.1 (default: a free one).")
@click.option("--controller-port", type=int, help="KRaft controller port (default: a free one).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the broker's data (and its ports) here across runs; default: a temporary folder.",
)
@click.option("--json", "as_json", is_flag=True, help="Print {bootstrap, pid, log, version} as JSON.")
def dev_kafka(port: int | None, controller_port: int | None, data_dir: Path | None, as_json: bool) -> None:
    """Run a real single-node Apache Kafka on loopback until Ctrl-C; prints its bootstrap address."""
    from cdc.tools.devkafka.runner import LocalKafka, kafka_version  # noqa: PLC0415 -- a tool: lazily

    kafka = LocalKafka(port=port, controller_port=controller_port, data_dir=data_dir, progress=_progress)
    with kafka:
        if as_json:
            click.echo(
                orjson.dumps(
                    {
                        "bootstrap": kafka.bootstrap,
                        "pid": kafka.pid,
                        "log": str(kafka.log_path),
                        "version": kafka_version(),
                    }
                ).decode()
            )
        else:
            click.echo(kafka.bootstrap)
            _progress(f"log: {kafka.log_path}; Ctrl-C stops the broker")
        sys.stdout.flush()
        _wait_for_signal(kafka)
        _progress("stopping Kafka ...")


@dev.command("resolve-kafka")
def dev_resolve_kafka() -> None:
    """Resolve the Kafka broker's jars from Maven Central into the cache (done by `dev kafka` too)."""
    from cdc.tools.devkafka.runner import resolve_jars  # noqa: PLC0415 -- a tool: lazily

    click.echo(resolve_jars(progress=_progress))


@cli.command()
@click.option(
    "--once",
    is_flag=True,
    help="Make one edit of each kind (7), exit 0 only when every one was seen synced.",
)
@click.pass_obj
def demo(state: _State, once: bool) -> None:
    """Run the product end to end on an embedded local Kafka and the sandbox CRMs."""
    from cdc.tools.demo.run import run as run_demo  # noqa: PLC0415 -- a tool: lazily
    from cdc.tools.devkafka.runner import LocalKafka  # noqa: PLC0415

    # The demo prints its own story; the roles' logs join it at WARNING unless log.level asks for more.
    setup_logging(state.settings.log, default_level="WARNING")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # fresh topics log leader elections as warnings
    _progress("starting a local Apache Kafka (first run: its jars are resolved from Maven Central) ...")
    with LocalKafka(progress=_progress) as kafka:
        settings = state.settings.kafka.model_copy(update={"bootstrap_servers": kafka.bootstrap})
        click.echo(f"Kafka bootstrap: {kafka.bootstrap}")

        async def run() -> None:
            stop = asyncio.Event()
            with stop_on_signals(stop):
                await run_demo(settings, click.echo, once=once, stop=stop)

        asyncio.run(run())
        _progress("stopping ...")


@cli.command()
@click.pass_obj
def ingest(state: _State) -> None:
    """Receive HubSpot webhooks and publish them to Kafka (answers 2xx only once Kafka acknowledged)."""
    from cdc.roles.ingest import run_ingest  # noqa: PLC0415 -- keeps `cdc --help` fast

    settings = state.settings
    setup_logging(settings.log)

    async def run() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await run_ingest(
                settings, stop, on_listening=lambda url: _progress(f"receiving webhooks at {url}")
            )

    asyncio.run(run())


@cli.command()
@click.pass_obj
def poll(state: _State) -> None:
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

    async def run() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await run_poll(
                settings,
                stop,
                metrics=Metrics(CollectorRegistry()),
                on_ready=lambda url: _progress(f"poll: metrics at {url}/metrics"),
                config=config,
            )

    try:
        asyncio.run(run())
    except MissingTopicsError as error:
        raise CliError(str(error), ExitCode.DRIFT) from None
    except (DataverseFatal, HubSpotApiError) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None


@cli.command()
@click.option("--dry-run", is_flag=True, help="Plan and audit the writes without performing them.")
@click.option(
    "--sync-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sync configuration YAML (default: sync.config, else the seeds' standard set-up).",
)
@click.pass_obj
def sync(state: _State, dry_run: bool, sync_config: Path | None) -> None:
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

    async def run() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await run_sync(
                settings, stop, config=config, on_ready=lambda url: _progress(f"metrics at {url}/metrics")
            )

    try:
        asyncio.run(run())
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


@cli.group(invoke_without_command=True)
@click.pass_context
def admin(ctx: click.Context) -> None:
    """Serve the sync health page (login required; admin.host, admin.port), or a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    from cdc.roles.admin import run_admin  # noqa: PLC0415 -- keeps `cdc --help` fast
    from consumers.loader import load_config  # noqa: PLC0415

    settings = ctx.find_object(_State).settings  # type: ignore[union-attr]  # the root group sets it
    config = load_config(settings.sync.config)
    setup_logging(settings.log)

    async def run() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await run_admin(
                settings, stop, config=config, on_listening=lambda url: _progress(f"admin page at {url}")
            )

    asyncio.run(run())


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


@cli.group("config")
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
def config_check(state: _State, file: Path | None, as_json: bool, against_crm: bool) -> None:
    """Validate a sync configuration (the defaults when no FILE is given) and print its steps in order;
    validate the settings too (`--config`, ``CDC_*``), with the Dataverse credential and proxy they name."""
    from consumers.loader import describe, load_config  # noqa: PLC0415

    config = load_config(file)
    connection = _dataverse_connection(state.settings)
    if against_crm:
        _check_against_crm(state.settings, config, file)
    described = describe(config)
    if as_json:
        _echo_json(described)
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


@cli.command()
@click.option(
    "--dataverse",
    "create_columns",
    is_flag=True,
    help="Also create missing Dataverse columns and turn change tracking on (else listed).",
)
@click.option("--dry-run", is_flag=True, help="List what would be created; change nothing.")
@click.option(
    "--key-wait",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds to wait (--dataverse) for Dataverse to build new alternate keys' indexes; 0: do not wait.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print created/present/missing/pending/problems per area (privileges: present/missing).",
)
@click.option(
    "--sync-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sync configuration YAML (default: sync.config, else the seeds' standard set-up).",
)
@click.option(
    "--hubspot-project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Only write (or update) the HubSpot developer-platform project of the app in DIR: scopes and "
    "webhook subscriptions, for `hs project upload`. Needs ingest.public_url, no HubSpot credentials.",
)
@click.option(
    "--auth",
    type=click.Choice(["static", "oauth"]),
    help="With --hubspot-project: the app's auth type (default: the project's, else static).",
)
@click.option(
    "--redirect-url",
    "redirect_urls",
    multiple=True,
    help="With --hubspot-project and --auth oauth: where HubSpot sends the installing user (repeatable).",
)
@click.pass_obj
def provision(  # noqa: PLR0917 -- click passes one argument per option
    state: _State,
    create_columns: bool,
    dry_run: bool,
    key_wait: float,
    as_json: bool,
    sync_config: Path | None,
    hubspot_project: Path | None,
    auth: Literal["static", "oauth"] | None,
    redirect_urls: tuple[str, ...],
) -> None:
    """Create the HubSpot properties, webhook subscriptions and (--dataverse) Dataverse columns and keys the
    sync configuration needs, and turn change tracking on for the tables `cdc poll` polls; check that the
    Dataverse application user holds the privileges the daemon needs (with --dataverse --dry-run, also
    those making the missing items needs); exit 3 while anything stays missing or wrong. A key whose index
    Dataverse is still building is reported pending (exit 0: nothing to do but wait; creates upsert by it
    once it is Active). Webhook subscriptions are made only for a legacy public app
    (hubspot.developer_api_key); any other app's are listed (exit 0).

    With --hubspot-project DIR, only the HubSpot project is written (exit 3 when it has problems)."""
    if hubspot_project is not None:
        if create_columns:
            raise click.UsageError("--hubspot-project writes the project only; run --dataverse on its own")
        _write_hubspot_project(state, hubspot_project, sync_config, auth, redirect_urls, dry_run, as_json)
        return
    if auth or redirect_urls:
        raise click.UsageError("--auth and --redirect-url go with --hubspot-project")
    from cdc.dataverse import DataverseApiError  # noqa: PLC0415 -- keeps `cdc --help` fast
    from cdc.dataverse import RetriableError as DataverseRetriable  # noqa: PLC0415
    from cdc.hubspot.errors import HubSpotApiError  # noqa: PLC0415
    from cdc.hubspot.errors import RetriableError as HubSpotRetriable  # noqa: PLC0415
    from cdc.provisioning.run import ProvisionError  # noqa: PLC0415
    from cdc.provisioning.run import provision as provision_crms  # noqa: PLC0415
    from consumers.loader import load_config  # noqa: PLC0415

    settings = state.settings
    config = load_config(sync_config or settings.sync.config)
    try:
        report = asyncio.run(
            provision_crms(
                settings,
                config,
                create_columns=create_columns,
                dry_run=dry_run,
                progress=_progress,
                key_wait_s=key_wait,
            )
        )
    except ProvisionError as error:
        raise CliError(str(error), ExitCode.CONFIG) from None
    except (HubSpotRetriable, DataverseRetriable) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.UNAVAILABLE) from None
    except (HubSpotApiError, DataverseApiError) as error:
        raise CliError(f"{type(error).__name__}: {error}", ExitCode.CONFIG) from None
    if as_json:
        _echo_json(report.as_json())
    else:
        click.echo(report.summary())
    if not report.ok:
        raise _drift(report, create_columns=create_columns)


def _drift(report: ProvisionReport, *, create_columns: bool) -> CliError:
    """What `cdc provision` says, exit 3, when the CRMs still lack what the configuration needs."""
    hints = []
    if not create_columns and report.dataverse.missing:
        hints.append("--dataverse creates the columns and turns change tracking on")
    if report.privileges.missing:
        hints.append("a Dataverse admin grants the missing privileges to the application user's role")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return CliError(
        f"the CRMs lack what the sync configuration needs: {report.summary()}{hint}", ExitCode.DRIFT
    )


def _write_hubspot_project(  # noqa: PLR0917 -- the options `provision` passes on
    state: _State,
    directory: Path,
    sync_config: Path | None,
    auth: Literal["static", "oauth"] | None,
    redirect_urls: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    from cdc.provisioning.project import ProjectError, write_project  # noqa: PLC0415 -- keeps `cdc --help` fast
    from consumers.loader import load_config  # noqa: PLC0415

    settings = state.settings
    config = load_config(sync_config or settings.sync.config)
    try:
        report = write_project(
            directory,
            config,
            settings,
            auth=auth,
            redirect_urls=redirect_urls,
            dry_run=dry_run,
            say=_progress,
        )
    except ProjectError as error:
        raise CliError(str(error), ExitCode.CONFIG) from None
    except OSError as error:
        raise CliError(f"cannot write the project in {directory}: {error}", ExitCode.FAILURE) from None
    if as_json:
        _echo_json(report.as_json())
    else:
        click.echo(report.summary())
    if not report.ok:
        what = "would change" if dry_run and not report.problems else "has problems"
        raise CliError(f"the HubSpot project in {directory} {what}: {report.summary()}", ExitCode.DRIFT)
    if not dry_run:
        _progress(f"next: `hs project upload` in {directory}, then install the app in your HubSpot account")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--hubspot-port", type=int, default=0, help="HubSpot emulator port (default: a free one).")
@click.option("--dataverse-port", type=int, default=0, help="Dataverse emulator port (default: a free one).")
@click.option("--webhook-url", help="Where the HubSpot emulator posts webhooks (e.g. the ingest receiver).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for ids, tokens and fault dice.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line of URLs and credentials.")
@click.pass_obj
def sandbox(
    state: _State,
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


@cli.group()
def bench() -> None:
    """Benchmarks against real processes, each with its baseline in the same run."""


@bench.command("ingest")
@click.option(
    "--rates", default="2000,10000,30000", show_default=True, help="Target events/s, comma-separated."
)
@click.option("--seconds", type=float, default=5.0, show_default=True, help="Load per rate and repeat.")
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("bench/results")
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result instead of the table.")
@click.option(
    "--profile", is_flag=True, help="Sample `cdc ingest` with py-spy at the highest rate (needs py-spy)."
)
def bench_ingest(  # noqa: PLR0917 -- one parameter per option
    rates: str, seconds: float, repeats: int, out_dir: Path, as_json: bool, profile: bool
) -> None:
    """Webhook ingest: signed batches of 100 through `cdc ingest`, next to raw aiokafka produce."""
    from cdc.tools.bench.ingest import run_bench, table  # noqa: PLC0415 -- keeps `cdc --help` fast

    try:
        targets = [float(rate) for rate in rates.split(",") if rate.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {rates!r}", param_hint="--rates") from None
    result = run_bench(
        rates=targets, seconds=seconds, repeats=repeats, out_dir=out_dir, say=_progress, profile=profile
    )
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if as_json else table(result))
    _progress(f"results: {result['path']}")


@bench.command("links")
@click.option("--counts", default="100000", show_default=True, help="Link-view sizes, comma-separated.")
@click.option("--fields", type=int, default=75, show_default=True, help="Fingerprinted fields per side.")
@click.option("--tail", type=int, default=10_000, show_default=True, help="Updates applied before the kill.")
@click.option(
    "--baseline-max", type=int, default=1_000_000, show_default=True, help="Largest in-memory baseline."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the stores' files go (a temporary directory under it) [the system's temporary directory].",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench/results"),
    show_default=True,
)
@click.pass_obj
def bench_links(  # noqa: PLR0917 -- one parameter per option
    state: _State,
    counts: str,
    fields: int,
    tail: int,
    baseline_max: int,
    state_dir: Path | None,
    out_dir: Path,
) -> None:
    """Link store: cold rebuild, restarts (clean, SIGKILL), memory, size, lookups; in-memory baseline."""
    from cdc.tools.bench.links import run_links_bench  # noqa: PLC0415 -- keeps `cdc --help` fast

    sizes = [int(c) for c in counts.split(",") if c.strip()]
    result = asyncio.run(
        run_links_bench(
            state.settings.kafka,
            counts=sizes,
            fields=fields,
            out_dir=out_dir,
            progress=_progress,
            tail=tail,
            baseline_max=baseline_max,
            state_dir=state_dir,
        )
    )
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    _progress(f"results: {result['path']}")


def _bench_json(path: Path) -> dict[str, Any]:
    """A `cdc bench sync` result file, or a usage error saying what is wrong with it."""
    try:
        value = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise click.BadParameter(f"{path} is not JSON: {error}", param_hint="--baseline") from None
    if not isinstance(value, dict) or value.get("scenario") != "sync":
        raise click.BadParameter(f"{path} is not a `cdc bench sync` result", param_hint="--baseline")
    return value


@bench.command("sync")
@click.option("--quick", is_flag=True, help="Small counts, one repeat, rates 50,200: a few minutes.")
@click.option("--rates", help="Latency: target changes/s, comma-separated [50,200,1000].")
@click.option("--seconds", type=float, help="Latency: seconds of edits per rate [5].")
@click.option("--contacts", type=int, help="Backfill: contacts per side [10000].")
@click.option("--companies", type=int, help="Backfill: companies per side [2000].")
@click.option("--replay-events", type=int, help="Replay: change events re-read [100000].")
@click.option("--rate-limited-records", type=int, help="Rate-limited: records to HubSpot [5000].")
@click.option(
    "--peer-interval",
    "peer_interval_s",
    type=float,
    help="Peer baseline: seconds between its polls [60; --quick: 10].",
)
@click.option("--repeats", type=int, help="Repeats [3; --quick: 1].")
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("bench/results")
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result instead of the table.")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The JSON of another checkout's run (main's) to show beside this one's figures.",
)
@click.option(
    "--profile", is_flag=True, help="Sample `cdc sync` with py-spy during the replay (needs py-spy)."
)
@click.option(
    "--only",
    help="Scenarios to run, comma-separated, of backfill, latency, replay, rate_limited, naive_backfill, "
    "peer [all]; the backfill always runs (the others start from it).",
)
def bench_sync(
    quick: bool, rates: str | None, out_dir: Path, as_json: bool, baseline: Path | None, **counts: Any
) -> None:
    """Sync: latency, bulk backfill, replay, rate-limited, naive batching, the poll-and-upsert peer; real
    processes, local Kafka."""
    from cdc.tools.bench.sync import SCENARIOS, Plan, run_bench, table, with_baseline  # noqa: PLC0415 -- keeps `cdc --help` fast

    only: str | None = counts.pop("only")
    changes: dict[str, Any] = {k: v for k, v in counts.items() if v is not None}
    if only is not None:
        picked = {name.strip() for name in only.split(",") if name.strip()}
        if unknown := sorted(picked - SCENARIOS):
            raise click.BadParameter(
                f"no scenario {', '.join(unknown)}; pick from {', '.join(sorted(SCENARIOS))}",
                param_hint="--only",
            )
        changes["only"] = frozenset(picked | {"backfill"})
    if rates is not None:
        try:
            changes["rates"] = tuple(float(rate) for rate in rates.split(",") if rate.strip())
        except ValueError:
            raise click.BadParameter(f"not a list of numbers: {rates!r}", param_hint="--rates") from None
    if baseline is not None:
        _bench_json(baseline)  # a bad file is refused before the run, not after it
    plan = Plan.quick() if quick else Plan()
    result = run_bench(Plan(**{**plan.__dict__, **changes}), out_dir=out_dir, say=_progress)
    if baseline is not None:
        result = with_baseline(result, _bench_json(baseline), str(baseline))
        Path(result["path"]).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if as_json else table(result))
    _progress(f"results: {result['path']}")


# --- operations: status, replay, dead letters, explain --------------------------------------------


@cli.command()
@click.option(
    "--max-lag-s",
    type=float,
    default=60.0,
    show_default=True,
    help="Unhealthy when a group's oldest unread record is older than this.",
)
@click.option(
    "--max-checkpoint-age-s",
    type=float,
    default=300.0,
    show_default=True,
    help="Unhealthy when a poller's checkpoint is older than this.",
)
@click.option("--fail-on-deadletters", is_flag=True, help="Unhealthy while any dead letter is pending.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.pass_obj
def status(
    state: _State, max_lag_s: float, max_checkpoint_age_s: float, fail_on_deadletters: bool, as_json: bool
) -> None:
    """Lag per group and partition, checkpoint ages, dead letters, links; exit 4 when unhealthy."""
    from cdc.ops import Thresholds, gather_status, quiet_kafka_logs, render  # noqa: PLC0415

    quiet_kafka_logs()
    limits = Thresholds(max_lag_s, max_checkpoint_age_s, fail_on_deadletters)
    report = asyncio.run(gather_status(state.settings, limits))
    if as_json:
        _echo_json(report.as_json())
    else:
        for line in render(report):
            click.echo(line)
    if not report.ok:
        raise CliError("unhealthy: " + "; ".join(report.problems), ExitCode.UNHEALTHY)


def _pause_command(
    state: _State, step: str | None, *, paused: bool, by: str | None, reason: str | None
) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from cdc.ops.pauses import change_pause, default_by  # noqa: PLC0415
    from consumers.loader import load_config  # noqa: PLC0415

    settings = state.settings
    config = load_config(settings.sync.config)
    kafka = settings.kafka
    now = datetime.now(UTC)
    try:
        change = asyncio.run(
            change_pause(kafka, config, step, paused=paused, by=by or default_by(), reason=reason, now=now)
        )
    except ValueError as error:
        raise CliError(str(error), ExitCode.USAGE) from None
    click.echo(change.message())


_BY = click.option("--by", help="Who does it, for the audit (default: the OS user).")
_REASON = click.option("--reason", help="Why, for the audit and `cdc paused`.")


@cli.command()
@click.argument("step", required=False)
@_BY
@_REASON
@click.pass_obj
def pause(state: _State, step: str | None, by: str | None, reason: str | None) -> None:
    """Pause the sync: everything (no STEP: nothing is consumed, changes wait in Kafka) or one step (its
    pair's work items park in order until it resumes). Every sync replica obeys within a second."""
    _pause_command(state, step, paused=True, by=by, reason=reason)


@cli.command()
@click.argument("step", required=False)
@_BY
@_REASON
@click.pass_obj
def resume(state: _State, step: str | None, by: str | None, reason: str | None) -> None:
    """Resume what `cdc pause` paused: everything (no STEP) or one step (its parked items go first)."""
    _pause_command(state, step, paused=False, by=by, reason=reason)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the pauses as JSON.")
@click.pass_obj
def paused(state: _State, as_json: bool) -> None:
    """What is paused, since when, by whom and why."""
    from cdc.ops.pauses import render_pauses  # noqa: PLC0415
    from consumers.loader import load_config  # noqa: PLC0415
    from streams.control import read_pauses  # noqa: PLC0415

    settings = state.settings
    pauses = asyncio.run(read_pauses(settings.kafka))
    if as_json:
        _echo_json(
            {t: {"by": p.by, "since": p.at.isoformat(), "reason": p.reason} for t, p in pauses.active.items()}
        )
        return
    for line in render_pauses(pauses, load_config(settings.sync.config)):
        click.echo(line)


@cli.command()
@click.option(
    "--group", "group_name", required=True, help="sync-route, sync-apply, poll, or any consumer group id."
)
@click.option(
    "--from",
    "from_time",
    metavar="TIME",
    help="Re-read from the first record at or after TIME: ISO-8601 (no zone: UTC) or relative, e.g. -2h.",
)
@click.option(
    "--from-offsets",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='Reset to the offsets in this JSON file: {"topic": {"partition": offset}}.',
)
@click.option(
    "--topics",
    multiple=True,
    help="Topics (or catalog roles such as changes.hubspot), repeatable or comma-separated; "
    "default: the group's.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be re-read; commit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan per partition as JSON.")
@click.pass_obj
def replay(
    state: _State,
    *,
    group_name: str,
    from_time: str | None,
    from_offsets: Path | None,
    topics: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Reset a stopped consumer group to a time or to given offsets; say how much will be re-read.

    Refused (exit 75) while the group has live members: stop the `cdc sync` replicas first."""
    from cdc.ops import GroupBusyError, parse_when, quiet_kafka_logs, read_offsets_file  # noqa: PLC0415
    from cdc.ops import replay as replay_group  # noqa: PLC0415

    quiet_kafka_logs()
    since = parse_when(from_time, "--from")
    if (since is None) == (from_offsets is None):
        raise click.UsageError("give exactly one of --from TIME and --from-offsets FILE")
    try:
        offsets = read_offsets_file(from_offsets) if from_offsets is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--from-offsets") from None
    names = [name.strip() for item in topics for name in item.split(",") if name.strip()]
    try:
        plan = asyncio.run(
            replay_group(
                state.settings, group_name, since=since, offsets=offsets, topics=names, dry_run=dry_run
            )
        )
    except GroupBusyError as busy:
        if as_json:
            _echo_json(busy.plan.as_json())
        raise
    if as_json:
        _echo_json(plan.as_json())
    else:
        for line in plan.lines():
            click.echo(line)


@cli.group()
def deadletter() -> None:
    """Dead letters: list them, show one, re-publish (redrive) them to their original topics."""
    from cdc.ops import quiet_kafka_logs  # noqa: PLC0415 -- keeps `cdc --help` fast

    quiet_kafka_logs()


@deadletter.command("list")
@click.option("--step", help="Only dead letters of this sync step.")
@click.option("--since", metavar="TIME", help="Only those failed at or after TIME (ISO-8601 or e.g. -2h).")
@click.option("--pending", is_flag=True, help="Only those not yet redriven.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (no record values).")
@click.pass_obj
def deadletter_list(state: _State, step: str | None, since: str | None, pending: bool, as_json: bool) -> None:
    """Where each dead letter came from, when, the step and the error; never the record's values."""
    from cdc.ops import load_book, parse_when  # noqa: PLC0415 -- keeps `cdc --help` fast

    when = parse_when(since, "--since")
    book = asyncio.run(load_book(state.settings.kafka, since=when))
    letters = [e for e in book.select(step=step, since=when) if not pending or e.status == "pending"]
    if as_json:
        _echo_json([entry.summary_json() for entry in letters])
        return
    for entry in letters:
        error = " ".join(entry.letter.error.split())
        click.echo(
            f"{entry.ident:>6} {entry.letter.failed_at.isoformat()} {entry.original} "
            f"step={entry.letter.step or '-'} {entry.status} {entry.letter.error_class}: {error[:100]}"
        )
    _progress(f"{len(letters)} dead letter(s) on {book.topic}")


@deadletter.command("show")
@click.argument("offset")
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
@click.pass_obj
def deadletter_show(state: _State, offset: str, as_json: bool) -> None:
    """One dead letter in full, the original value included (OFFSET, or PARTITION:OFFSET)."""
    from cdc.ops import load_book, parse_letter_id  # noqa: PLC0415 -- keeps `cdc --help` fast

    try:
        partition, position = parse_letter_id(offset)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="OFFSET") from None
    book = asyncio.run(load_book(state.settings.kafka))
    entry = book.find(partition, position)
    if entry is None:
        raise CliError(f"no dead letter at {book.topic}[{partition}]@{position}", ExitCode.NOT_FOUND)
    if as_json:
        click.echo(orjson.dumps(entry.full_json()).decode())
    else:
        _echo_json(entry.full_json())


@deadletter.command("redrive")
@click.argument("offsets", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Redrive every pending dead letter (after filters).")
@click.option("--step", help="Only dead letters of this sync step.")
@click.option("--since", metavar="TIME", help="Only those failed at or after TIME.")
@click.option("--dry-run", is_flag=True, help="Say what would be redriven; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was redriven and skipped as JSON.")
@click.pass_obj
def deadletter_redrive(
    state: _State,
    *,
    offsets: tuple[str, ...],
    everything: bool,
    step: str | None,
    since: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Re-publish dead letters (OFFSETS, or --all) to their original topics, key kept, each once."""
    from cdc.ops import parse_letter_id, parse_when, redrive  # noqa: PLC0415 -- keeps `cdc --help` fast

    if not offsets and not everything:
        raise click.UsageError("name the dead letters to redrive (OFFSET ...), or pass --all")
    try:
        ids = [parse_letter_id(text) for text in offsets]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="OFFSETS") from None

    def progress(done: int, total: int) -> None:
        _progress(f"redriven {done}/{total}")

    report = asyncio.run(
        redrive(
            state.settings.kafka,
            ids=ids,
            step=step,
            since=parse_when(since, "--since"),
            dry_run=dry_run,
            progress=progress,
        )
    )
    if as_json:
        _echo_json(report.as_json())
        return
    verb = "would redrive" if dry_run else "redriven"
    for entry in report.redriven:
        moved = entry.redrive
        target = f" -> {moved.topic}[{moved.partition}]@{moved.offset}" if moved else ""
        click.echo(f"{verb} {entry.ident}: {entry.original}{target}")
    for entry, reason in report.skipped:
        click.echo(f"skipped {entry.ident}: {reason}")
    click.echo(f"{len(report.redriven)} {verb}, {len(report.skipped)} skipped")


@cli.group()
def excluded() -> None:
    """Records the sync refuses or skips now (an ambiguous match, an empty match key, an option or owner
    with no counterpart...): list them, show one, retry them once fixed."""
    from cdc.ops import quiet_kafka_logs  # noqa: PLC0415 -- keeps `cdc --help` fast

    quiet_kafka_logs()


@excluded.command("list")
@click.option("--reason", metavar="REASON", help="Only records excluded for REASON (e.g. ambiguous_match).")
@click.option("--step", help="Only records excluded by this sync step.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def excluded_list(state: _State, reason: str | None, step: str | None, as_json: bool) -> None:
    """Step, reason, record, counterpart, the values that caused it, last seen and count; newest first."""
    from cdc.ops import excluded as ops  # noqa: PLC0415 -- keeps `cdc --help` fast

    wanted = ops.parse_reason(reason)
    view = asyncio.run(ops.load(state.settings))
    found = view.select(reason=wanted, step=step)
    if as_json:
        _echo_json([ops.exclusion_json(e) for e in found])
        return
    if found:
        for line in ops.lines(found):
            click.echo(line)
    click.echo(f"{len(found)} record(s) excluded" + (f" of {len(view.excluded)}" if reason or step else ""))


@excluded.command("show")
@click.argument("key")
@click.pass_obj
def excluded_show(state: _State, key: str) -> None:
    """One exclusion in full, as JSON (KEY as `cdc excluded list` prints it)."""
    from cdc.ops import excluded as ops  # noqa: PLC0415 -- keeps `cdc --help` fast

    view = asyncio.run(ops.load(state.settings))
    (found,) = ops.select(view, keys=[key])
    _echo_json(ops.exclusion_json(found))


@excluded.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--reason", metavar="REASON", help="Every record excluded for REASON.")
@click.option("--step", help="Every record excluded by this sync step.")
@click.option("--all", "everything", is_flag=True, help="Every excluded record.")
@click.option("--json", "as_json", is_flag=True, help="Print {queued, not_found} as JSON.")
@click.pass_obj
def excluded_retry(
    state: _State,
    *,
    keys: tuple[str, ...],
    reason: str | None,
    step: str | None,
    everything: bool,
    as_json: bool,
) -> None:
    """Re-read records (KEYS, or --reason / --step / --all) from their source CRM and queue them for sync
    as change events; fixed, they sync and leave the list."""
    from cdc.ops import excluded as ops  # noqa: PLC0415 -- keeps `cdc --help` fast

    chosen = sum((bool(keys), reason is not None or step is not None, everything))
    if chosen != 1:
        raise click.UsageError("name the records to retry: KEY ..., or --reason/--step, or --all")
    wanted = ops.parse_reason(reason)
    view = asyncio.run(ops.load(state.settings))
    targets = ops.select(view, keys=keys, reason=wanted, step=step)
    report = ops.run_retry(state.settings, targets)
    if as_json:
        _echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)


@cli.command()
@click.argument("system", type=click.Choice(["hubspot", "dataverse"]))
@click.argument("object_type", metavar="OBJECT")
@click.argument("object_id", metavar="ID")
@click.option("--tenant", help="HubSpot portal id or Dataverse org host (default: any).")
@click.option("--since", metavar="TIME", help="Audit records from TIME on only (ISO-8601 or e.g. -7d).")
@click.option("--json", "as_json", is_flag=True, help="Print the links and audit records as JSON.")
@click.pass_obj
def explain(
    state: _State,
    *,
    system: str,
    object_type: str,
    object_id: str,
    tenant: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """A record's link (both sides, field fingerprints, revision) and its audit history, oldest first."""
    from cdc.ops import RecordQuery, parse_when, quiet_kafka_logs  # noqa: PLC0415 -- keeps `cdc --help` fast
    from cdc.ops import explain as explain_record  # noqa: PLC0415
    from streams.keys import SourceSystem  # noqa: PLC0415

    quiet_kafka_logs()
    query = RecordQuery(SourceSystem(system), object_type, object_id, tenant)
    result = asyncio.run(explain_record(state.settings.kafka, query, since=parse_when(since, "--since")))
    if as_json:
        _echo_json(result.as_json())
    else:
        for line in result.lines():
            click.echo(line)
    if not result.found:
        raise CliError(f"no link and no audit record for {query}", ExitCode.NOT_FOUND)


@cli.command()
@click.option("--system", type=click.Choice(["hubspot", "dataverse"]), required=True)
@click.option(
    "--object",
    "object_name",
    required=True,
    metavar="OBJECT",
    help="hubspot: contacts|companies|deals; dataverse: contacts|accounts|opportunities|leads "
    "(entity set or logical name).",
)
@click.option("--since", metavar="TIME", help="Only records modified from TIME on (ISO-8601 or e.g. -7d).")
@click.option("--dry-run", is_flag=True, help="Read and count; publish nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print {system, object, records, published, seconds}.")
@click.pass_obj
def resync(
    state: _State, *, system: str, object_name: str, since: str | None, dry_run: bool, as_json: bool
) -> None:
    """Re-read records from the source and publish them as change events (origin resync); the sync
    re-applies them idempotently. No poller checkpoint or delta link moves."""
    from cdc.ops import parse_when, quiet_kafka_logs  # noqa: PLC0415
    from cdc.ops.resync import run_resync  # noqa: PLC0415 -- keeps `cdc --help` fast

    quiet_kafka_logs()
    when = parse_when(since, "--since")
    report = run_resync(state.settings, system, object_name, since=when, dry_run=dry_run, progress=_progress)
    if as_json:
        _echo_json(report.as_json())
    else:
        click.echo(report.summary())


def _push_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        (
            click.argument("system", type=click.Choice(["hubspot", "dataverse"])),
            click.argument("object_name", metavar="OBJECT"),
            click.option("--id", "ids", multiple=True, metavar="ID", help="A record id (repeatable)."),
            click.option(
                "--email", "emails", multiple=True, metavar="EMAIL", help="A contact's email (repeatable)."
            ),
            click.option(
                "--all", "every", is_flag=True, help="Every record of the object (progress as it goes)."
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON."),
            click.pass_obj,
        )
    ):
        command = option(command)
    return command


def _run_push(
    state: _State, system: str, object_name: str, ids: tuple[str, ...], emails: tuple[str, ...], *,
    every: bool, as_json: bool, pull: bool,
) -> None:  # fmt: skip
    from cdc.ops import quiet_kafka_logs  # noqa: PLC0415
    from cdc.ops.push import Selection, run_push  # noqa: PLC0415 -- keeps `cdc --help` fast

    quiet_kafka_logs()
    chosen = Selection(ids=ids, emails=emails, every=every)
    report = run_push(state.settings, system, object_name, chosen, pull=pull, progress=_progress)
    if as_json:
        _echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)


@cli.command()
@_push_options
def push(
    state: _State, *, system: str, object_name: str, ids: tuple[str, ...], emails: tuple[str, ...],
    every: bool, as_json: bool,
) -> None:  # fmt: skip
    """Sync records of SYSTEM now, SYSTEM winning every conflict of this pass (Accelo's Push).

    `cdc push hubspot contacts --id 101` re-reads HubSpot contact 101 and the sync makes its Dataverse
    counterpart match it (creating it if there is none), even where Dataverse changed a value later or a
    conflict rule would keep Dataverse's. For single records it waits for the sync and prints what was
    written. The next changes sync by the usual rules again."""
    _run_push(state, system, object_name, ids, emails, every=every, as_json=as_json, pull=False)


@cli.command()
@_push_options
def pull(
    state: _State, *, system: str, object_name: str, ids: tuple[str, ...], emails: tuple[str, ...],
    every: bool, as_json: bool,
) -> None:  # fmt: skip
    """Make records of SYSTEM match their counterparts now, the other system winning (Accelo's Pull).

    `cdc pull hubspot contacts --id 101` re-reads the Dataverse contact linked to HubSpot contact 101 and
    the sync writes its values over HubSpot's. --email finds the record to read in the other system;
    --all pulls every record of the paired object."""
    _run_push(state, system, object_name, ids, emails, every=every, as_json=as_json, pull=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turn known failures into one line and an exit code."""
    sigterm_as_interrupt()
    try:
        cli.main(args=argv, prog_name="cdc", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(ExitCode.USAGE)
    except (click.Abort, KeyboardInterrupt):
        click.echo("cdc: interrupted", err=True)
        sys.exit(130)
    except SettingsError as error:
        _fail(str(error), ExitCode.CONFIG)
    except KafkaUnavailableError as error:
        _fail(str(error), ExitCode.UNAVAILABLE)
    except KafkaConnectionError as error:
        # A role's producer or consumer could not bootstrap: the same answer as the short commands give.
        _fail(f"{error} (check kafka.bootstrap_servers, CDC_KAFKA__BOOTSTRAP_SERVERS)", ExitCode.UNAVAILABLE)
    except TopicAdminError as error:
        _fail(str(error), ExitCode.FAILURE)
    except CliError as error:
        _fail(str(error), error.code)
    except ConfigError as error:
        _fail(str(error), ExitCode.CONFIG)


def _fail(message: str, code: ExitCode) -> None:
    click.echo(f"cdc: error: {message}", err=True)
    sys.exit(code)
