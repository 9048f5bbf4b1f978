"""The README's first command: `cdc demo --once` runs the whole product (local Kafka, sandbox CRMs,
provisioning, ingest + poll + sync) on a seeded backfill, syncs one scripted edit of each kind in both
directions, prints the metrics URLs and a numbered shutdown, and exits 0 only when every edit was seen."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from cdc.provisioning.run import provision_sandbox
from cdc.sandbox.runner import run_sandbox
from cdc.tools.demo.seed import plan_seed
from cdc.tools.demo.user import DemoUser, Expectation
from cdc.tools.demo.user import Pair as DemoPair
from cdc.tools.demo.view import LiveView, Written, percentile
from consumers.loader import load_config
from streams.audit import AuditAction, AuditRecord, FieldWrite
from streams.config import KafkaSettings
from streams.keys import RecordRef, SourceSystem

ONCE_BUDGET_S = 90


@pytest.mark.kafka
@pytest.mark.slow
def test_demo_once_syncs_both_ways_prints_the_metrics_urls_and_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    with subprocess.Popen(
        [sys.executable, "-m", "cdc", "demo", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            out, err = process.communicate(timeout=ONCE_BUDGET_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # the numbered shutdown stops Kafka too
            out, err = process.communicate(timeout=60)
            pytest.fail(f"`cdc demo --once` ran over {ONCE_BUDGET_S} s:\n{out}\n{err}")
    assert process.returncode == 0, f"{out}\n{err}"
    url = r"http://127\.0\.0\.1:\d+/metrics"
    assert re.search(rf"^metrics: ingest {url}  poll {url}  sync {url}$", out, re.MULTILINE), out
    # Issue 18: the admin page runs too, with a user made for the run.
    admin = r"^admin page: http://127\.0\.0\.1:\d+  user admin, password [\w-]{16} \(made for this run\)$"
    assert re.search(admin, out, re.MULTILINE), out
    assert re.search(r"^backfill done in [\d.]+ s: \d+ writes", out, re.MULTILINE), out
    assert "WARNING duplicates" not in out
    # Both directions, each write with its latency; the conflict resolved by the default rule.
    hubspot_to_dataverse = r"^sync  HubSpot contact \d+ firstname '\w+' -> Dataverse contact \w+\.\. "
    assert re.search(hubspot_to_dataverse + r"\(step s2_contacts_to_contacts\) \d+ ms", out, re.MULTILINE), (
        out
    )
    dataverse_to_hubspot = r"^sync  Dataverse contact \w+\.\. address1_city '\w+' -> HubSpot contact \d+ "
    assert re.search(
        dataverse_to_hubspot + r"\(step s4_contacts_to_hubspot_contacts\) \d+ ms", out, re.MULTILINE
    )
    assert re.search(r"-> HubSpot deal \d+ \(step s5_opportunities_to_deals\) \d+ ms", out), out
    assert "[conflict: step_order rule]" in out
    assert "demo: all 7 edits synced" in out
    assert re.findall(r"^shutdown (\d)/5", out, re.MULTILINE) == ["2", "3", "4", "5"]
    assert re.search(r"HubSpot -> Dataverse: \d+ writes, p50 \d+ ms", out), out
    # Issue 15: a project app with OAuth whose access tokens end during the run; each role renews its own
    # before it ends, one log line per renewal, and no HubSpot call is refused meanwhile (no gap).
    assert "HubSpot app: a project app with OAuth" in out
    # Per process: `cdc poll`'s journal token (role poll-journal, client credentials) counts as poll's.
    roles = re.findall(r"HubSpot access token renewed before it ended .* role=([\w-]+)$", err, re.MULTILINE)
    renewals = [role.split("-")[0] for role in roles]
    assert "sync" in renewals, err
    counted = re.search(
        r"^demo: HubSpot access tokens renewed: (.*); HubSpot calls refused \(401\): 0$", out, re.MULTILINE
    )
    assert counted is not None, out
    assert counted.group(1) == ", ".join(f"{role} {renewals.count(role)}x" for role in ("poll", "sync")), err


def test_the_seed_plan_overlaps_30_percent_and_counts_the_pairs_it_expects() -> None:
    plan = plan_seed(150, 300, 100, 100, 80)
    assert plan.expected_links == {"company": 220, "contact": 370, "deal": 80}
    hubspot_emails = {c["email"].lower() for c in plan.hubspot["contacts"]}
    shared = [r for r in plan.contacts if r["emailaddress1"].lower() in hubspot_emails]
    assert len(shared) == 30
    assert all(r["cdc_synctohubspot"] is True for r in (*plan.accounts, *plan.contacts))
    assert all(c["sync_to_d365"] == "true" for c in plan.hubspot["contacts"])


def _audit(target_id: str, **fields: str) -> AuditRecord:
    def ref(system: SourceSystem, object_id: str) -> RecordRef:
        return RecordRef(system=system, tenant="t", object_type="contact", object_id=object_id)

    return AuditRecord(
        step="s2_contacts_to_contacts",
        action=AuditAction.UPDATE,
        source=ref(SourceSystem.HUBSPOT, "1"),
        target=ref(SourceSystem.DATAVERSE, target_id),
        fields=tuple(FieldWrite(field=k, new=v, rule="changed_on_source") for k, v in fields.items()),
        at=datetime.now(UTC),
    )


def test_an_expectation_is_met_by_a_write_of_its_value_to_its_record_only() -> None:
    expected = Expectation("rename", SourceSystem.DATAVERSE, "contact", "d1", "firstname", "Ada")
    assert expected.matches(_audit("d1", firstname="Ada", lastname="King"))
    assert not expected.matches(_audit("d2", firstname="Ada"))
    assert not expected.matches(_audit("d1", firstname="Grace"))
    created = Expectation(
        "new", SourceSystem.DATAVERSE, "contact", None, "lastname", "N1", key=("emailaddress1", "a@x.org")
    )
    assert created.matches(_audit("d9", emailaddress1="A@x.org", lastname="N1"))
    assert not created.matches(_audit("d9", emailaddress1="b@x.org", lastname="N1"))


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


# --- what counts as synced: the other CRM holds the edited values ---------------------------------------


@dataclass
class Crms:
    """The sandbox CRMs in-process, provisioned for the defaults, and a demo user editing them."""

    hs: httpx.AsyncClient
    dv: httpx.AsyncClient
    user: DemoUser

    async def create_deal_pair(self) -> tuple[str, str]:
        opportunity = (
            await self.dv.post(
                "/_admin/tables/opportunity/rows",
                json={"name": "Won twice", "statuscode": 1, "cdc_synctohubspot": True},
            )
        ).json()["value"][0]["opportunityid"]
        deal = (
            await self.hs.post(
                "/_admin/objects/deals",
                json={
                    "properties": {
                        "dealname": "Won twice",
                        "dealstage": "appointmentscheduled",
                        "d365_status_reason": "1",
                    }
                },
            )
        ).json()["id"]
        self.user.pairs.deals = [DemoPair(str(deal), str(opportunity), True, True)]
        return str(deal), str(opportunity)

    async def engine_writes(
        self, system: SourceSystem, object_type: str, object_id: str, **wanted: str
    ) -> None:
        """What the sync engine does: write to the record the values it does not hold yet (none: no write),
        and audit the write, which the live view then reads."""
        if system is SourceSystem.HUBSPOT:
            path = f"/_admin/objects/{object_type}s/{object_id}"
            held = (await self.hs.get(path)).json()["properties"]
        else:
            path = f"/_admin/tables/{object_type}/rows/{object_id}"
            held = (await self.dv.get(path)).json()
        changes = {k: v for k, v in wanted.items() if held.get(k) != v}
        if not changes:
            return
        if system is SourceSystem.HUBSPOT:
            (await self.hs.patch(path, json={"properties": changes})).raise_for_status()
        else:
            (await self.dv.patch(path, json=changes)).raise_for_status()
        source = RecordRef(system=system.other, tenant="t", object_type="source", object_id="s1")
        target = RecordRef(system=system, tenant="t", object_type=object_type, object_id=object_id)
        audit = AuditRecord(
            step="s",
            action=AuditAction.UPDATE,
            source=source,
            target=target,
            fields=tuple(FieldWrite(field=k, new=v, rule="changed_on_source") for k, v in changes.items()),
            at=datetime.now(UTC),
        )
        self.user.view.writes.append(Written(audit, latency_s=0.2, live=True))


@pytest.fixture
async def crms() -> AsyncIterator[Crms]:
    async with run_sandbox(seed=7) as box:
        await provision_sandbox(box.daemon_settings(KafkaSettings()), load_config())
        hs = httpx.AsyncClient(transport=httpx.ASGITransport(app=box.hubspot.app), base_url="https://hs.test")
        dv = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=box.dataverse.app), base_url="https://dv.test"
        )
        async with hs, dv:
            yield Crms(hs, dv, DemoUser(hs, dv, LiveView(KafkaSettings(), say=lambda _: None)))


async def test_an_opportunity_won_reopened_and_won_again_counts_as_synced(crms: Crms) -> None:
    """The second win needs no deal-stage write (the deal still holds "closedwon"): the engine writes only
    the status reason, and the edit is synced all the same, as the deal holds every value it should."""
    deal, opportunity = await crms.create_deal_pair()
    user = crms.user
    stages = []
    for _ in range(5):  # On Hold, Won, In Progress (reopened), On Hold, Won again
        [expected] = await user.advance_opportunity()
        user.expect([expected])
        status = (await crms.dv.get(f"/_admin/tables/opportunity/rows/{opportunity}")).json()["statuscode"]
        stages.append(status)
        wanted = {"d365_status_reason": str(status)} | ({"dealstage": "closedwon"} if status == 3 else {})
        await crms.engine_writes(SourceSystem.HUBSPOT, "deal", deal, **wanted)
        assert user.check() == [expected], expected.label
    assert stages == [2, 3, 1, 2, 3]
    last = user.view.writes[-1]
    assert [f.field for f in last.audit.fields] == ["d365_status_reason"]  # no stage write: held already
    assert user.missing == []
    assert user.expectations[-1].met is last  # its latency is the write's
    assert user.all_met.is_set()


async def test_an_edit_overwritten_by_a_later_one_before_it_synced_is_settled_by_the_later_one(
    crms: Crms,
) -> None:
    contact = (
        await crms.hs.post(
            "/_admin/objects/contacts", json={"properties": {"email": "o@x.org", "firstname": "Ann"}}
        )
    ).json()["id"]
    row = (
        await crms.dv.post(
            "/_admin/tables/contact/rows", json={"emailaddress1": "o@x.org", "firstname": "Ann"}
        )
    ).json()["value"][0]["contactid"]
    user = crms.user
    user.pairs.contacts = [DemoPair(str(contact), str(row), True, True)]
    first = await user.rename_hubspot_contact()
    user.expect(first)
    second = await user.rename_hubspot_contact()
    user.expect(second)
    await crms.engine_writes(SourceSystem.DATAVERSE, "contact", str(row), firstname=second[0].value)
    user.check()
    assert user.missing == []
    assert first[0].superseded_by is second[0]
    assert first[0].met is None  # its value never reached Dynamics: the later edit's did


async def test_an_edit_whose_write_was_not_seen_is_confirmed_by_reading_the_record(crms: Crms) -> None:
    deal, _ = await crms.create_deal_pair()
    user = crms.user
    user.expect(await user.advance_opportunity())  # On Hold
    assert await user.confirm(older_than_s=0.0) == []
    await crms.hs.patch(f"/_admin/objects/deals/{deal}", json={"properties": {"d365_status_reason": "2"}})
    user.check()  # no audit of it seen
    assert user.missing == user.expectations
    assert await user.confirm(older_than_s=60.0) == []  # too early to read
    assert await user.confirm(older_than_s=0.0) == user.expectations
    assert user.missing == []
