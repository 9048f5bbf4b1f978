"""``cdc demo``: the product end to end, in one process, on a local Kafka and the sandbox CRMs.

Start-up, in order (the CLI has started a local Apache Kafka):

1. the topic catalog is created; the sandbox HubSpot and Dataverse start. The daemon is a HubSpot project
   app with OAuth, whose access tokens last ``ONCE_TOKEN_S`` (``LIVE_TOKEN_S`` in the live demo) instead of
   HubSpot's 30 minutes, so the run sees each role renew its token before it ends: the log says so, one
   line per renewal (`cdc.hubspot.tokens`), and the last line counts the renewals and any call HubSpot
   refused (none: syncing has no gap);
2. ``provision_sandbox`` creates the sync flags, custom properties and columns, and webhook subscriptions
   the default sync configuration (the seeds' steps 1-5) needs, and turns change tracking on for the
   tables it syncs (a fresh org, like the sandbox, has it on none);
3. a few hundred companies, contacts and opportunities are seeded through the bulk admin endpoints, 30% of
   the Dataverse ones already in HubSpot under the same email or name (`cdc.tools.demo.seed`);
4. the three roles start as tasks of one task group, as separate deployments would run them: ``ingest``
   (webhook receiver), ``poll`` (Dataverse change tracking + HubSpot reconciler) and ``sync`` (router +
   apply loop), each with its own metrics endpoint; the live view reads the change and audit topics; and
   ``admin`` (`cdc admin`, the sync health page) with a user ``admin`` whose password is made for the run
   and printed with the page's URL;
5. the backfill: the reconciler's and the poller's first passes put every seeded record on Kafka and the
   sync engine matches or creates its counterpart; a progress line counts linked pairs against expected;
6. the live part: a "user" (`cdc.tools.demo.user`) edits both CRMs a few times a second; each write the engine
   makes is printed with its latency (`cdc.tools.demo.view`), and a summary every few seconds.

``--once`` runs each kind of edit once and exits 0 when every one was seen synced (and the conflict
ended with both sides equal), else non-zero, naming what is missing.

Shutdown (Ctrl-C) is numbered and bounded: (1) the user stops editing; (2) intake stops: ingest answers
503 and the pollers commit their last page; (3) sync finishes its batch, commits and leaves its groups;
(4) the live view stops; (5) the sandbox stops (then the CLI stops Kafka). One summary line ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.admin import hash_password
from cdc.exits import CliError, ExitCode
from cdc.hubspot import tokens as hubspot_tokens
from cdc.metrics import Metrics
from cdc.provisioning.run import provision_sandbox
from cdc.roles.admin import run_admin
from cdc.roles.ingest import run_ingest
from cdc.roles.poll import run_poll
from cdc.roles.sync import run_sync
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import AdminSettings, PollSettings, Settings, SyncSettings
from cdc.tools.demo.seed import SeedPlan, plan_seed, post_seed
from cdc.tools.demo.user import EDIT_KINDS, DemoUser, Expectation
from cdc.tools.demo.view import LiveView
from consumers.config import SyncConfig
from consumers.loader import load_config
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog

__all__ = ["run"]

Say = Callable[[str], None]
EDITS_PER_SECOND = 3.0
SUMMARY_EVERY_S = 10.0
BACKFILL_TIMEOUT_S = 120.0
SETTLE_S = 1.5
"""The backfill is over when every pair is linked and no write came for this long."""
THROTTLE_S = 11.0
STALL_S = 15.0
PROGRESS_EVERY_S = 2.0
ONCE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LATE_S = 10.0
"""An edit not seen synced after this long is named in the summary."""
CONFIRM_AFTER_S = 2.0
"""An edit no write has completed after this long is checked by reading its record (it may need none)."""
DATAVERSE_POLL_S = 0.5
ONCE_TOKEN_S = 6.0
"""HubSpot access tokens' lifetime in ``--once`` (about 10 s of syncing): each role renews its token once,
1.2 s before it ends (`cdc.hubspot.tokens.renew_before`)."""
LIVE_TOKEN_S = 60.0
FULL = (150, 300, 100, 100, 80)
"""HubSpot companies and contacts; Dataverse accounts, contacts and opportunities."""
SMALL = (20, 40, 20, 20, 10)
"""The same for ``--once``, which a test runs: the pipeline is the same, the backfill shorter."""


@dataclass
class Role:
    name: str
    stop: asyncio.Event
    task: asyncio.Task[None]


def demo_settings(box: Sandbox, kafka: KafkaSettings) -> Settings:
    """The daemon's settings against the sandbox: every role on a free port; Dataverse polled often."""
    settings = box.daemon_settings(kafka, poll=PollSettings(port=0, dataverse_interval_s=DATAVERSE_POLL_S))
    return settings.model_copy(update={"sync": SyncSettings(port=0)})


def _total(metrics: Metrics, name: str) -> float:
    return sum(
        sample.value
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if sample.name == name
    )


def _links(metrics: Metrics) -> dict[str, int]:
    return {
        sample.labels["object"]: int(sample.value)
        for metric in metrics.links.collect()
        for sample in metric.samples
    }


def tokens_line(metrics: dict[str, Metrics]) -> str:
    """How often each role renewed its HubSpot access tokens (a role may hold two: `cdc poll`'s journal
    token comes from the client-credentials endpoint), and how many calls HubSpot refused (401)."""
    renewed: dict[str, int] = {}
    refused = 0
    for role, registry in metrics.items():
        issued: dict[str, int] = {}  # per token endpoint: the first token, then its renewals
        for metric in registry.api_requests.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total") or sample.labels.get("system") != "hubspot":
                    continue
                endpoint = sample.labels["endpoint"]
                if "/oauth/" in endpoint and sample.labels["status"] == "200":
                    issued[endpoint] = issued.get(endpoint, 0) + int(sample.value)
                elif sample.labels["status"] == "401":
                    refused += int(sample.value)
        if issued:
            renewed[role] = sum(n - 1 for n in issued.values() if n)
    counts = ", ".join(f"{role} {n}x" for role, n in renewed.items()) or "none"
    return f"HubSpot access tokens renewed: {counts}; HubSpot calls refused (401): {refused}"


def _api_calls(box: Sandbox) -> int:
    return box.hubspot.calls.count() + box.dataverse.calls.count()


async def _start(
    tasks: asyncio.TaskGroup,
    name: str,
    start: Callable[[asyncio.Event, Callable[[str], None]], Coroutine[Any, Any, None]],
) -> tuple[Role, str]:
    """Start one role as a task; wait until it serves (its URL) or dies (its error)."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_ready(url: str) -> None:
        if not ready.done():
            ready.set_result(url)

    task = tasks.create_task(start(stop, on_ready), name=f"demo-{name}")
    either: set[asyncio.Future[Any]] = {ready, task}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.result()
        raise RuntimeError(f"{name} stopped during start-up")
    return Role(name, stop, task), ready.result()


async def _start_admin(
    tasks: asyncio.TaskGroup, settings: Settings, config: SyncConfig
) -> tuple[Role, str, str]:
    """`cdc admin` on a free port with one user, ``admin``, whose password is made for this run; plain
    HTTP on localhost, so its cookies are not marked Secure (a deployment keeps them Secure, behind TLS)."""
    password = secrets.token_urlsafe(12)
    admin = AdminSettings(
        port=0,
        users={"admin": SecretStr(hash_password(password))},
        session_secret=SecretStr(secrets.token_urlsafe(32)),
        secure_cookies=False,
    )
    with_admin = settings.model_copy(update={"admin": admin})
    role, url = await _start(
        tasks, "admin", lambda s, r: run_admin(with_admin, s, config=config, on_listening=r)
    )
    return role, url, password


async def _stop(role: Role) -> None:
    """Ask a role to stop; cancel it when it does not within ``STOP_TIMEOUT_S``."""
    role.stop.set()
    done, _ = await asyncio.wait([role.task], timeout=STOP_TIMEOUT_S)
    if not done:
        role.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await role.task


async def backfill(view: LiveView, sync: Metrics, plan: SeedPlan, say: Say, stop: asyncio.Event) -> float:
    """Wait until every expected pair is linked and the writes have settled; the time it took.

    Settled: no write for ``SETTLE_S`` and no 429 for ``THROTTLE_S`` (a throttled call may still be waiting
    out HubSpot's 10-second window, its writes to come). Gives up, saying so, when nothing moves for
    ``STALL_S`` (the warnings above it tell why)."""
    started = time.monotonic()
    last: tuple[int, int] = (-1, -1)
    moved = last_print = started
    throttled, throttled_at = 0.0, started - THROTTLE_S
    while not stop.is_set():
        links = _links(sync)
        linked = sum(min(links.get(k, 0), n) for k, n in plan.expected_links.items())
        now = time.monotonic()
        if (linked, len(view.writes)) != last:
            last, moved = (linked, len(view.writes)), now
        if (seen := _total(sync, "cdc_api_throttled_total")) != throttled:
            throttled, throttled_at = seen, now
        quiet = now - moved >= SETTLE_S and now - throttled_at >= THROTTLE_S
        complete = linked >= plan.expected_total and quiet
        stalled = now - max(moved, throttled_at) >= STALL_S or now - started >= BACKFILL_TIMEOUT_S
        if complete or stalled or now - last_print >= PROGRESS_EVERY_S:
            detail = ", ".join(f"{k} {links.get(k, 0)}/{n}" for k, n in plan.expected_links.items())
            note = f", throttled {throttled:.0f}x by HubSpot (429)" if throttled else ""
            say(
                f"backfill: {linked}/{plan.expected_total} pairs linked ({detail}), "
                f"{len(view.writes)} writes{note}, {now - started:.1f} s"
            )
            last_print = now
        if complete:
            return moved - started
        if stalled:
            say("backfill: stalled; going on with what is linked (see the warnings above)")
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - started


class Summary:
    """The periodic line: writes, latency per direction, echoes, API calls per synced change."""

    def __init__(self, view: LiveView, sync: Metrics, box: Sandbox) -> None:
        self.view, self.sync, self.box = view, sync, box
        self.first = len(view.writes)
        self.calls = _api_calls(box)
        self.sync_calls = _total(sync, "cdc_api_requests_total")
        self.echoes = _total(sync, "cdc_sync_echoes_suppressed_total")
        self.started = time.monotonic()

    def line(self, user: DemoUser) -> str:
        writes = len(self.view.writes) - self.first
        calls = _api_calls(self.box) - self.calls
        sync_calls = _total(self.sync, "cdc_api_requests_total") - self.sync_calls
        echoes = _total(self.sync, "cdc_sync_echoes_suppressed_total") - self.echoes
        per = f"{calls / writes:.1f} ({sync_calls / writes:.1f} by sync)" if writes else "-"
        missing = user.missing
        late = [e for e in missing if time.monotonic() - e.made_at > LATE_S]
        waiting = f" ({len(late)} waiting over {LATE_S:g} s: {late[0].label}...)" if late else ""
        return (
            f"== {time.monotonic() - self.started:.0f} s: "
            f"{len(user.expectations) - len(missing)}/{len(user.expectations)} edits synced{waiting}; "
            f"{self.view.summary(since=self.first)}; echoes suppressed {echoes:.0f}; "
            f"API calls per write {per}"
        )


async def _watch(user: DemoUser, stop: asyncio.Event) -> None:
    """Mark expectations met as writes arrive; read the records of those still open after a while."""
    read_at = time.monotonic()
    while not stop.is_set():
        user.check()
        if time.monotonic() - read_at >= CONFIRM_AFTER_S / 2:
            await user.confirm(older_than_s=CONFIRM_AFTER_S)
            read_at = time.monotonic()
        user.view.new_write.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(user.view.new_write.wait(), 0.5)


def _say_missing(missing: list[Expectation], say: Say) -> None:
    for e in missing:
        wanted = ", ".join(f"{k}={v!r}" for k, v in e.wanted.items())
        say(
            f"  missing: {e.label}: {e.system.value} {e.object_type} {e.object_id or '(new)'} "
            f"never held {wanted}"
        )


async def run(kafka: KafkaSettings, say: Say, *, once: bool, stop: asyncio.Event) -> None:
    """The demo (module docstring); raises `CliError` when ``once`` saw an edit not synced."""
    async with open_admin(kafka) as admin:
        report = await ensure_topics(admin, TopicCatalog.from_settings(kafka))
    say(f"topics: {len(report.created)} created ({kafka.topic_prefix}*)")
    config = load_config()
    lifetime = ONCE_TOKEN_S if once else LIVE_TOKEN_S
    # Each token renewal is one line of the roles' log: shown, though the demo logs warnings only.
    token_log = logging.getLogger(hubspot_tokens.__name__)
    level = token_log.level
    token_log.setLevel(logging.INFO)
    try:
        demo = await _demo(kafka, config, say, once=once, stop=stop, lifetime=lifetime)
    finally:
        token_log.setLevel(level)
    if demo.summary is not None:
        say(f"demo: {demo.summary.line(demo.user).removeprefix('== ')}")
    say(f"demo: {tokens_line(demo.metrics)}")
    if demo.failure is not None:
        raise CliError(demo.failure, ExitCode.FAILURE)


async def _demo(
    kafka: KafkaSettings, config: SyncConfig, say: Say, *, once: bool, stop: asyncio.Event, lifetime: float
) -> Demo:
    """Steps 1 to 6 and the shutdown (module docstring): the demo as played."""
    async with run_sandbox(seed=1, hubspot_token_lifetime_s=lifetime) as box:
        hs_url, dv_url = box.info.hubspot.base_url, box.info.dataverse.base_url
        say(f"sandbox: HubSpot {hs_url}, Dataverse {dv_url}")
        settings = demo_settings(box, kafka)
        say(
            f"HubSpot app: a project app with OAuth (client id {box.info.hubspot.client_id}); its access "
            f"tokens last {lifetime:g} s here (30 minutes at HubSpot), so each role renews them as it runs"
        )
        provisioned = await provision_sandbox(settings, config)
        tracked = [i.object for i in provisioned.dataverse.created if i.kind == "table"]
        say(
            f"provisioned: {len(provisioned.hubspot.created)} HubSpot properties, "
            f"{len(provisioned.webhooks.created)} webhook subscriptions, "
            f"{len(provisioned.dataverse.created) - len(tracked)} Dataverse columns and keys, "
            f"change tracking on {', '.join(tracked)}"
        )
        plan = plan_seed(*(SMALL if once else FULL))
        ca = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
        async with (
            httpx.AsyncClient(base_url=hs_url, timeout=30) as hs,
            httpx.AsyncClient(base_url=dv_url, verify=ca, timeout=30) as dv,
        ):
            # Provisioning is a one-off set-up, done long before a real sync starts; its ~150 HubSpot calls
            # would otherwise fill the 10-second rate window the reconciler and the sync now start in.
            (await hs.delete("/_admin/ratelimits")).raise_for_status()
            await post_seed(plan, hs, dv)
            say(
                f"seeded HubSpot with {len(plan.hubspot['companies'])} companies and "
                f"{len(plan.hubspot['contacts'])} contacts, Dataverse with {len(plan.accounts)} accounts, "
                f"{len(plan.contacts)} contacts and {len(plan.opportunities)} opportunities "
                "(30% of the accounts and contacts are in HubSpot too)"
            )
            demo = Demo(box, settings, config, plan, say, DemoUser(hs, dv, LiveView(kafka, say)))
            demo.failure = await demo.play(once=once, stop=stop)
        started = time.monotonic()
    say(f"shutdown 5/5: the sandbox CRMs stopped ({time.monotonic() - started:.1f} s)")
    return demo


@dataclass
class Demo:
    """The running part: the three roles, the backfill, the user and the live view."""

    box: Sandbox
    settings: Settings
    config: SyncConfig
    plan: SeedPlan
    say: Say
    user: DemoUser
    summary: Summary | None = None
    metrics: dict[str, Metrics] = field(default_factory=dict)
    failure: str | None = None
    """What ``--once`` found missing."""

    @property
    def view(self) -> LiveView:
        return self.user.view

    async def play(self, *, once: bool, stop: asyncio.Event) -> str | None:
        """Run until ``stop`` (or the end of ``once``'s scenario); what ``once`` found missing."""
        say, settings, config = self.say, self.settings, self.config
        metrics = self.metrics = {name: Metrics(CollectorRegistry()) for name in ("ingest", "poll", "sync")}
        failure: str | None = None
        # A fresh cluster's first seconds (leader elections, the offsets topic being created) are logged by
        # aiokafka as errors it then retries; they would read as failures here. Shown again once running.
        kafka_log = logging.getLogger("aiokafka")
        level = kafka_log.level
        kafka_log.setLevel(logging.CRITICAL)
        async with asyncio.TaskGroup() as tasks:
            view_stop = asyncio.Event()
            view = tasks.create_task(self.view.run(view_stop), name="demo-view")
            ingest, webhook_url = await _start(
                tasks,
                "ingest",
                lambda s, r: run_ingest(settings, s, metrics=metrics["ingest"], on_listening=r),
            )
            self.box.hubspot.set_webhook_url(webhook_url)
            poll, poll_url = await _start(
                tasks,
                "poll",
                lambda s, r: run_poll(settings, s, metrics=metrics["poll"], on_ready=r, config=config),
            )
            sync, sync_url = await _start(
                tasks,
                "sync",
                lambda s, r: run_sync(settings, s, metrics=metrics["sync"], config=config, on_ready=r),
            )
            admin, admin_url, password = await _start_admin(tasks, settings, config)
            say(f"admin page: {admin_url}  user admin, password {password} (made for this run)")
            ingest_url = webhook_url.removesuffix("/webhooks/hubspot")
            say(f"metrics: ingest {ingest_url}/metrics  poll {poll_url}/metrics  sync {sync_url}/metrics")
            say(
                f"sync steps: {', '.join(s.name for s in config.enabled_steps())}; "
                f"Dataverse polled every {DATAVERSE_POLL_S} s"
            )
            if not stop.is_set():
                await self._backfill(metrics["sync"], stop)
            kafka_log.setLevel(level)
            if not stop.is_set():
                self.view.live = True
                self.summary = Summary(self.view, metrics["sync"], self.box)
                watcher_stop = asyncio.Event()
                watcher = tasks.create_task(_watch(self.user, watcher_stop), name="demo-watch")
                if once:
                    failure = await self._once(stop)
                else:
                    await self._live(tasks, stop)
                watcher_stop.set()
                await watcher
            await _timed(
                say,
                "2/5: intake stopped: ingest answers 503, the pollers committed their last page",
                asyncio.gather(_stop(ingest), _stop(poll), _stop(admin)),
            )
            await _timed(say, "3/5: sync finished its batch, committed and left its groups", _stop(sync))
            view_stop.set()
            await _timed(say, "4/5: the live view stopped", view)
        return failure

    async def _backfill(self, sync: Metrics, stop: asyncio.Event) -> None:
        seconds = await backfill(self.view, sync, self.plan, self.say, stop)
        pairs = await self.user.find_pairs()
        self.say(
            f"backfill done in {seconds:.1f} s: {len(self.view.writes)} writes; "
            + ", ".join(f"{k} {n}" for k, n in pairs.records.items())
        )
        duplicates = {k: n for k, n in pairs.duplicates.items() if n}
        if duplicates:
            self.say(f"WARNING duplicates (records sharing a match key): {duplicates}")
            for example in pairs.examples[:6]:
                self.say(f"  {example}")

    async def _once(self, stop: asyncio.Event) -> str | None:
        self.say("a user now edits both CRMs: one edit of each kind")
        for kind in EDIT_KINDS:
            await self._edit(kind)
            await asyncio.sleep(0.3)
        self.user.check()
        waited = asyncio.ensure_future(self.user.all_met.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waited, stopped}, timeout=ONCE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        for future in (waited, stopped):
            future.cancel()
        return await _verify(self.user, self.say)

    async def _live(self, tasks: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        assert self.summary is not None  # noqa: S101 -- set by play() before
        self.say(f"a user now edits both CRMs, {EDITS_PER_SECOND:g} edits a second; Ctrl-C stops everything")
        editor_stop = asyncio.Event()
        editor = tasks.create_task(self._edit_forever(editor_stop), name="demo-user")
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SUMMARY_EVERY_S)
            self.say(self.summary.line(self.user))
        editor_stop.set()
        await _timed(self.say, "1/5: the user stopped editing", editor)

    async def _edit(self, kind: Callable[[DemoUser], Awaitable[list[Expectation]]]) -> None:
        expectations = await kind(self.user)
        self.user.expect(expectations)
        for e in expectations:
            self.say(f"edit  {e.label}")

    async def _edit_forever(self, stop: asyncio.Event) -> None:
        rng = random.Random(5)  # noqa: S311 -- demo data
        while not stop.is_set():
            await self._edit(rng.choice(EDIT_KINDS))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / EDITS_PER_SECOND)


async def _timed(say: Say, step: str, work: Awaitable[Any]) -> None:
    started = time.monotonic()
    await work
    say(f"shutdown {step} ({time.monotonic() - started:.1f} s)")


async def _verify(user: DemoUser, say: Say) -> str | None:
    """``--once``: every expectation met, and the conflict's pair equal on both sides."""
    user.check()
    await user.confirm(older_than_s=0.0)
    missing = user.missing
    for e in user.expectations:
        if e.met is not None:
            how = "?" if e.met.latency_s is None else f"{e.met.latency_s * 1000:.0f} ms"
        elif e.confirmed:
            how = "read back from the record"
        elif e.settled:
            how = "overwritten by a later edit, which synced"
        else:
            continue
        say(f"  synced: {e.label} ({how})")
    _say_missing(missing, say)
    problems = [f"{len(missing)} of {len(user.expectations)} edits not seen synced"] if missing else []
    conflict = next((e for e in user.expectations if e.label.startswith("conflict")), None)
    if conflict is not None and conflict.object_id is not None:
        hs_id = next(p.hubspot for p in user.pairs.contacts if p.dataverse == conflict.object_id)
        hs_value, dv_value = await user.agree(hs_id, conflict.object_id, "jobtitle", "jobtitle")
        say(f"  conflict end state: HubSpot jobtitle {hs_value!r}, Dataverse jobtitle {dv_value!r}")
        if hs_value != dv_value or hs_value != conflict.value:
            problems.append(f"the conflict ended with HubSpot {hs_value!r}, Dataverse {dv_value!r}")
    if problems:
        return "demo: " + "; ".join(problems)
    say(f"demo: all {len(user.expectations)} edits synced")
    return None
