"""`cdc status`, `cdc replay`, `cdc explain` and `cdc resync`: reading the pipeline's state, and reading
again what it already read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from cdc.commands._context import State, echo_json, say
from cdc.exits import CliError, ExitCode


@click.command()
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
    state: State, max_lag_s: float, max_checkpoint_age_s: float, fail_on_deadletters: bool, as_json: bool
) -> None:
    """Lag per group and partition, checkpoint ages, dead letters, links; exit 4 when unhealthy."""
    from cdc.ops import Thresholds, gather_status, quiet_kafka_logs, render  # noqa: PLC0415

    quiet_kafka_logs()
    limits = Thresholds(max_lag_s, max_checkpoint_age_s, fail_on_deadletters)
    report = asyncio.run(gather_status(state.settings, limits))
    if as_json:
        echo_json(report.as_json())
    else:
        for line in render(report):
            click.echo(line)
    if not report.ok:
        raise CliError("unhealthy: " + "; ".join(report.problems), ExitCode.UNHEALTHY)


@click.command()
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
    state: State,
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
            echo_json(busy.plan.as_json())
        raise
    if as_json:
        echo_json(plan.as_json())
    else:
        for line in plan.lines():
            click.echo(line)


@click.command()
@click.argument("system", type=click.Choice(["hubspot", "dataverse"]))
@click.argument("object_type", metavar="OBJECT")
@click.argument("object_id", metavar="ID")
@click.option("--tenant", help="HubSpot portal id or Dataverse org host (default: any).")
@click.option("--since", metavar="TIME", help="Audit records from TIME on only (ISO-8601 or e.g. -7d).")
@click.option("--json", "as_json", is_flag=True, help="Print the links and audit records as JSON.")
@click.pass_obj
def explain(
    state: State,
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
        echo_json(result.as_json())
    else:
        for line in result.lines():
            click.echo(line)
    if not result.found:
        raise CliError(f"no link and no audit record for {query}", ExitCode.NOT_FOUND)


@click.command()
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
    state: State, *, system: str, object_name: str, since: str | None, dry_run: bool, as_json: bool
) -> None:
    """Re-read records from the source and publish them as change events (origin resync); the sync
    re-applies them idempotently. No poller checkpoint or delta link moves."""
    from cdc.ops import parse_when, quiet_kafka_logs  # noqa: PLC0415
    from cdc.ops.resync import run_resync  # noqa: PLC0415 -- keeps `cdc --help` fast

    quiet_kafka_logs()
    when = parse_when(since, "--since")
    report = run_resync(state.settings, system, object_name, since=when, dry_run=dry_run, progress=say)
    if as_json:
        echo_json(report.as_json())
    else:
        click.echo(report.summary())
