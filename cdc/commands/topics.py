"""`cdc topics describe` and `cdc topics ensure`: the topic catalog, printed or made real."""

from __future__ import annotations

import asyncio
import logging

import click

from cdc.commands._context import State, echo_json
from cdc.exits import CliError, ExitCode
from streams.admin import EnsureReport, ensure_topics, open_admin
from streams.topics import TopicCatalog


@click.group()
def topics() -> None:
    """The topic catalog: describe it, or make the cluster match it."""
    # A short command reports a connection failure itself, in one line; aiokafka would log it twice more.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@topics.command("describe")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as a JSON list.")
@click.pass_obj
def topics_describe(state: State, as_json: bool) -> None:
    """Print every topic the daemon uses, with partitions, replication and configs."""
    catalog = TopicCatalog.from_settings(state.settings.kafka)
    if as_json:
        echo_json(catalog.as_json())
        return
    for spec in catalog:
        config = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        click.echo(f"{spec.name:<32} partitions={spec.partitions:<3} rf={spec.replication_factor}  {config}")
        click.echo(f"{'':<32} {spec.description}")


@topics.command("ensure")
@click.option("--json", "as_json", is_flag=True, help="Print what was created, what existed and any drift.")
@click.pass_obj
def topics_ensure(state: State, as_json: bool) -> None:
    """Create the catalog's missing topics; fail (exit 3) when an existing topic drifts from it."""
    kafka = state.settings.kafka
    catalog = TopicCatalog.from_settings(kafka)

    async def run() -> EnsureReport:
        async with open_admin(kafka) as admin:
            return await ensure_topics(admin, catalog)

    report = asyncio.run(run())
    if as_json:
        echo_json(report.as_json())
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
