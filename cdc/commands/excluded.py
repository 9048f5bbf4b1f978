"""`cdc excluded list|show|retry`: the records the sync refuses or skips now."""

from __future__ import annotations

import asyncio

import click

from cdc.commands._context import State, echo_json


@click.group()
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
def excluded_list(state: State, reason: str | None, step: str | None, as_json: bool) -> None:
    """Step, reason, record, counterpart, the values that caused it, last seen and count; newest first."""
    from cdc.ops import excluded as ops  # noqa: PLC0415 -- keeps `cdc --help` fast

    wanted = ops.parse_reason(reason)
    view = asyncio.run(ops.load(state.settings))
    found = view.select(reason=wanted, step=step)
    if as_json:
        echo_json([ops.exclusion_json(e) for e in found])
        return
    if found:
        for line in ops.lines(found):
            click.echo(line)
    click.echo(f"{len(found)} record(s) excluded" + (f" of {len(view.excluded)}" if reason or step else ""))


@excluded.command("show")
@click.argument("key")
@click.pass_obj
def excluded_show(state: State, key: str) -> None:
    """One exclusion in full, as JSON (KEY as `cdc excluded list` prints it)."""
    from cdc.ops import excluded as ops  # noqa: PLC0415 -- keeps `cdc --help` fast

    view = asyncio.run(ops.load(state.settings))
    (found,) = ops.select(view, keys=[key])
    echo_json(ops.exclusion_json(found))


@excluded.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--reason", metavar="REASON", help="Every record excluded for REASON.")
@click.option("--step", help="Every record excluded by this sync step.")
@click.option("--all", "everything", is_flag=True, help="Every excluded record.")
@click.option("--json", "as_json", is_flag=True, help="Print {queued, not_found} as JSON.")
@click.pass_obj
def excluded_retry(
    state: State,
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
        echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)
