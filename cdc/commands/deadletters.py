"""`cdc deadletter list|show|redrive`: the dead letters, read and re-published."""

from __future__ import annotations

import asyncio

import click
import orjson

from cdc.commands._context import State, echo_json, say
from cdc.exits import CliError, ExitCode


@click.group()
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
def deadletter_list(state: State, step: str | None, since: str | None, pending: bool, as_json: bool) -> None:
    """Where each dead letter came from, when, the step and the error; never the record's values."""
    from cdc.ops import load_book, parse_when  # noqa: PLC0415 -- keeps `cdc --help` fast

    when = parse_when(since, "--since")
    book = asyncio.run(load_book(state.settings.kafka, since=when))
    letters = [e for e in book.select(step=step, since=when) if not pending or e.status == "pending"]
    if as_json:
        echo_json([entry.summary_json() for entry in letters])
        return
    for entry in letters:
        error = " ".join(entry.letter.error.split())
        click.echo(
            f"{entry.ident:>6} {entry.letter.failed_at.isoformat()} {entry.original} "
            f"step={entry.letter.step or '-'} {entry.status} {entry.letter.error_class}: {error[:100]}"
        )
    say(f"{len(letters)} dead letter(s) on {book.topic}")


@deadletter.command("show")
@click.argument("offset")
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
@click.pass_obj
def deadletter_show(state: State, offset: str, as_json: bool) -> None:
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
        echo_json(entry.full_json())


@deadletter.command("redrive")
@click.argument("offsets", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Redrive every pending dead letter (after filters).")
@click.option("--step", help="Only dead letters of this sync step.")
@click.option("--since", metavar="TIME", help="Only those failed at or after TIME.")
@click.option("--dry-run", is_flag=True, help="Say what would be redriven; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was redriven and skipped as JSON.")
@click.pass_obj
def deadletter_redrive(
    state: State,
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
        say(f"redriven {done}/{total}")

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
        echo_json(report.as_json())
        return
    verb = "would redrive" if dry_run else "redriven"
    for entry in report.redriven:
        moved = entry.redrive
        target = f" -> {moved.topic}[{moved.partition}]@{moved.offset}" if moved else ""
        click.echo(f"{verb} {entry.ident}: {entry.original}{target}")
    for entry, reason in report.skipped:
        click.echo(f"skipped {entry.ident}: {reason}")
    click.echo(f"{len(report.redriven)} {verb}, {len(report.skipped)} skipped")
