"""`cdc push` and `cdc pull`: records synced now, one side winning every conflict of this pass."""

from __future__ import annotations

from collections.abc import Callable

import click

from cdc.commands._context import State, echo_json, say


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
    state: State, system: str, object_name: str, ids: tuple[str, ...], emails: tuple[str, ...], *,
    every: bool, as_json: bool, pull: bool,
) -> None:  # fmt: skip
    from cdc.ops import quiet_kafka_logs  # noqa: PLC0415
    from cdc.ops.push import Selection, run_push  # noqa: PLC0415 -- keeps `cdc --help` fast

    quiet_kafka_logs()
    chosen = Selection(ids=ids, emails=emails, every=every)
    report = run_push(state.settings, system, object_name, chosen, pull=pull, progress=say)
    if as_json:
        echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)


@click.command()
@_push_options
def push(
    state: State, *, system: str, object_name: str, ids: tuple[str, ...], emails: tuple[str, ...],
    every: bool, as_json: bool,
) -> None:  # fmt: skip
    """Sync records of SYSTEM now, SYSTEM winning every conflict of this pass (Accelo's Push).

    `cdc push hubspot contacts --id 101` re-reads HubSpot contact 101 and the sync makes its Dataverse
    counterpart match it (creating it if there is none), even where Dataverse changed a value later or a
    conflict rule would keep Dataverse's. For single records it waits for the sync and prints what was
    written. The next changes sync by the usual rules again."""
    _run_push(state, system, object_name, ids, emails, every=every, as_json=as_json, pull=False)


@click.command()
@_push_options
def pull(
    state: State, *, system: str, object_name: str, ids: tuple[str, ...], emails: tuple[str, ...],
    every: bool, as_json: bool,
) -> None:  # fmt: skip
    """Make records of SYSTEM match their counterparts now, the other system winning (Accelo's Pull).

    `cdc pull hubspot contacts --id 101` re-reads the Dataverse contact linked to HubSpot contact 101 and
    the sync writes its values over HubSpot's. --email finds the record to read in the other system;
    --all pulls every record of the paired object."""
    _run_push(state, system, object_name, ids, emails, every=every, as_json=as_json, pull=True)
