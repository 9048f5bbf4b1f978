"""Every Prometheus metric the daemon exports, declared once against a registry passed in.

Names are ``cdc_<thing>_<unit>`` with ``_total`` for counters and ``_seconds`` for durations. Labels are
bounded: systems, object types from a fixed set (anything else is ``other``), outcomes, reasons; never
ids, emails or other personal data.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumers.retries import Retry

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

    def __init__(self, registry: CollectorRegistry) -> None:  # noqa: PLR0915 -- one statement per metric
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
        self.webhook_refusals = Counter(
            "cdc_webhook_refusals_total",
            "Webhook requests refused for anything but their signature, by reason (busy, framing, "
            "malformed_header, header_timeout, body_timeout, body_too_large, malformed_body, "
            "too_many_events, foreign_portal, foreign_app).",
            ["reason"],
            registry=registry,
        )
        self.webhook_foreign_events = Counter(
            "cdc_webhook_foreign_events_total",
            "Webhook events of another portal or app (field portalId or appId): neither published nor "
            "dead-lettered. The app is installed where this daemon does not sync, or hubspot.portal_id "
            "is wrong.",
            ["field"],
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

        # ingest: pollers (Dataverse change tracking, HubSpot reconciler); `table` is an entity set or
        # object type from the configuration, so it is bounded.
        self.poll_seconds = Histogram(
            "cdc_poll_duration_seconds",
            "One poll of one table, all pages.",
            ["system", "table"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.journal_entries = Counter(
            "cdc_journal_entries_total",
            "HubSpot Webhooks Journal entries read (files fetched) by `cdc poll`.",
            registry=registry,
        )
        self.journal_events = Counter(
            "cdc_journal_events_total",
            "Webhooks Journal events read, by outcome: published, foreign (another portal's: not ours), or "
            "unreadable (published as an 'other' change, to be found and replayed); unfetchable counts "
            "entries whose file never downloaded, given up after the search reconciliation covered them.",
            ["outcome"],
            registry=registry,
        )
        self.journal_expired = Counter(
            "cdc_journal_expired_total",
            "Times the stored journal offset had expired (the source was away longer than the 3 days HubSpot "
            "keeps): each ran one search reconciliation over the gap, then read on from the earliest entry.",
            registry=registry,
        )
        self.poll_rows = Counter(
            "cdc_poll_rows_total",
            "Rows (or deleted entries) read by polls.",
            ["system", "table"],
            registry=registry,
        )
        self.poll_last_success = Gauge(
            "cdc_poll_last_success_timestamp_seconds",
            "When a table's last poll succeeded.",
            ["system", "table"],
            registry=registry,
        )
        self.checkpoint_age = Gauge(
            "cdc_checkpoint_age_seconds",
            "Age of a table's delta token (Dataverse) or cursor (HubSpot) against the source's expiry.",
            ["system", "table"],
            registry=registry,
        )
        self.delta_token_resets = Counter(
            "cdc_delta_token_resets_total",
            "Expired or invalid delta tokens answered by a fresh full pass.",
            ["table"],
            registry=registry,
        )
        self.change_tracking = Gauge(
            "cdc_dataverse_change_tracking_enabled",
            "1 when a polled Dataverse table has change tracking on; 0 when it has not, and nothing of it is "
            "read or published (`cdc provision --dataverse` turns it on).",
            ["table"],
            registry=registry,
        )
        self.poll_auth_failing = Gauge(
            "cdc_poll_auth_failing",
            "1 while a polled CRM refuses the daemon's credentials (HubSpot 401; Dataverse 401 or the "
            "identity provider refusing the app): that source's polls are paused and retried with backoff, "
            "the other source keeps polling; 0 when they are accepted.",
            ["system"],
            registry=registry,
        )
        self.hubspot_credentials_refused = Gauge(
            "cdc_hubspot_credentials_refused",
            "1 while HubSpot's token endpoint refuses the app's refresh token or client credentials "
            "(hubspot.auth): the role's HubSpot calls wait and try again; 0 once a token is issued.",
            registry=registry,
        )
        # outbound API calls, per system and endpoint (a route template, never a record URL)
        self.api_requests = Counter(
            "cdc_api_requests_total",
            "CRM API requests, by outcome status.",
            ["system", "endpoint", "status"],
            registry=registry,
        )
        self.api_seconds = Histogram(
            "cdc_api_request_seconds",
            "CRM API request latency.",
            ["system", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.api_throttled = Counter(
            "cdc_api_throttled_total",
            "429 answers from a CRM API.",
            ["system", "endpoint"],
            registry=registry,
        )
        self.api_retries = Counter(
            "cdc_api_retries_total",
            "Requests retried after a throttle, 5xx or network error.",
            ["system"],
            registry=registry,
        )
        self.api_rate_limited = Counter(
            "cdc_api_rate_limited_total",
            "429 answers from a CRM API by the limit they name: HubSpot's policyName (TEN_SECONDLY_ROLLING, "
            "SECONDLY, DAILY), Dataverse's service protection code (requests, execution, concurrency).",
            ["system", "policy"],
            registry=registry,
        )
        # the API budget the whole deployment shares (`cdc.budget`)
        self.api_budget_used = Gauge(
            "cdc_api_budget_used",
            "Calls (execution seconds for Dataverse's execution window) the whole deployment used in the "
            "window, as this process last heard.",
            ["system", "window"],
            registry=registry,
        )
        self.api_budget_limit = Gauge(
            "cdc_api_budget_limit",
            "The window's limit for this deployment (after hubspot.limits.daily_cap).",
            ["system", "window"],
            registry=registry,
        )
        self.api_budget_allowance = Gauge(
            "cdc_api_budget_allowance",
            "This process's part of the window's limit now (its share, less the others' use).",
            ["system", "window"],
            registry=registry,
        )
        self.api_budget_external = Gauge(
            "cdc_api_budget_external",
            "What the server counts in the window beyond the deployment's calls (other integrations).",
            ["system", "window"],
            registry=registry,
        )
        self.api_budget_processes = Gauge(
            "cdc_api_budget_processes",
            "Processes sharing the API's budget, this one included.",
            ["system"],
            registry=registry,
        )
        self.api_budget_wait = Histogram(
            "cdc_api_budget_wait_seconds",
            "How long a call waited for budget before it was sent.",
            ["system"],
            buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
        # the one retry policy (`consumers.retries`), whatever it retries
        self.retries = Counter(
            "cdc_retries_total",
            "Retries scheduled by the retry policy, by what: hubspot, dataverse (API requests), "
            "dataverse_token, hubspot_token (the first token), dataverse_poll (a table's poll), poll_auth "
            "(refused credentials), route, sync (the sync engine waiting out a CRM outage), sync_batch (a "
            "batch that failed unexpectedly), sync-links, sync-route, sync-apply (a loop restarted after an "
            "unexpected failure).",
            ["what"],
            registry=registry,
        )
        self.loop_failures = Counter(
            "cdc_loop_failures_total",
            "Unexpected failures of a role's loop. Each is restarted with backoff until "
            "sync.loop_failures_max of them fall within sync.loop_failures_window_s; then the role exits 70 "
            "and its supervisor (compose, Kubernetes) restarts it.",
            ["loop"],
            registry=registry,
        )

        # sync: the router and the apply loop
        self.sync_routed = Counter(
            "cdc_sync_routed_total",
            "Change events re-keyed to their pair on the work topic.",
            registry=registry,
        )
        self.sync_duplicates = Counter(
            "cdc_sync_duplicate_changes_total",
            "Change events the router dropped as a change it had routed already (the same identity: a "
            "HubSpot webhook and its Webhooks Journal entry, a webhook delivered twice), before any API "
            "read.",
            registry=registry,
        )
        self.sync_writes = Counter(
            "cdc_sync_writes_total",
            "Records written to a CRM by the sync stage.",
            ["target", "object", "operation", "outcome"],
            registry=registry,
        )
        self.sync_latency = Histogram(
            "cdc_sync_latency_seconds",
            "End to end: the source change -> the write acknowledged by the other CRM, per step.",
            ["step"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=registry,
        )
        self.sync_conflicts = Counter(
            "cdc_sync_conflicts_total",
            "Fields changed on both sides since the last sync, by the rule that chose the winner.",
            ["step", "rule"],
            registry=registry,
        )
        self.sync_echoes = Counter(
            "cdc_sync_echoes_suppressed_total",
            "Changes that matched the last-synced fingerprints (our own writes coming back).",
            registry=registry,
        )
        self.sync_skipped = Counter(
            "cdc_sync_skipped_total",
            "Records or fields not synced, by reason (not_in_sync_set, ambiguous_match, ...).",
            ["step", "reason"],
            registry=registry,
        )
        self.sync_deadletters = Counter(
            "cdc_sync_deadletters_total",
            "Events sent to the dead-letter topic, by step and reason.",
            ["step", "reason"],
            registry=registry,
        )
        self.sync_paused = Counter(
            "cdc_sync_paused_total",
            "Times the sync stage paused for a CRM system error (429, 5xx, timeout, auth).",
            ["system"],
            registry=registry,
        )
        # Not `cdc_sync_paused`: the client library keeps that family name for `cdc_sync_paused_total`.
        self.sync_operator_paused = Gauge(
            "cdc_sync_operator_paused",
            '1 while an operator has paused this step (`cdc pause STEP`; step="*": everything), else 0.',
            ["step"],
            registry=registry,
        )
        self.sync_operator_paused_since = Gauge(
            "cdc_sync_operator_paused_since_timestamp_seconds",
            "When the operator's pause of this step began (Unix time); 0 while it is not paused.",
            ["step"],
            registry=registry,
        )
        self.sync_parked = Counter(
            "cdc_sync_parked_total",
            "Work items parked because their step (or an earlier item of their pair) was paused, by pair.",
            ["pair"],
            registry=registry,
        )
        self.sync_batch_seconds = Histogram(
            "cdc_sync_batch_seconds",
            "One batch of work items, from the start of its apply (reads, plans, writes) to its commit.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag_records = Gauge(
            "cdc_consumer_lag_records",
            "Records between a consumed partition's committed position and its end (per sync role).",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.consumer_lag_seconds = Gauge(
            "cdc_consumer_lag_seconds",
            "Age of the last record read from a partition that is still behind (0 when caught up).",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.links = Gauge(
            "cdc_links", "Linked record pairs in this replica's link view.", ["object"], registry=registry
        )
        self.excluded_records = Gauge(
            "cdc_excluded_records",
            "Records the sync refuses or skips now (`cdc excluded list`), by step and main reason; every "
            "sync replica reports the whole topic (aggregate with max, not sum).",
            ["step", "reason"],
            registry=registry,
        )

    def progress(self, component: str) -> None:
        self.last_progress.labels(component=component).set(time.time())

    def api_answered(self, system: str, endpoint: str, status: str, started: float) -> None:
        """One CRM API request done: counted by ``status`` (``network_error`` when none came), its time since
        ``started`` (``time.perf_counter()``) observed."""
        self.api_requests.labels(system=system, endpoint=endpoint, status=status).inc()
        self.api_seconds.labels(system=system, endpoint=endpoint).observe(time.perf_counter() - started)

    def retried(self, retry: Retry) -> None:
        """The retry policy's on-retry hook reports here (``on_retry=metrics.retried``)."""
        self.retries.labels(what=retry.what).inc()
