"""The admin page's pure parts: password hashes, the login limit, a record's story, the budget chart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cdc.admin.charts import usage_chart
from cdc.admin.kafka_source import CHART_BUCKET_S, budget_series, letter_record, story_of
from cdc.admin.passwords import hash_password, verify_password
from cdc.admin.security import LoginLimiter
from cdc.ops.explain import Explanation, RecordQuery
from streams.audit import AuditAction, AuditRecord
from streams.budget import BudgetReport
from streams.codec import Position
from streams.events import CHANGE_CODEC, ChangeEvent, Operation, Origin
from streams.keys import RecordRef, SourceSystem
from tests.unit.admin_fakes import AT, DV, EXCLUSION, HS, LETTER, LINK, WRITE


def test_a_hash_verifies_its_password_only() -> None:
    hashed = hash_password("s3cret-enough-pass")
    assert hashed.startswith("scrypt$32768$8$1$")
    assert verify_password("s3cret-enough-pass", hashed)
    assert not verify_password("s3cret-enough-pasS", hashed)
    assert hash_password("s3cret-enough-pass") != hashed, "a fresh salt each time"


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "scrypt$1$8$1$AAAA$AAAA",
        "scrypt$32768$8$1$!!$AAAA",
        "bcrypt$x",
        "scrypt$3$8$1$AAAA$" + "A" * 43 + "=",  # N not a power of two
        "scrypt$1073741824$8$1$AAAA$" + "A" * 43 + "=",  # a cost that makes each login a DoS
    ],
)
def test_a_malformed_or_too_costly_hash_never_matches_nor_raises(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_an_empty_password_is_not_hashed() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_the_login_limit_counts_failures_per_address_within_the_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(2, 60.0, clock=lambda: now[0])
    limiter.failed("a")
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(60.0)
    assert limiter.retry_after("b") == 0
    now[0] = 30.0
    assert limiter.retry_after("a") == pytest.approx(30.0)
    now[0] = 60.5
    assert limiter.retry_after("a") == 0
    limiter.failed("b")
    limiter.succeeded("b")
    limiter.failed("b")
    assert limiter.retry_after("b") == 0


@pytest.mark.parametrize("query", ["501", DV.object_id, "ADA@example.com ", "ada@example.com"])
def test_a_story_is_found_by_either_id_or_a_written_email(query: str) -> None:
    story = story_of(query, [LINK], [WRITE])
    assert story.records == sorted([HS, DV], key=lambda r: r.key)
    assert story.links == [LINK]
    assert story.audit == [WRITE]


def test_a_story_holds_every_audit_record_of_either_side_oldest_first() -> None:
    later = WRITE.model_copy(update={"at": AT + timedelta(minutes=1), "fields": ()})
    by_person = AuditRecord(
        step="admin", action=AuditAction.RESYNC, source=DV, actor="ada", at=AT - timedelta(1)
    )
    other = RecordRef(system=SourceSystem.HUBSPOT, tenant="123", object_type="contact", object_id="777")
    unrelated = WRITE.model_copy(update={"source": other, "target": None, "fields": ()})
    story = story_of("501", [LINK], [later, unrelated, WRITE, by_person])
    assert story.audit == [by_person, WRITE, later]


def test_no_story_for_an_unknown_record() -> None:
    assert story_of("nobody@example.com", [LINK], [WRITE]).records == []
    assert story_of("50", [LINK], [WRITE]).records == [], "an id matches whole, not in part"


@pytest.mark.parametrize("query", ["502", "DUP@example.com "])
def test_an_excluded_record_never_synced_has_a_story_with_its_exclusion(query: str) -> None:
    """No link and no write name it: its exclusion does (its id, or the value that stopped it)."""
    story = story_of(query, [LINK], [WRITE], [EXCLUSION])
    assert story.records == [EXCLUSION.record]
    assert story.exclusions == [EXCLUSION]
    assert story.links == []
    assert story.audit == []


def test_a_linked_record_story_shows_its_exclusion_and_no_other() -> None:
    skipped = EXCLUSION.model_copy(update={"record": HS, "values": {"hs_owner": "9"}})
    story = story_of(DV.object_id, [LINK], [WRITE], [skipped, EXCLUSION])
    assert story.exclusions == [skipped]


def test_a_dead_letter_names_its_record_when_its_value_is_a_change() -> None:
    assert letter_record(LETTER) is None  # "{}": neither a work item nor a change
    event = ChangeEvent(
        source=SourceSystem.HUBSPOT, tenant="123", object_type="contact", object_id="501",
        operation=Operation.UPSERT, origin=Origin.WEBHOOK, occurred_at=AT, received_at=AT,
    )  # fmt: skip
    letter = LETTER.letter.model_copy(update={"value": CHANGE_CODEC.encode(event).decode()})
    assert letter_record(LETTER.__class__(0, 8, letter)) == HS


def test_the_budget_series_sums_each_process_last_report_per_bucket() -> None:
    start = 1_800_000_000.0 - 1_800_000_000.0 % CHART_BUCKET_S
    reports = [
        BudgetReport(process="a", role="sync", at=start + 1, systems={"hubspot": {"daily": (10.0, 0.0)}}),
        BudgetReport(process="a", role="sync", at=start + 5, systems={"hubspot": {"daily": (12.0, 0.0)}}),
        BudgetReport(process="b", role="poll", at=start + 3, systems={"hubspot": {"daily": (5.0, 0.0)}}),
        BudgetReport(
            process="b", role="poll", at=start + CHART_BUCKET_S, systems={"hubspot": {"daily": (6.0, 0.0)}}
        ),
        BudgetReport(
            process="c", role="poll", at=start + 2, systems={"dataverse": {"requests": (99.0, 0.0)}}
        ),
    ]
    assert budget_series(reports, "hubspot", "daily") == [
        (start + CHART_BUCKET_S, 17.0),
        (start + 2 * CHART_BUCKET_S, 6.0),
    ]


def test_the_chart_is_inline_svg_with_the_limit_and_escaped_text() -> None:
    now = 1_800_000_000.0
    svg = usage_chart([(now - 7200, 100.0), (now, 400.0)], limit=1000.0, now=now, title="<b>calls</b>")
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "&lt;b&gt;calls&lt;/b&gt;" in svg
    assert "<b>" not in svg
    assert "limit 1k" in svg
    assert "<polyline" in svg
    assert "<script" not in svg
    empty = usage_chart([], limit=10.0, now=now, title="t")
    assert "no reports in the last 24 h" in empty


def test_explain_names_the_person_who_asked() -> None:
    """`cdc explain` shows the admin page's actions with their user, as the page's story does."""
    by_person = AuditRecord(step="admin", action=AuditAction.RESYNC, source=HS, actor="ada", at=AT)
    found = Explanation(
        RecordQuery(SourceSystem.HUBSPOT, "contact", "501"), audit=[(Position("t", 0, 1), by_person)]
    )
    assert any("admin resync: hubspot/123/contact/501 (by ada)" in line for line in found.lines())
