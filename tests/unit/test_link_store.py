"""The link store's writer rule. The links a batch stages: a link replaces the current one only at a higher
revision (issue 13: a copy taken before a merge moved the link was written back at the merge's own
revision, and the compacted topic kept it, undoing the merge). The topic's records: an older one than the
view holds is skipped, one at the same revision replaces it (topic order wins, as compaction does)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.codec import Position
from streams.keys import RecordRef, SourceSystem
from streams.link_store import LinkIndex, StagedLinks, StaleLinkError
from streams.links import LINK_CODEC, Link, LinkSide, link_key

AT = datetime(2026, 12, 6, tzinfo=UTC)
WHERE = Position("links", 0, 0)
KEY = link_key("L").encode()


def link(hubspot_id: str, revision: int) -> Link:
    def side(system: SourceSystem, object_id: str) -> LinkSide:
        ref = RecordRef(system=system, tenant="t", object_type="contact", object_id=object_id)
        return LinkSide(**ref.model_dump())

    return Link(
        link_id="L",
        hubspot=side(SourceSystem.HUBSPOT, hubspot_id),
        dataverse=side(SourceSystem.DATAVERSE, "d"),
        revision=revision,
        created_at=AT,
        updated_at=AT,
    )


def test_a_link_at_an_equal_or_lower_revision_is_refused_whether_committed_or_staged() -> None:
    base = LinkIndex()
    base.apply("L", link("1", 3))
    staged = StagedLinks(base)
    for revision in (2, 3):
        with pytest.raises(StaleLinkError, match=f"revision {revision} would replace revision 3"):
            staged.apply("L", link("1", revision))
    staged.apply("L", link("9", 4))  # a merge moved it to the survivor
    with pytest.raises(StaleLinkError, match="revision 4 would replace revision 4"):
        staged.apply("L", link("1", 4))  # the stale copy, written back
    assert staged.get("L") == link("9", 4)


def test_a_link_made_again_after_its_tombstone_starts_over() -> None:
    base = LinkIndex()
    base.apply("L", link("1", 3))
    staged = StagedLinks(base)
    staged.apply("L", None)
    staged.apply("L", link("1", 1))
    assert staged.get("L") == link("1", 1)


def test_a_batch_s_links_read_at_once_answer_as_one_by_one_with_its_own_changes_first() -> None:
    """`StagedLinks.prefetched` (the applier groups a batch on its links read in one query) answers as
    `find` would without it: the batch's own staged changes (a merge moving the pair, a tombstone) first,
    keys it was not given from the committed view, and after the block the committed view as it is then."""
    base = LinkIndex()
    base.apply("L", link("1", 3))
    staged = StagedLinks(base)
    one, nine, absent = "hubspot/t/contact/1", "hubspot/t/contact/9", "hubspot/t/contact/5"
    with staged.prefetched([one, absent, one]):
        assert staged.find(one) == link("1", 3)
        assert staged.find(absent) is None
        assert staged.find("dataverse/t/contact/d") == link("1", 3)  # not prefetched: asked of the view
        staged.apply("L", link("9", 4))  # the pair moved to the survivor within the batch
        assert staged.find(one) is None
        assert staged.find(nine) == link("9", 4)
        staged.apply("L", None)
        assert staged.find(nine) is None
    base.apply("M", link("5", 1).model_copy(update={"link_id": "M"}))  # committed after the block
    assert staged.find(absent) == base.find(absent)
    assert staged.find(absent) is not None


def record(hubspot_id: str, revision: int) -> bytes:
    return LINK_CODEC.encode(link(hubspot_id, revision))


def test_a_topic_record_older_than_the_view_is_skipped_and_one_at_its_revision_replaces_it() -> None:
    """The view is ahead of the tail by the links this replica committed: the tail's older copy of one of
    them must not undo it. Two writers of one revision are ordered by the topic, as compaction orders them."""
    index = LinkIndex()
    index.commit([("L", link("9", 4))])  # committed by this replica, ahead of the tail
    index.apply_record(KEY, record("1", 3), WHERE)
    assert index.get("L") == link("9", 4)
    index.apply_record(KEY, record("2", 4), WHERE)  # another replica, same revision, later in the topic
    assert index.get("L") == link("2", 4)
    index.apply_record(KEY, record("3", 5), WHERE)
    assert index.get("L") == link("3", 5)
    index.apply_record(KEY, None, WHERE)  # a tombstone removes the pair at any revision
    assert index.get("L") is None
    index.apply_record(KEY, record("1", 1), WHERE)  # made again after the tombstone: starts over
    assert index.get("L") == link("1", 1)


def test_an_unreadable_topic_record_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    index = LinkIndex()
    index.apply_record(KEY, record("1", 2), WHERE)
    index.apply_record(b"not-a-link-key", record("2", 3), WHERE)
    index.apply_record(KEY, b"[1, 2]", Position("links", 0, 7))
    index.apply_record(None, record("3", 9), WHERE)
    assert index.get("L") == link("1", 2)
    assert len(index) == 1
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == [
        "skipping unreadable link at links[0]@0",
        "skipping unreadable link at links[0]@7",
    ]
    assert "not a link key" in caplog.records[0].getMessage()


revisions = st.lists(st.one_of(st.none(), st.integers(1, 6)), max_size=30)
"""A link's records in topic order: a revision, or None for a tombstone."""


@given(revisions)
def test_the_view_never_goes_back_a_revision_until_a_tombstone(records: list[int | None]) -> None:
    index = LinkIndex()
    held: int | None = None
    for n, revision in enumerate(records):
        index.apply_record(KEY, None if revision is None else record(str(n), revision), WHERE)
        now = index.revision("L")
        if revision is None:
            assert now is None
        else:
            assert now is not None
            assert now >= revision
            assert held is None or now >= held
        held = now


@given(revisions)
def test_one_writer_s_records_end_in_the_view_as_compaction_keeps_them(records: list[int | None]) -> None:
    """A single writer publishes each link at rising revisions: the view ends on the last record, as the
    compacted topic does."""
    index = LinkIndex()
    last: Link | None = None
    revision = 0
    for n, tombstone in enumerate(r is None for r in records):
        if tombstone:
            index.apply_record(KEY, None, WHERE)
            last, revision = None, 0
        else:
            revision += 1
            last = link(str(n), revision)
            index.apply_record(KEY, LINK_CODEC.encode(last), WHERE)
    assert index.get("L") == last


@given(st.lists(st.one_of(st.none(), st.integers(1, 6)), max_size=30))
def test_a_batch_stages_only_rising_revisions(attempts: list[int | None]) -> None:
    """Whatever a batch tries to stage, what it holds for a link only rises until a tombstone, and every
    refused change is named with both revisions."""
    base = LinkIndex()
    base.apply("L", link("1", 3))
    staged = StagedLinks(base)
    for n, revision in enumerate(attempts):
        current = staged.get("L")
        if revision is None:
            staged.apply("L", None)
            assert staged.get("L") is None
        elif current is not None and revision <= current.revision:
            with pytest.raises(StaleLinkError, match=f"revision {revision} would replace revision"):
                staged.apply("L", link(str(n), revision))
            assert staged.get("L") == current
        else:
            staged.apply("L", link(str(n), revision))
            assert staged.get("L") == link(str(n), revision)
