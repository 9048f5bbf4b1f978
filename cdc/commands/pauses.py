"""`cdc pause`, `cdc resume` and `cdc paused`: the sync's pauses, all of it or one step."""

from __future__ import annotations

import asyncio

import click

from cdc.commands._context import State, echo_json
from cdc.exits import CliError, ExitCode


def _pause_command(
    state: State, step: str | None, *, paused: bool, by: str | None, reason: str | None
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


@click.command()
@click.argument("step", required=False)
@_BY
@_REASON
@click.pass_obj
def pause(state: State, step: str | None, by: str | None, reason: str | None) -> None:
    """Pause the sync: everything (no STEP: nothing is consumed, changes wait in Kafka) or one step (its
    pair's work items park in order until it resumes). Every sync replica obeys within a second."""
    _pause_command(state, step, paused=True, by=by, reason=reason)


@click.command()
@click.argument("step", required=False)
@_BY
@_REASON
@click.pass_obj
def resume(state: State, step: str | None, by: str | None, reason: str | None) -> None:
    """Resume what `cdc pause` paused: everything (no STEP) or one step (its parked items go first)."""
    _pause_command(state, step, paused=False, by=by, reason=reason)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the pauses as JSON.")
@click.pass_obj
def paused(state: State, as_json: bool) -> None:
    """What is paused, since when, by whom and why."""
    from cdc.ops.pauses import render_pauses  # noqa: PLC0415
    from consumers.loader import load_config  # noqa: PLC0415
    from streams.control import read_pauses  # noqa: PLC0415

    settings = state.settings
    pauses = asyncio.run(read_pauses(settings.kafka))
    if as_json:
        echo_json(
            {t: {"by": p.by, "since": p.at.isoformat(), "reason": p.reason} for t, p in pauses.active.items()}
        )
        return
    for line in render_pauses(pauses, load_config(settings.sync.config)):
        click.echo(line)
