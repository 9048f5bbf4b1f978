"""The README's first command: `cdc demo --once` runs the whole product (local Kafka, sandbox CRMs,
provisioning, ingest + poll + sync) on a seeded backfill, syncs one scripted edit of each kind in both
directions, prints the metrics URLs and a numbered shutdown, and exits 0 only when every edit was seen."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from cdc.demo_seed import plan_seed
from cdc.demo_user import Expectation
from cdc.demo_view import percentile
from streams.audit import AuditAction, AuditRecord, FieldWrite
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
