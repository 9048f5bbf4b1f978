"""`cdc provision`: what the sync configuration needs made in both CRMs, or the HubSpot project written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from cdc.commands._context import State, echo_json, say, sync_config_option
from cdc.exits import CliError, ExitCode

if TYPE_CHECKING:
    from cdc.provisioning.report import ProvisionReport


@click.command()
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
@sync_config_option
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
    state: State,
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
                progress=say,
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
        echo_json(report.as_json())
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
    state: State,
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
            say=say,
        )
    except ProjectError as error:
        raise CliError(str(error), ExitCode.CONFIG) from None
    except OSError as error:
        raise CliError(f"cannot write the project in {directory}: {error}", ExitCode.FAILURE) from None
    if as_json:
        echo_json(report.as_json())
    else:
        click.echo(report.summary())
    if not report.ok:
        what = "would change" if dry_run and not report.problems else "has problems"
        raise CliError(f"the HubSpot project in {directory} {what}: {report.summary()}", ExitCode.DRIFT)
    if not dry_run:
        say(f"next: `hs project upload` in {directory}, then install the app in your HubSpot account")
