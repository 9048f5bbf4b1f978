"""Every Prometheus metric the daemon exports, declared once against a registry passed in.

Names are ``cdc_<thing>_<unit>`` with ``_total`` for counters and ``_seconds`` for durations. Labels are
bounded: systems, object types from a fixed set (anything else is ``other``), outcomes, reasons; never
ids, emails or other personal data.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

KNOWN_OBJECTS = frozenset(
    {
        "contact",
        "company",
        "deal",
        "account",
        "opportunity",
        "lead",
        "contacts",
        "accounts",
        "opportunities",
        "leads",
    }
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def object_label(object_type: str) -> str:
    """The object type as a label value, from a fixed set so a hostile payload cannot grow cardinality."""
    return object_type if object_type in KNOWN_OBJECTS else "other"


def _package_version() -> str:
    try:
        return version("crm-cdc")
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    """The metrics of one process. Tests build their own with a fresh ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.build_info = Gauge(
            "cdc_build_info", "Always 1; the labels say what runs.", ["version"], registry=registry
        )
        self.build_info.labels(version=_package_version()).set(1)
        self.last_progress = Gauge(
            "cdc_last_progress_timestamp_seconds",
            "When a component last made progress (a request answered, a poll finished, a batch applied).",
            ["component"],
            registry=registry,
        )

        # ingest: HubSpot webhooks
        self.webhook_requests = Counter(
            "cdc_webhook_requests_total",
            "Webhook requests answered, by HTTP status.",
            ["status"],
            registry=registry,
        )
        self.webhook_signature_failures = Counter(
            "cdc_webhook_signature_failures_total",
            "Webhook requests refused for their signature, by reason.",
            ["reason"],
            registry=registry,
        )
        self.webhook_unknown_types = Counter(
            "cdc_webhook_unknown_event_types_total",
            "Webhook events of a type this version does not interpret (published as-is).",
            registry=registry,
        )
        self.webhook_answer_seconds = Histogram(
            "cdc_webhook_answer_seconds",
            "Time from request received to answer sent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.events_ingested = Counter(
            "cdc_events_ingested_total",
            "Change events published to Kafka, by source system and object type.",
            ["source", "object"],
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "cdc_produce_latency_seconds",
            "Time for Kafka to acknowledge a batch of change events (acks=all).",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.produce_failures = Counter(
            "cdc_produce_failures_total",
            "Batches Kafka did not acknowledge in time, by reason.",
            ["reason"],
            registry=registry,
        )

    def progress(self, component: str) -> None:
        self.last_progress.labels(component=component).set(time.time())
