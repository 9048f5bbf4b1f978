"""`cdc bench ingest|links|sync`: the benchmarks (tools, imported lazily by each command)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import orjson

from cdc.commands._context import State, say


@click.group()
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
        rates=targets, seconds=seconds, repeats=repeats, out_dir=out_dir, say=say, profile=profile
    )
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if as_json else table(result))
    say(f"results: {result['path']}")


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
    state: State,
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
            progress=say,
            tail=tail,
            baseline_max=baseline_max,
            state_dir=state_dir,
        )
    )
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    say(f"results: {result['path']}")


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
    result = run_bench(Plan(**{**plan.__dict__, **changes}), out_dir=out_dir, say=say)
    if baseline is not None:
        result = with_baseline(result, _bench_json(baseline), str(baseline))
        Path(result["path"]).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if as_json else table(result))
    say(f"results: {result['path']}")
