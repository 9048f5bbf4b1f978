"""The ``cdc`` command line: the root group, the registrations of the commands (`cdc.commands`, a module
per family) and the entry point that maps failures to exit codes.

Errors end a command with one ``cdc: error: ...`` line on stderr and a named exit code
(`cdc.exits.ExitCode`); tracebacks are for bugs only. Progress goes to stderr, results to stdout, and
``--json`` prints what a script would read. Logs go to stderr through `cdc.logs` in the ``log`` settings'
format, set up as soon as a command has read its settings: the roles at ``log.level``, the demo and the
short commands (which print their own progress) at WARNING unless ``log.level`` is set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from aiokafka.errors import KafkaConnectionError

from cdc.commands import (
    bench,
    config,
    deadletters,
    dev,
    excluded,
    ops,
    pauses,
    provision,
    push,
    roles,
    sandbox,
    topics,
)
from cdc.commands._context import State
from cdc.exits import CliError, ExitCode
from cdc.settings import SettingsError
from cdc.signals import sigterm_as_interrupt
from consumers.loader import ConfigError
from streams.admin import KafkaUnavailableError, TopicAdminError


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
    ctx.obj = State(config_file)


# `cdc --help` lists them by name, whatever the order here.
for _command in (
    topics.topics,
    dev.dev,
    roles.demo,
    roles.ingest,
    roles.poll,
    roles.sync,
    roles.admin,
    config.config_group,
    provision.provision,
    sandbox.sandbox,
    bench.bench,
    ops.status,
    pauses.pause,
    pauses.resume,
    pauses.paused,
    ops.replay,
    deadletters.deadletter,
    excluded.excluded,
    ops.explain,
    ops.resync,
    push.push,
    push.pull,
):
    cli.add_command(_command)


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
