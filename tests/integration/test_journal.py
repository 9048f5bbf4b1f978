"""The Webhooks Journal as HubSpot's change feed (issue 16), against the sandbox over HTTP and a real broker:
every webhook lost and an edit still reaches Dataverse with no search call; a crash between produce and
commit publishes nothing twice; an expired offset runs one reconciliation and loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from cdc.hubspot.journal import BACKFILLED, JOURNAL_UNIT, JournalOffError, JournalSource, journal_tokens
from cdc.hubspot.journal_subscriptions import wanted_journal_subscriptions
from cdc.hubspot.reconciler import HubSpotObjects
from cdc.metrics import Metrics
from cdc.provisioning.needs import needs_of
from cdc.roles.poll import run_poll
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import PollSettings, Settings
from cdc.tools.bench.stats import percentile
from streams.admin import ensure_topics, open_admin
from streams.checkpoint_store import TransactionalChangeWriter, read_checkpoints
from streams.config import KafkaSettings
from streams.events import ChangeEvent, Operation, Origin
from streams.topics import TopicCatalog, TopicRole
from tests.integration.sync_stack import eventually, quiet, running_stack, small_config
from tests.integration.test_deletes_merges_associations import dv_rows
from tests.kafka_reading import read_changes, read_topic
from tests.sync_configs import CONTACT_STEPS, enabled_only

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CONFIG = enabled_only(*CONTACT_STEPS)


def searches(calls: dict[str, Any]) -> int:
    return sum(int(n) for endpoint, n in calls["by_endpoint"].items() if endpoint.endswith("/search"))


async def backfilled(kafka: KafkaSettings) -> None:
    """Until the journal source's first start has read the existing records by search (its one search pass,
    before any journal offset: `JournalSource._backfill`)."""

    async def marked() -> bool:
        return any(c.cursor == BACKFILLED for c in (await read_checkpoints(kafka)).values())

    await eventually(marked, within=60, what="the journal's first-start backfill")


async def test_every_webhook_dropped_an_edit_still_reaches_dataverse_through_the_journal_with_no_search(
    kafka_settings: KafkaSettings,
) -> None:
    """`cdc provision` subscribes the journal (an OAuth project app: change sources default to both), so
    `cdc poll` reads it instead of paging search: with every webhook dropped, a new contact and then an
    edit still reach Dataverse, and HubSpot's search API is never called (issue 16: goal 0 per hour)."""
    async with running_stack(kafka_settings, small_config(), reconcile=True, provision=True) as stack:
        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 1.0})).status_code == 200
        await backfilled(kafka_settings)  # a first start's one search pass; none after it
        await stack.hs.delete("/_admin/calls")
        contact = await stack.hs_create("contacts", {"email": "journal@example.com", "firstname": "Jo"})
        await eventually(partial(dv_rows, stack, "journal@example.com"), within=60, what="the new contact")
        await stack.hs_update("contacts", contact, {"firstname": "Joanna"})

        async def edited() -> bool:
            return [r.get("firstname") for r in await dv_rows(stack, "journal@example.com")] == ["Joanna"]

        await eventually(edited, within=60, what="the edit in Dataverse")
        await quiet(stack)
        calls = (await stack.hs.get("/_admin/calls")).json()
        assert searches(calls) == 0, calls["by_endpoint"]
        published = stack.metrics.journal_events.labels(outcome="published")._value.get()
        assert published >= 2


async def test_every_webhook_dropped_a_privacy_deletion_still_tombstones_the_link_through_the_journal(
    kafka_settings: KafkaSettings,
) -> None:
    """A linked contact privacy-deleted in HubSpot while every webhook is dropped: with the journal on, the
    periodic search and the archived-records sweep do not run, and the record is gone for good, so only the
    journal's GDPR_DELETE (the subscription `cdc provision` makes) tells the sync. The link is tombstoned as
    for ``contact.privacyDeletion`` (`consumers.merges`): an ``unlink`` audit, reason ``privacy_deletion``,
    with no values; the Dataverse row stays (a privacy deletion is not propagated)."""
    async with running_stack(kafka_settings, small_config(), reconcile=True, provision=True) as stack:
        contact = await stack.hs_create("contacts", {"email": "forget-me@example.com", "firstname": "Fo"})
        await eventually(partial(dv_rows, stack, "forget-me@example.com"), within=60, what="the contact")
        await quiet(stack)
        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 1.0})).status_code == 200
        gone = await stack.hs.post("/_admin/objects/contacts/gdpr-delete", json={"objectId": contact})
        assert gone.status_code == 204, gone.text

        async def unlinked() -> list[dict[str, Any]]:
            audit = await read_topic(kafka_settings, TopicRole.AUDIT)
            return [a for a in audit if a["action"] == "unlink" and a.get("reason") == "privacy_deletion"]

        (unlink,) = await eventually(unlinked, within=60, what="the privacy deletion's unlink audit")
        assert unlink["link_id"] is not None  # the link of that contact, tombstoned
        assert unlink["redacted"] is True
        await quiet(stack)
        assert [r["firstname"] for r in await dv_rows(stack, "forget-me@example.com")] == ["Fo"]


@pytest.fixture
async def box(kafka_settings: KafkaSettings) -> AsyncIterator[Sandbox]:
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    async with run_sandbox(seed=11) as sandbox:
        sandbox.hubspot.faults.update({"webhook_drop_rate": 1.0})
        for body in wanted_journal_subscriptions(
            needs_of(CONFIG).subscriptions, sandbox.info.hubspot.portal_id
        ):
            sandbox.hubspot.journal.upsert(body)
        yield sandbox


def settings_for(kafka: KafkaSettings, box: Sandbox) -> Settings:
    poll = PollSettings(hubspot_objects=("contacts",), hubspot_journal_interval_s=0.2, hubspot_lookback_s=30)
    return box.daemon_settings(kafka, poll=poll)


async def run_journal(
    settings: Settings,
    metrics: Metrics,
    stop: asyncio.Event,
    *,
    recheck_s: float | None = None,
    unfetchable_after: int | None = None,
) -> None:
    """`cdc poll`'s journal unit, alone: the source, its catch-up reconciler, until ``stop``."""
    tokens = journal_tokens(settings, metrics)
    assert not isinstance(tokens, str), tokens
    objects = HubSpotObjects(settings, metrics, config=CONFIG)
    async with objects, JournalSource(settings, metrics, tokens=tokens, objects=objects) as source:
        await source.check()
        source.recheck_s = recheck_s or source.recheck_s
        source.unfetchable.after = unfetchable_after or source.unfetchable.after
        await source.run(stop)


async def hs(box: Sandbox, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=box.info.hubspot.base_url) as api:
        answer = await api.request(method, path, json=body)
        assert answer.status_code < 300, answer.text
        return dict(answer.json()) if answer.content else {}


def journaled(events: list[ChangeEvent]) -> list[str]:
    return [e.source_event_id or "" for e in events if e.origin is Origin.JOURNAL]


async def test_a_crash_between_produce_and_commit_publishes_nothing_twice(
    kafka_settings: KafkaSettings, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch is produced but its transaction never commits (the process dies there); the next
    owner fences it, re-reads the batch from the stored offset and publishes it once: a read_committed
    reader (the sync) sees every journal event exactly once."""
    for n in range(3):
        await hs(box, "POST", "/_admin/objects/contacts", {"properties": {"email": f"crash{n}@example.com"}})
    settings = settings_for(kafka_settings, box)
    real_commit = TransactionalChangeWriter.commit

    class CrashedError(Exception):
        pass

    async def produce_then_die(self: TransactionalChangeWriter, events: Any, checkpoint: Any) -> None:
        if checkpoint.object_type != JOURNAL_UNIT or checkpoint.cursor == BACKFILLED:
            await real_commit(self, events, checkpoint)  # the first start's search backfill commits
            return
        producer = self._producer
        await producer.begin_transaction()
        for event in events:
            await producer.send(self._catalog.changes_topic(event.source), b"{}", key=event.key.encode())
        await producer.flush()
        raise CrashedError

    monkeypatch.setattr(TransactionalChangeWriter, "commit", produce_then_die)
    with pytest.raises(CrashedError):
        await run_journal(settings, Metrics(CollectorRegistry()), asyncio.Event())
    monkeypatch.setattr(TransactionalChangeWriter, "commit", real_commit)

    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(run_journal(settings, Metrics(CollectorRegistry()), stop))

        async def all_three() -> list[ChangeEvent]:
            events = [e for e in await read_changes(kafka_settings) if e.origin is Origin.JOURNAL]
            creates = {e.object_id for e in events if e.operation is Operation.CREATE}
            return events if len(creates) == 3 else []

        events = await eventually(all_three, within=60, what="the three creates")
        stop.set()
    ids = journaled(events)
    assert len(ids) == len(set(ids)) > 3  # creates and their values, each once


async def test_an_expired_offset_runs_one_reconciliation_and_nothing_is_lost(
    kafka_settings: KafkaSettings, box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Down for 4 days (sandbox clock): the stored offset is past the 3 days HubSpot keeps, so the source
    says so once, counts it, searches from its checkpoint's time (finding the edit made while it was down,
    whose entry expired), then reads on from the earliest entry (finding the edit made since)."""
    settings = settings_for(kafka_settings, box)
    before = await hs(
        box, "POST", "/_admin/objects/contacts", {"properties": {"email": "before@example.com"}}
    )
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(run_journal(settings, Metrics(CollectorRegistry()), stop))

        async def first() -> list[ChangeEvent]:
            events = await read_changes(kafka_settings)  # the first start's backfill finds it too
            return [e for e in events if e.object_id == before["id"] and e.origin is Origin.JOURNAL]

        await eventually(first, within=60, what="the first contact through the journal")
        stop.set()

    down = await hs(box, "POST", "/_admin/objects/contacts", {"properties": {"email": "down@example.com"}})
    box.hubspot.clock.advance(4 * 24 * 3600)
    since = await hs(box, "POST", "/_admin/objects/contacts", {"properties": {"email": "since@example.com"}})
    metrics = Metrics(CollectorRegistry())
    box.hubspot.calls.reset()
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="cdc.hubspot.journal"):
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(run_journal(settings, metrics, stop))

            async def both() -> list[ChangeEvent]:
                events = await read_changes(kafka_settings)
                found = {(e.object_id, e.origin) for e in events}
                wanted = {(down["id"], Origin.RECONCILER), (since["id"], Origin.JOURNAL)}
                return events if wanted <= found else []

            await eventually(both, within=60, what="the contact made while down, and the one made since")
            await asyncio.sleep(1.0)  # a few more reads: the fallback must not run again
            stop.set()
    assert metrics.journal_expired._value.get() == 1
    expired = [r for r in caplog.records if "expired" in r.getMessage()]
    assert len(expired) == 1
    calls = box.hubspot.calls.snapshot()
    expired_count = metrics.journal_expired._value.get()
    print(
        f"\njournal figures: 4-day outage: fallback ran {expired_count:.0f} time(s); search calls "
        f"{searches(calls)}; HubSpot calls {calls['by_endpoint']}"
    )


async def test_an_entry_whose_file_never_downloads_is_given_up_and_its_change_still_arrives(
    kafka_settings: KafkaSettings, box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry file that answers 500 at every fetch (fresh URLs each read) no longer stops the journal for
    good: after `unfetchable_after` reads the source gives the entry up, runs the search reconciliation from
    before it (the contact behind it is published by search), and reads on (the next contact arrives
    through the journal). Before, the source read the same batch again for ever."""
    settings = settings_for(kafka_settings, box)
    metrics = Metrics(CollectorRegistry())
    given_up = metrics.journal_events.labels(outcome="unfetchable")
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="cdc.hubspot.journal"):
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(run_journal(settings, metrics, stop, unfetchable_after=3))
            await backfilled(kafka_settings)
            broken = await hs(
                box, "POST", "/_admin/objects/contacts", {"properties": {"email": "broken@example.com"}}
            )
            box.hubspot.journal.unfetchable.add(int(broken["id"]))

            async def gave_up() -> bool:
                return bool(given_up._value.get() >= 1)

            await eventually(gave_up, within=60, what="the broken entry given up")
            after = await hs(
                box, "POST", "/_admin/objects/contacts", {"properties": {"email": "after@example.com"}}
            )

            async def both() -> list[ChangeEvent]:
                events = await read_changes(kafka_settings)
                found = {(e.object_id, e.origin) for e in events}
                wanted = {(broken["id"], Origin.RECONCILER), (after["id"], Origin.JOURNAL)}
                return events if wanted <= found else []

            await eventually(
                both, within=60, what="the broken entry's contact by search, the next by journal"
            )
            stop.set()
    assert given_up._value.get() == 1
    assert "could not be fetched in 3 reads" in caplog.text
    assert "journal file answered 500" in caplog.text  # the last failure, as the storage answered it


async def test_with_webhooks_and_the_journal_each_edit_is_written_once_and_search_is_never_called(
    kafka_settings: KafkaSettings,
) -> None:
    """Both sources on (the default for an OAuth project app), every webhook delivered: each edit arrives
    twice (webhook and journal entry) and is written to Dataverse once; HubSpot's search is never called.
    The figures of the run (publish latency per path at a 1 s journal poll, search calls, HubSpot calls by
    endpoint) are logged for the README's measurements."""
    edits = 60
    async with running_stack(kafka_settings, small_config(), reconcile=True, provision=True) as stack:
        ids = [
            await stack.hs_create("contacts", {"email": f"m{n}@example.com", "firstname": "A"})
            for n in range(10)
        ]

        async def synced() -> bool:
            return len([r for r in await stack.dv_all("contact") if r.get("firstname") == "A"]) == len(ids)

        await eventually(synced, within=90, what="the contacts in Dataverse")
        await quiet(stack)
        await stack.hs.delete("/_admin/calls")
        await stack.dv.delete("/_admin/calls")
        writes = stack.sync_writes()
        duplicates = stack.metrics.sync_duplicates._value.get()
        started = asyncio.get_running_loop().time()
        for n in range(edits):
            await stack.hs_update("contacts", ids[n % len(ids)], {"firstname": f"E{n}"})
            await asyncio.sleep(0.1)

        async def last_edits() -> bool:
            names = {r.get("firstname") for r in await stack.dv_all("contact")}
            return {f"E{n}" for n in range(edits - len(ids), edits)} <= names

        await eventually(last_edits, within=90, what="the last edits in Dataverse")
        await quiet(stack)
        elapsed = asyncio.get_running_loop().time() - started
        calls = (await stack.hs.get("/_admin/calls")).json()
        events = [e for e in await read_changes(kafka_settings) if "firstname" in e.changed_properties]
        latency: dict[str, list[float]] = {}
        for event in events:
            if str(event.changed_properties["firstname"]).startswith("E"):
                delay = (event.received_at - event.occurred_at).total_seconds() * 1000
                latency.setdefault(event.origin.value, []).append(delay)
        figures = {
            origin: {"n": len(v), "p50_ms": round(percentile(v, 50)), "p99_ms": round(percentile(v, 99))}
            for origin, v in latency.items()
        }
        logging.getLogger(__name__).warning(
            "journal figures: %s edits in %.1fs; publish latency %s; sync writes %d; search calls %d; "
            "HubSpot calls %s",
            edits, elapsed, figures, stack.sync_writes() - writes, searches(calls), calls["by_endpoint"],
        )  # fmt: skip
        assert searches(calls) == 0
        assert set(figures) == {"webhook", "journal"}
        assert figures["journal"]["n"] == figures["webhook"]["n"] == edits
        assert stack.sync_writes() - writes <= edits  # each edit once, though it arrived twice
        by_origin = {
            origin: {
                e.identity
                for e in events
                if e.origin is origin and str(e.changed_properties["firstname"])[0] == "E"
            }
            for origin in (Origin.WEBHOOK, Origin.JOURNAL)
        }
        assert by_origin[Origin.WEBHOOK] == by_origin[Origin.JOURNAL]
        # Each edit's second arrival is dropped by the router, before any read of the record.
        assert stack.metrics.sync_duplicates._value.get() - duplicates >= edits


async def test_change_to_write_latency_through_the_journal_alone_next_to_the_webhook_path(
    kafka_settings: KafkaSettings,
) -> None:
    """One run, both sources on: edits one at a time, each timed from the HubSpot edit until Dataverse holds
    it (read every 0.1 s), first with webhooks delivered, then with every webhook dropped, so the journal
    alone (read every 1 s) carries them. Every edit arrives; the figures are printed for the README."""
    rounds = 25
    async with running_stack(kafka_settings, small_config(), reconcile=True, provision=True) as stack:
        contact = await stack.hs_create("contacts", {"email": "lat@example.com", "firstname": "L"})
        await eventually(partial(dv_rows, stack, "lat@example.com"), within=90, what="the contact")
        await quiet(stack)
        loop = asyncio.get_running_loop()
        figures: dict[str, dict[str, float]] = {}
        for path, drop in (("webhook", 0.0), ("journal", 1.0)):
            assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": drop})).status_code == 200
            delays = []
            for n in range(rounds):
                value = f"{path}{n}"
                started = loop.time()
                await stack.hs_update("contacts", contact, {"firstname": value})

                async def landed(value: str = value) -> bool:
                    return [r.get("firstname") for r in await dv_rows(stack, "lat@example.com")] == [value]

                await eventually(landed, within=30, what=f"{value} in Dataverse")
                delays.append((loop.time() - started) * 1000)
            figures[path] = {"p50_ms": round(percentile(delays, 50)), "p99_ms": round(percentile(delays, 99))}
        print(f"\njournal figures: change -> Dataverse write, {rounds} edits each: {figures}")
        assert figures["journal"]["p99_ms"] < 10_000


@pytest.mark.parametrize("subscribed", [False, True], ids=["unsubscribed", "subscribed"])
async def test_cdc_poll_says_at_start_up_whether_the_journal_is_on_and_why_not(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture, subscribed: bool
) -> None:
    """An OAuth project app takes both sources by default; without journal subscriptions the journal would be
    silent, so `cdc poll` says why it is off and pages search instead (issue 16 item 4)."""
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka_settings))
    async with run_sandbox(seed=13) as sandbox:
        if subscribed:
            for body in wanted_journal_subscriptions(
                needs_of(CONFIG).subscriptions, sandbox.info.hubspot.portal_id
            ):
                sandbox.hubspot.journal.upsert(body)
        settings = settings_for(kafka_settings, sandbox)
        settings = settings.model_copy(
            update={"dataverse": settings.dataverse.model_copy(update={"base_url": None})}
        )
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        with caplog.at_level(logging.INFO, logger="cdc.poll"):
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    run_poll(
                        settings,
                        stop,
                        metrics=Metrics(CollectorRegistry()),
                        on_ready=ready.set_result,
                        config=CONFIG,
                    )
                )
                await asyncio.wait_for(ready, 60)
                stop.set()
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "cdc.poll")
    if subscribed:
        assert "hubspot changes from the Webhooks Journal (hubspot.change_sources both)" in said
        assert "hubspot/62515/journal" in said
    else:
        assert (
            "the hubspot Webhooks Journal is off: no journal subscription of portal 62515 for contacts"
            in said
        )
        assert "hubspot/62515/contacts" in said


async def test_a_subscription_deleted_while_reading_ends_the_source_saying_why(
    kafka_settings: KafkaSettings, box: Sandbox
) -> None:
    """The journal would go silent about a type whose subscription someone deleted in HubSpot, with the
    search reconciler off: the source checks again (every 10 minutes; here 0.3 s) and ends with the reason,
    so `cdc poll` exits and, restarted, runs search for it."""
    settings = settings_for(kafka_settings, box)
    task = asyncio.create_task(
        run_journal(settings, Metrics(CollectorRegistry()), asyncio.Event(), recheck_s=0.3)
    )
    await asyncio.sleep(1.0)
    assert not task.done()
    journal = box.hubspot.journal
    for sub in [s for s in journal.subscriptions.values() if s.subscription_type == "OBJECT"]:
        journal.delete(str(sub.id))
    with pytest.raises(JournalOffError, match="no journal subscription of portal 62515 for contacts"):
        await asyncio.wait_for(task, 30)


async def test_no_gdpr_subscription_is_logged_once_and_the_journal_still_runs(
    kafka_settings: KafkaSettings, box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Subscriptions made before `cdc provision` knew GDPR_PRIVACY_DELETION: the journal reads on, and says
    once that contacts' privacy deletions reach the sync only by webhook (lost with them)."""
    journal = box.hubspot.journal
    for sub in [s for s in journal.subscriptions.values() if s.subscription_type == "GDPR_PRIVACY_DELETION"]:
        journal.delete(str(sub.id))
    settings = settings_for(kafka_settings, box)
    with caplog.at_level(logging.WARNING, logger="cdc.hubspot.journal"):
        task = asyncio.create_task(
            run_journal(settings, Metrics(CollectorRegistry()), asyncio.Event(), recheck_s=0.2)
        )
        await asyncio.sleep(1.5)  # several checks
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    said = [r.getMessage() for r in caplog.records if "GDPR_PRIVACY_DELETION" in r.getMessage()]
    assert said == [
        "no GDPR_PRIVACY_DELETION journal subscription of portal 62515 for contacts: a privacy deletion "
        "reaches the sync only by webhook, and is lost with it (`cdc provision` creates it)"
    ]
