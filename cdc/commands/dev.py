"""`cdc dev kafka` and `cdc dev resolve-kafka`: a real local broker for development (a tool, imported
lazily)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
import orjson

from cdc.commands._context import say
from cdc.exits import CliError

if TYPE_CHECKING:  # the tools are imported by their commands only (the product path never loads them)
    from cdc.tools.devkafka.runner import LocalKafka


@click.group()
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

    kafka = LocalKafka(port=port, controller_port=controller_port, data_dir=data_dir, progress=say)
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
            say(f"log: {kafka.log_path}; Ctrl-C stops the broker")
        sys.stdout.flush()
        _wait_for_signal(kafka)
        say("stopping Kafka ...")


@dev.command("resolve-kafka")
def dev_resolve_kafka() -> None:
    """Resolve the Kafka broker's jars from Maven Central into the cache (done by `dev kafka` too)."""
    from cdc.tools.devkafka.runner import resolve_jars  # noqa: PLC0415 -- a tool: lazily

    click.echo(resolve_jars(progress=say))
