"""The link store on disk (`streams.link_db`): the same answers as the in-memory index, its offsets kept
in the transaction of the links they cover, and a file it cannot trust started over rather than read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams._link_batch import Incoming, read_record
from streams.codec import Position
from streams.keys import RecordRef, SourceSystem
from streams.link_db import LinkStore
from streams.link_store import LinkIndex, StagedLinks, StaleLinkError
from streams.link_view import TOMBSTONES_KEPT_S, _stale
from streams.links import LINK_CODEC, Link, LinkSide, link_key

AT = datetime(2026, 12, 6, tzinfo=UTC)
TOPIC = "t.links"


def link(
    link_id: str,
    hubspot_id: str,
    *,
    revision: int = 1,
    merged: tuple[str, ...] = (),
    waiting: tuple[str, ...] = (),
    dataverse_id: str | None = None,
    object_type: str = "contact",
) -> Link:
    def side(system: SourceSystem, object_id: str, merged_ids: tuple[str, ...] = ()) -> LinkSide:
        ref = RecordRef(system=system, tenant="t", object_type=object_type, object_id=object_id)
        return LinkSide(**ref.model_dump(), merged_ids=merged_ids)

    return Link(
        link_id=link_id,
        hubspot=side(SourceSystem.HUBSPOT, hubspot_id, merged),
        dataverse=side(SourceSystem.DATAVERSE, dataverse_id or f"d-{link_id}"),
        revision=revision,
        created_at=AT,
        updated_at=AT,
        waiting_for=waiting,
    )


def hubspot_key(object_id: str, object_type: str = "contact") -> str:
    return f"hubspot/t/{object_type}/{object_id}"


def record(value: Link | None, link_id: str | None = None, offset: int = 0) -> Incoming:
    key = link_key(link_id or (value.link_id if value else "?")).encode()
    found = read_record(key, None if value is None else LINK_CODEC.encode(value), Position(TOPIC, 0, offset))
    assert found is not None
    return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LinkStore]:
    opened = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    yield opened
    opened.close()


def test_a_pair_is_found_by_either_side_and_by_a_merged_away_id(store: LinkStore) -> None:
    store.apply_batch([record(link("L", "1", merged=("0",)))], {0: 1})
    found = store.find(hubspot_key("1"))
    assert found is not None
    assert found.link_id == "L"
    assert store.find(found.dataverse.ref) == found
    assert store.find(hubspot_key("0")) == found  # merged into 1
    assert store.find(hubspot_key("2")) is None
    assert store.get("L") == link("L", "1", merged=("0",))
    assert len(store) == 1
    assert store.counts() == {"contact~contact": 1}


def test_a_tombstone_removes_the_pair_and_every_key_it_answered_to(store: LinkStore) -> None:
    store.apply_batch([record(link("L", "1", merged=("0",), waiting=("hubspot/t/company/9",)))], {0: 1})
    assert store.waiting_on("hubspot/t/company/9") == {"L"}
    store.apply_batch([record(None, "L", 1)], {0: 2})
    assert store.get("L") is None
    assert store.find(hubspot_key("1")) is None
    assert store.find(hubspot_key("0")) is None
    assert store.waiting_on("hubspot/t/company/9") == set()
    assert len(store) == 0
    assert store.counts() == {}


def test_a_topic_record_older_than_the_link_committed_ahead_of_it_is_skipped(store: LinkStore) -> None:
    store.commit([("L", link("L", "9", revision=3))])
    store.apply_batch([record(link("L", "1", revision=2))], {0: 1})
    assert store.get("L") == link("L", "9", revision=3)
    store.apply_batch([record(link("L", "5", revision=3))], {0: 2})  # same revision: topic order wins
    assert store.get("L") == link("L", "5", revision=3)
    assert store.find(hubspot_key("9")) is None


@pytest.fixture(params=["disk", "memory"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LinkStore | LinkIndex]:
    """The sync role's store on disk, or the in-memory index: the writer rule holds for both."""
    if request.param == "memory":
        yield LinkIndex()
        return
    opened = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    yield opened
    opened.close()


def tail(index: LinkStore | LinkIndex, records: list[Incoming], offset: int) -> None:
    """Records of the topic as the running sync's tail applies them."""
    if isinstance(index, LinkStore):
        index.apply_batch(records, {0: offset})
        return
    for r in records:
        key, raw = link_key(r.link_id).encode(), r.raw
        index.apply_record(key, raw, Position(TOPIC, 0, offset))


def test_a_tombstone_committed_ahead_of_the_tail_is_not_undone_by_the_links_older_records(
    either: LinkStore | LinkIndex,
) -> None:
    """CI, 2026-12-07: a HubSpot contact deleted right after it synced. Its batch committed the pair's
    tombstone ahead of the tail; the tail then brought the pair's link (committed by the batch before) and
    the store took it, holding no revision to compare. Our own delete's echo from Dataverse found the link
    and deleted the HubSpot contact again (a second ``source_deleted`` audit record)."""
    first, second = link("L", "1"), link("L", "1", revision=2)
    either.commit([("L", first)])
    either.commit([("L", second)])
    either.commit([("L", None)])
    tail(either, [record(first, offset=0)], 1)
    assert either.find(hubspot_key("1")) is None
    tail(either, [record(second, offset=1)], 2)
    assert either.find(hubspot_key("1")) is None
    assert either.get("L") is None
    tail(either, [record(None, "L", 2)], 3)  # the tail reaches the tombstone: it follows the topic again
    again = link("L", "1", revision=1)
    tail(either, [record(again, offset=3)], 4)  # another replica links the pair anew
    assert either.find(hubspot_key("1")) == again


def test_a_link_committed_ahead_waits_for_its_own_record_then_follows_the_topic(
    either: LinkStore | LinkIndex,
) -> None:
    mine, theirs = link("L", "2", revision=2), link("L", "3", revision=3)
    either.commit([("L", mine)])
    tail(either, [record(None, "L", 0)], 1)  # an older tombstone of the pair, before it was linked again
    assert either.get("L") == mine
    tail(either, [record(mine, offset=1), record(theirs, offset=2)], 3)
    assert either.get("L") == theirs
    newer = link("L", "4", revision=5)
    either.commit([("L", link("L", "3", revision=4))])
    tail(either, [record(newer, offset=3)], 4)  # built on ours, whose own record compaction removed
    assert either.get("L") == newer


# The topic as a sequence of changes to a few links, each this replica's own (committed ahead of its tail
# when its transaction commits) or another writer's; the tail follows at any lag. A pair once tombstoned
# is not linked again here (a link made again starts over at revision 1, where a wait by revision cannot
# tell it from the pair's first one; that needs the pair unlinked and linked again within the tail's lag).
topic_steps = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(["A", "B"]), st.sampled_from(["value", "value", "tombstone"]), st.booleans()
        ),
        st.integers(1, 3),  # the tail reads this many more records (as far as there are)
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic_steps)
def test_the_view_never_shows_a_link_older_than_what_this_replica_committed_or_the_tail_read(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str, bool] | int]
) -> None:
    disk = LinkStore.open(tmp_path_factory.mktemp("db"), topic=TOPIC, cluster_id="c1")
    try:
        for index in (LinkIndex(), disk):
            _follow(index, steps)
    finally:
        disk.close()


def _follow(index: LinkStore | LinkIndex, steps: list[tuple[str, str, bool] | int]) -> None:
    topic: list[Incoming] = []
    revisions: dict[str, int | None] = {}
    ours: dict[str, int] = {}
    """Per link, the position of the last change this replica committed."""
    read = 0
    for step in steps:
        if isinstance(step, int):
            upto = min(len(topic), read + step)
            tail(index, topic[read:upto], upto)
            read = upto
        else:
            link_id, kind, mine = step
            if link_id in revisions and revisions[link_id] is None:
                continue  # tombstoned for good
            revision = (revisions.get(link_id) or 0) + 1
            value = link(link_id, link_id.lower(), revision=revision) if kind == "value" else None
            revisions[link_id] = None if value is None else revision
            topic.append(record(value, link_id, len(topic)))
            if mine:
                index.commit([(link_id, value)])
                ours[link_id] = len(topic) - 1
        for link_id in ("A", "B"):
            upto = max(read, ours.get(link_id, -1) + 1)
            expected = None
            for r in topic[:upto]:
                if r.link_id == link_id:
                    expected = None if r.raw is None else Link.model_validate_json(r.raw)
            assert index.get(link_id) == expected


def test_a_batch_over_the_store_refuses_a_link_at_or_below_the_committed_revision(store: LinkStore) -> None:
    store.commit([("L", link("L", "1", revision=3))])
    staged = StagedLinks(store)
    with pytest.raises(StaleLinkError, match="revision 3 would replace revision 3"):
        staged.apply("L", link("L", "1", revision=3))
    staged.apply("L", link("L", "2", revision=4))
    assert staged.find(hubspot_key("2")) == link("L", "2", revision=4)
    assert staged.find(hubspot_key("1")) is None
    assert store.get("L") == link("L", "1", revision=3)  # the store moves only at commit


def test_offsets_move_with_the_links_they_cover_and_a_commit_ahead_of_the_tail_leaves_them(
    tmp_path: Path,
) -> None:
    store = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    assert store.rebuilt
    assert store.offsets() == {}
    store.apply_batch([record(link("A", "1"))], {0: 7, 1: 3})
    store.commit([("B", link("B", "2"))])
    assert store.offsets() == {0: 7, 1: 3}
    store.close()
    again = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    try:
        assert not again.rebuilt
        assert again.offsets() == {0: 7, 1: 3}
        assert again.find(hubspot_key("1")) == link("A", "1")
        assert again.find(hubspot_key("2")) == link("B", "2")
    finally:
        again.close()


def test_a_failed_batch_leaves_neither_its_links_nor_its_offsets(store: LinkStore) -> None:
    store.apply_batch([record(link("A", "1"))], {0: 1})
    broken = record(link("B", "2"))  # the disk refuses it half-way through the batch
    store._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON links WHEN NEW.link_id = 'B'"
        " BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.apply_batch([record(link("C", "3")), broken], {0: 3})
    assert store.offsets() == {0: 1}
    assert store.get("C") is None
    assert len(store) == 1


@pytest.mark.parametrize(
    ("topic", "cluster_id", "why"),
    [(TOPIC, "another cluster", "cluster_id"), ("other.links", "c1", "topic")],
)
def test_a_file_of_another_topic_or_cluster_is_rebuilt(
    tmp_path: Path, topic: str, cluster_id: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    first.apply_batch([record(link("A", "1"))], {0: 1})
    path = first.path
    first.close()
    path.rename(tmp_path / "links-x.sqlite3")
    (tmp_path / "links-x.sqlite3").rename(tmp_path / f"links-{topic}.sqlite3")
    store = LinkStore.open(tmp_path, topic=topic, cluster_id=cluster_id)
    try:
        assert store.rebuilt
        assert len(store) == 0
        assert store.offsets() == {}
        assert f"holds {why}" in caplog.text
    finally:
        store.close()


def test_an_unreadable_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / f"links-{TOPIC}.sqlite3").write_bytes(b"this is not a database" * 100)
    store = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    try:
        assert store.rebuilt
        assert "unreadable" in caplog.text
        store.apply_batch([record(link("A", "1"))], {0: 1})
        assert store.find(hubspot_key("1")) is not None
    finally:
        store.close()


def test_two_replicas_sharing_a_directory_each_take_a_file(tmp_path: Path) -> None:
    first = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    second = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    try:
        assert first.path != second.path
    finally:
        first.close()
        second.close()
    third = LinkStore.open(tmp_path, topic=TOPIC, cluster_id="c1")
    third.close()
    assert third.path == first.path


def test_offsets_are_followed_on_from_only_while_the_topic_still_holds_what_follows() -> None:
    tp = TopicPartition(TOPIC, 0)
    now = 1_000_000.0
    assert _stale({0: 5}, {tp: 0}, {tp: 9}, now, now) is None
    assert "below the log start 6" in str(_stale({0: 5}, {tp: 6}, {tp: 9}, now, now))
    assert "past the end 4" in str(_stale({0: 5}, {tp: 0}, {tp: 4}, now, now))
    assert "partition 3" in str(_stale({3: 5}, {tp: 0}, {tp: 9}, now, now))
    assert "tombstones" in str(_stale({0: 5}, {tp: 0}, {tp: 9}, now - TOMBSTONES_KEPT_S - 1, now))


# -- any sequence of changes, in any batches: the same answers as the in-memory index -------------------

IDS = ["A", "B", "C"]
RECORDS = ["1", "2", "3", "4"]
change = st.tuples(
    st.sampled_from(IDS),
    st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from(RECORDS),
            st.lists(st.sampled_from(RECORDS), max_size=2, unique=True).map(tuple),
            st.integers(1, 4),
            st.sampled_from(["contact", "company"]),
        ),
    ),
    st.booleans(),  # ends a batch
    st.booleans(),  # committed by a batch rather than read from the topic
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(change, max_size=25))
def test_any_sequence_of_changes_gives_the_in_memory_indexs_answers(
    tmp_path_factory: pytest.TempPathFactory,
    changes: list[tuple[str, tuple[str, tuple[str, ...], int, str] | None, bool, bool]],
) -> None:
    model = LinkIndex()
    store = LinkStore.open(tmp_path_factory.mktemp("db"), topic=TOPIC, cluster_id="c1")
    try:
        pending: list[Incoming] = []
        for offset, (link_id, value, ends, committed) in enumerate(changes):
            made = None
            if value is not None:
                hubspot_id, merged, revision, kind = value
                made = link(
                    link_id,
                    hubspot_id,
                    merged=merged,
                    revision=revision,
                    waiting=(hubspot_key(merged[0], "company"),) if merged else (),
                    dataverse_id=hubspot_id,
                    object_type=kind,
                )
            if committed:
                store.apply_batch(pending, {0: offset})
                pending = []
                model.commit([(link_id, made)])
                store.commit([(link_id, made)])
                continue
            raw = None if made is None else LINK_CODEC.encode(made)
            model.apply_record(link_key(link_id).encode(), raw, Position(TOPIC, 0, offset))
            pending.append(record(made, link_id, offset))
            if ends:
                store.apply_batch(pending, {0: offset + 1})
                pending = []
        store.apply_batch(pending, {0: len(changes)})
        for kind in ("contact", "company"):
            for object_id in RECORDS:
                assert store.find(hubspot_key(object_id, kind)) == model.find(hubspot_key(object_id, kind))
                key = hubspot_key(object_id, "company")
                assert store.waiting_on(key) == model.waiting_on(key)
        for link_id in IDS:
            assert store.get(link_id) == model.get(link_id)
        _bulk_answers_as_one_at_a_time(store, model)
        assert store.counts() == model.counts()
        assert len(store) == len(model)
    finally:
        store.close()


def _bulk_answers_as_one_at_a_time(store: LinkStore, model: LinkIndex) -> None:
    """`find_many` and `link_ids` (a batch's lookups in one query) answer as `find` does key by key, for
    keys held, keys of merged-away ids, keys no link holds and keys asked twice."""
    keys = [hubspot_key(i, kind) for kind in ("contact", "company") for i in [*RECORDS, "9", RECORDS[0]]]
    one_by_one = {key: link for key in keys if (link := model.find(key)) is not None}
    for index in (store, model):
        assert index.find_many(keys) == one_by_one
        assert index.link_ids(keys) == {key: link.link_id for key, link in one_by_one.items()}
        assert index.find_many([]) == {} == index.link_ids([])


def test_bulk_lookups_of_more_keys_than_one_query_takes_find_every_link(store: LinkStore) -> None:
    """A batch may ask for more keys than one ``IN (...)`` query binds (SQLite's limit): all are answered,
    each link decoded once however many of its keys are asked (both sides' keys find the same link)."""
    links = [link(f"L{n}", str(n)) for n in range(1_300)]
    store.apply_batch([record(made, offset=n) for n, made in enumerate(links)], {0: len(links)})
    keys = [hubspot_key(str(n)) for n in range(1_400)] + [f"dataverse/t/contact/d-L{n}" for n in range(1_300)]
    found = store.find_many(keys)
    assert len(found) == 2 * 1_300
    assert all(found[hubspot_key(str(n))] is found[f"dataverse/t/contact/d-L{n}"] for n in range(1_300))
    assert found[hubspot_key("1299")] == links[-1]
    assert store.link_ids(keys) == {key: link.link_id for key, link in found.items()}


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (b"link/L", b"not json", "JSON"),
        (b"link/L", b'{"hubspot": {}}', "Object missing required field"),
        (b"checkpoint/x", LINK_CODEC.encode(link("L", "1")), "not a link key"),
        (b"link/\xff", None, "invalid start byte"),
    ],
)
def test_an_unreadable_record_is_logged_with_where_it_is_and_skipped(
    store: LinkStore, key: bytes, value: bytes | None, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_record(key, value, Position(TOPIC, 2, 41)) is None
    assert f"skipping unreadable link at {TOPIC}[2]@41" in caplog.text
    assert why in caplog.text
    store.apply_batch([record(link("A", "1"))], {2: 42})  # the batch around it still applies
    assert store.offsets() == {2: 42}
