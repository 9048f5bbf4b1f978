"""The links a batch stages: a link replaces the current one only at a higher revision (issue 13: a copy
taken before a merge moved the link was written back at the merge's own revision, and the compacted topic
kept it, undoing the merge)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.applier import StagedLinks, StaleLinkError
from streams.keys import RecordRef, SourceSystem
from streams.links import Link, LinkIndex, LinkSide

AT = datetime(2026, 12, 6, tzinfo=UTC)


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
