"""Writes the Grafana dashboard (`deploy/grafana/dashboards/cdc.json`) from the metrics catalog.

Why generated: the catalog (`cdc.metrics.Metrics`) is the one list of what the daemon exports, so the
dashboard is built against it. Every query is checked to name a series the catalog declares, and a metric
no hand-made panel shows gets a generic panel in the last row ("Other metrics"), so a new metric shows up
as soon as the JSON is regenerated. `tests/deploy/test_assets.py` fails when the committed JSON differs
from this script's output.

    python deploy/grafana/build_dashboard.py           # rewrite the JSON
    python deploy/grafana/build_dashboard.py --check   # exit 1 when the committed JSON is stale

The package never imports `deploy/`; this script imports the package (installed in the virtualenv).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from cdc.metrics import Metrics

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "cdc.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
METRIC_NAME = re.compile(r"\bcdc_[a-z0-9_]+\b")
# Series suffixes per metric type, as prometheus_client exposes them (``_created`` is not scraped by default
# in Prometheus and is no use on a dashboard).
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
WIDTH = 24


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


def catalog() -> dict[str, str]:
    """Metric family name -> type ("counter", "gauge", "histogram"), from a fresh registry."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name: family.type for family in registry.collect()}


def series_names(families: dict[str, str]) -> set[str]:
    """Every series name a scrape of the catalog can return."""
    return {name + suffix for name, kind in families.items() for suffix in SUFFIXES[kind]}


def _rate(series: str, by: str, window: str = "5m") -> str:
    return f"sum by ({by}) (rate({series}[{window}]))"


def _quantile(q: float, histogram: str, by: str, window: str = "5m") -> str:
    groups = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({groups}) (rate({histogram}_bucket[{window}])))"


def rows() -> list[Row]:
    """The hand-made rows, in the order an SRE reads them: is data coming in, is it flowing, how fast,
    what did it write, what does the API budget say, what fell out."""
    return [
        Row(
            "Ingest",
            [
                Panel(
                    "Webhook requests by status",
                    ((_rate("cdc_webhook_requests_total", "status"), "{{status}}"),),
                    "reqps",
                ),
                Panel(
                    "Events ingested by source and object",
                    ((_rate("cdc_events_ingested_total", "source, object"), "{{source}} {{object}}"),),
                    "ops",
                ),
                Panel(
                    "Webhook answer time (p50, p99)",
                    (
                        (_quantile(0.5, "cdc_webhook_answer_seconds", ""), "p50"),
                        (_quantile(0.99, "cdc_webhook_answer_seconds", ""), "p99"),
                    ),
                    "s",
                    description="HubSpot waits 5 s; answers must stay well below.",
                ),
                Panel(
                    "Produce latency p99 by topic (acks=all)",
                    ((_quantile(0.99, "cdc_produce_latency_seconds", "topic"), "{{topic}}"),),
                    "s",
                ),
                Panel(
                    "Produce failures and signature failures",
                    (
                        (_rate("cdc_produce_failures_total", "reason"), "produce: {{reason}}"),
                        (_rate("cdc_webhook_signature_failures_total", "reason"), "signature: {{reason}}"),
                        ("sum(rate(cdc_webhook_unknown_event_types_total[5m]))", "unknown event types"),
                    ),
                    "ops",
                ),
                Panel(
                    "Webhook refusals by reason, events of another portal or app",
                    (
                        (_rate("cdc_webhook_refusals_total", "reason"), "refused: {{reason}}"),
                        (_rate("cdc_webhook_foreign_events_total", "field"), "foreign event: {{field}}"),
                    ),
                    "ops",
                    description="Refused for anything but the signature: busy, slow or malformed requests, "
                    "limits, another portal. Foreign events are dropped (alert CdcWebhookForeignEvents).",
                ),
            ],
        ),
        Row(
            "Lag and progress",
            [
                Panel(
                    "Time since last progress by component",
                    (
                        (
                            "time() - max by (component) (cdc_last_progress_timestamp_seconds)",
                            "{{component}}",
                        ),
                    ),
                    "s",
                    description="The sync stage is behind when this grows while events are ingested "
                    "(alert CdcSyncBehind).",
                ),
                Panel(
                    "Paused by an operator (time paused, by step)",
                    (
                        (
                            "time() - max by (step) (cdc_sync_operator_paused_since_timestamp_seconds > 0)",
                            "{{step}}",
                        ),
                    ),
                    "s",
                    description="`cdc pause [STEP]`: how long each pause has lasted (step * is everything; "
                    "alert CdcSyncPausedTooLong).",
                ),
                Panel(
                    "Consumer lag (records) by group",
                    (("sum by (group) (cdc_consumer_lag_records)", "{{group}}"),),
                    "short",
                    description="High watermark minus position, over every partition a sync replica holds.",
                ),
                Panel(
                    "Consumer lag (seconds) by group",
                    (("max by (group) (cdc_consumer_lag_seconds)", "{{group}}"),),
                    "s",
                    description="Age of the last record read from a partition that is still behind.",
                ),
                Panel(
                    "Time since last successful poll by table",
                    (
                        (
                            "time() - max by (system, table) (cdc_poll_last_success_timestamp_seconds)",
                            "{{system}} {{table}}",
                        ),
                    ),
                    "s",
                ),
                Panel(
                    "Checkpoint age (Dataverse tokens expire at 7 days)",
                    (("max by (system, table) (cdc_checkpoint_age_seconds)", "{{system}} {{table}}"),),
                    "s",
                ),
                Panel(
                    "Poll duration p95 and rows read",
                    (
                        (_quantile(0.95, "cdc_poll_duration_seconds", "system, table"), "p95 {{table}}"),
                        (_rate("cdc_poll_rows_total", "system, table"), "rows/s {{table}}"),
                    ),
                ),
                Panel(
                    "HubSpot Webhooks Journal: events read, and expired offsets (1 h)",
                    (
                        (_rate("cdc_journal_events_total", "outcome"), "events/s {{outcome}}"),
                        ("rate(cdc_journal_entries_total[5m])", "entries/s"),
                        ("sum(increase(cdc_journal_expired_total[1h]))", "offsets expired"),
                    ),
                    description="With hubspot.change_sources journal or both, `cdc poll` reads HubSpot's "
                    "changes from the journal. An expired offset (the source away for more than 3 days) runs "
                    "one search reconciliation over the gap; foreign or unreadable events are worth a look.",
                ),
                Panel(
                    "Delta-token resets (1 h)",
                    (("sum by (table) (increase(cdc_delta_token_resets_total[1h]))", "{{table}}"),),
                ),
                Panel(
                    "Change tracking of the polled Dataverse tables (0: off, not polled)",
                    (("min by (table) (cdc_dataverse_change_tracking_enabled)", "{{table}}"),),
                    description="0: a table a sync step syncs has change tracking off, and nothing of it is "
                    "read. `cdc provision --dataverse` turns it on; the poller takes it up with no restart.",
                ),
                Panel(
                    "Sources refusing cdc poll's credentials (1: paused, retried with backoff)",
                    (("max by (system) (cdc_poll_auth_failing)", "{{system}}"),),
                    description="1: the source refuses the token or secret; its tables wait (cursors kept) "
                    "and resume by themselves once it is accepted again (alert: CdcPollAuthFailing).",
                ),
                Panel(
                    "HubSpot refusing the app's refresh token (1: HubSpot calls paused)",
                    (("max by (job) (cdc_hubspot_credentials_refused)", "{{job}}"),),
                    description="1: HubSpot's token endpoint refuses the OAuth refresh token (or client "
                    "credentials): the role's HubSpot calls wait and try again; re-authorise the app "
                    "(alert: CdcHubSpotCredentialsRefused).",
                ),
            ],
        ),
        Row(
            "Sync latency by step",
            [
                Panel(
                    "End-to-end latency p99 by step",
                    ((_quantile(0.99, "cdc_sync_latency_seconds", "step"), "{{step}}"),),
                    "s",
                    description="Source change -> write acknowledged by the other CRM. Alert at 5 s.",
                ),
                Panel(
                    "End-to-end latency p50 by step",
                    ((_quantile(0.5, "cdc_sync_latency_seconds", "step"), "{{step}}"),),
                    "s",
                ),
                Panel(
                    "Writes within the 2 s SLO by step",
                    (
                        (
                            'sum by (step) (rate(cdc_sync_latency_seconds_bucket{le="2.0"}[1h])) '
                            "/ sum by (step) (rate(cdc_sync_latency_seconds_count[1h]))",
                            "{{step}}",
                        ),
                    ),
                    "percentunit",
                    description="SLO: 99% (alert CdcSyncLatencySLOBurn).",
                ),
                Panel(
                    "Batch apply time (p50, p99)",
                    (
                        (_quantile(0.5, "cdc_sync_batch_seconds", ""), "p50"),
                        (_quantile(0.99, "cdc_sync_batch_seconds", ""), "p99"),
                    ),
                    "s",
                ),
            ],
        ),
        Row(
            "Writes and errors",
            [
                Panel(
                    "Writes by target, operation and outcome",
                    (
                        (
                            _rate("cdc_sync_writes_total", "target, operation, outcome"),
                            "{{target}} {{operation}} {{outcome}}",
                        ),
                    ),
                    "ops",
                ),
                Panel(
                    "Writes by object",
                    ((_rate("cdc_sync_writes_total", "target, object"), "{{target}} {{object}}"),),
                    "ops",
                ),
                Panel(
                    "Routed, echoes suppressed, pauses",
                    (
                        ("sum(rate(cdc_sync_routed_total[5m]))", "routed"),
                        ("sum(rate(cdc_sync_echoes_suppressed_total[5m]))", "echoes suppressed"),
                        ("sum(rate(cdc_sync_duplicate_changes_total[5m]))", "duplicates dropped"),
                        (_rate("cdc_sync_paused_total", "system"), "paused: {{system}}"),
                        (_rate("cdc_sync_parked_total", "pair"), "parked: {{pair}}"),
                    ),
                    "ops",
                ),
                Panel(
                    "Conflicts by step and rule",
                    ((_rate("cdc_sync_conflicts_total", "step, rule"), "{{step}} {{rule}}"),),
                    "ops",
                ),
                Panel(
                    "Skipped by step and reason",
                    ((_rate("cdc_sync_skipped_total", "step, reason"), "{{step}} {{reason}}"),),
                    "ops",
                ),
                Panel(
                    "Records excluded now (cdc excluded list)",
                    # Every sync replica reports the whole exclusions topic: max, never sum.
                    (("max by (step, reason) (cdc_excluded_records)", "{{step}} {{reason}}"),),
                ),
            ],
        ),
        Row(
            "API budget and 429s",
            [
                Panel(
                    "API requests by system and status",
                    ((_rate("cdc_api_requests_total", "system, status"), "{{system}} {{status}}"),),
                    "reqps",
                ),
                Panel(
                    "429s by system and endpoint",
                    ((_rate("cdc_api_throttled_total", "system, endpoint"), "{{system}} {{endpoint}}"),),
                    "reqps",
                ),
                Panel(
                    "Throttled share by system",
                    (
                        (
                            _rate("cdc_api_throttled_total", "system")
                            + " / "
                            + _rate("cdc_api_requests_total", "system"),
                            "{{system}}",
                        ),
                    ),
                    "percentunit",
                ),
                Panel(
                    "API latency p99 by system",
                    ((_quantile(0.99, "cdc_api_request_seconds", "system"), "{{system}}"),),
                    "s",
                ),
                Panel(
                    "Retries by system", ((_rate("cdc_api_retries_total", "system"), "{{system}}"),), "ops"
                ),
                Panel(
                    "API budget: used / limit by window (the whole deployment)",
                    (
                        (
                            "max by (system, window) (cdc_api_budget_used) / "
                            "max by (system, window) (cdc_api_budget_limit)",
                            "{{system}} {{window}}",
                        ),
                    ),
                    "percentunit",
                ),
                Panel(
                    "API budget: wait p99 by system",
                    ((_quantile(0.99, "cdc_api_budget_wait_seconds", "system"), "{{system}}"),),
                    "s",
                ),
                Panel(
                    "429s by the limit they name",
                    ((_rate("cdc_api_rate_limited_total", "system, policy"), "{{system}} {{policy}}"),),
                    "reqps",
                ),
                Panel(
                    "Retries by what (the retry policy)",
                    ((_rate("cdc_retries_total", "what"), "{{what}}"),),
                    "ops",
                ),
                Panel(
                    "Loop failures (restarted; sync.loop_failures_max in the window ends the role)",
                    (("sum by (loop) (increase(cdc_loop_failures_total[10m]))", "{{loop}}"),),
                    "short",
                ),
            ],
        ),
        Row(
            "Dead letters",
            [
                Panel(
                    "Dead letters by step and reason (15 m)",
                    (
                        (
                            "sum by (step, reason) (increase(cdc_sync_deadletters_total[15m]))",
                            "{{step}} {{reason}}",
                        ),
                    ),
                ),
                Panel(
                    "Dead letters in the last 24 h",
                    (("sum(increase(cdc_sync_deadletters_total[24h]))", "dead letters"),),
                    kind="stat",
                ),
            ],
        ),
        Row(
            "Links and build",
            [
                Panel("Linked pairs by object", (("sum by (object) (cdc_links)", "{{object}}"),)),
                Panel(
                    "Running versions",
                    (("count by (version) (cdc_build_info)", "{{version}}"),),
                    kind="stat",
                ),
            ],
        ),
    ]


def _generic(name: str, kind: str) -> Panel:
    if kind == "counter":
        return Panel(name, ((f"sum(rate({name}_total[5m]))", name),), "ops")
    if kind == "histogram":
        return Panel(name, ((_quantile(0.99, name, ""), "p99"),), "s")
    return Panel(name, ((f"sum({name})", name),))


def with_uncovered(hand_made: list[Row], families: dict[str, str]) -> list[Row]:
    """Append a row with a generic panel for each catalog metric no hand-made panel queries."""
    shown = {m for row in hand_made for p in row.panels for q, _ in p.queries for m in METRIC_NAME.findall(q)}
    known = series_names(families)
    unknown = sorted(shown - known)
    if unknown:
        raise ValueError(f"dashboard queries name series the catalog lacks: {', '.join(unknown)}")
    missing = [
        name
        for name, kind in sorted(families.items())
        if not any(name + suffix in shown for suffix in SUFFIXES[kind])
    ]
    if not missing:
        return hand_made
    return [*hand_made, Row("Other metrics", [_generic(name, families[name]) for name in missing])]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, width: int) -> dict[str, Any]:
    targets = [
        {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
        for i, (expr, legend) in enumerate(panel.queries)
    ]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": targets,
    }


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (schemaVersion 39)."""
    families = catalog()
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in with_uncovered(rows(), families):
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        per_line = 3 if len(row.panels) >= 3 else max(len(row.panels), 1)  # noqa: PLR2004 -- 3 panels a line
        width = WIDTH // per_line
        for n, panel in enumerate(row.panels):
            x = (n % per_line) * width
            panels.append(_panel_json(panel, next_id, x, y + (n // per_line) * 8, width))
            next_id += 1
        y += 8 * -(-len(row.panels) // per_line)
    return {
        "uid": "crm-cdc",
        "title": "CRM CDC: HubSpot <-> Dynamics 365",
        "description": "Generated from cdc/metrics.py by deploy/grafana/build_dashboard.py; do not edit.",
        "tags": ["crm-cdc"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="Exit 1 when the committed JSON is stale.")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
