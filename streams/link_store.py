"""The link store: which links are committed, which a batch has staged, and the one rule by which a link
replaces another. Pure and synchronous; `streams.link_view` feeds it from the `links` topic.

The writer rule: a link replaces the current one of its pair only at a higher revision (`Link.revision`,
bumped by every change). Links reach the store three ways:

1. A batch stages its links (`StagedLinks.apply`). One at an equal or lower revision is refused with
   `StaleLinkError`: two values at one revision are two writers of one pair within the batch (a copy taken
   before another change of the batch moved the link), and the compacted topic would keep whichever came
   last.
2. Once the batch's transaction is committed, its links join the committed view (`LinkIndex.commit`), ahead
   of the topic's tail, so the next batch sees them without waiting for it; they passed the rule when staged.
3. Every record of the topic joins it in topic order (`LinkIndex.apply_record`: the tail of a running sync,
   or a command reading the topic). While a link this replica committed ahead (step 2) has not come back
   through the tail, the tail's records of it are older and skipped (`streams._link_batch.Ahead`: a
   tombstone committed ahead leaves no revision to compare with). A record below the revision held is
   skipped: it is older than a link this replica already committed. A record at the revision held
   replaces it, on purpose: two writers of one revision (two replicas across a rebalance) are ordered by
   the topic, whose compaction keeps the later one, and the view must end as the topic does.

A tombstone (no link) always removes the pair; a link made again after it starts over at any revision.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import orjson

from streams._link_batch import Ahead
from streams.codec import Position
from streams.keys import RecordRef, join_key
from streams.links import LINK_CODEC, Link, link_id_from_key

__all__ = ["CommittedLinks", "LinkIndex", "StagedLinks", "StaleLinkError"]


class CommittedLinks(Protocol):
    """The committed view as the router and the applier use it: `LinkIndex` in memory (the operator
    commands, a batch's staged links) or `streams.link_db.LinkStore` on disk (the sync role)."""

    def __len__(self) -> int: ...
    def get(self, link_id: str) -> Link | None: ...
    def find(self, record: RecordRef | str) -> Link | None: ...
    def find_many(self, keys: Iterable[str]) -> dict[str, Link]: ...
    def link_ids(self, keys: Iterable[str]) -> dict[str, str]: ...
    def waiting_on(self, record_key: str) -> set[str]: ...
    def revision(self, link_id: str) -> int | None: ...
    def counts(self) -> dict[str, int]: ...
    def commit(self, changes: Iterable[tuple[str, Link | None]]) -> None: ...
    def __iter__(self) -> Iterator[Link]: ...


log = logging.getLogger(__name__)


class LinkIndex:
    """The materialized view of the `links` topic: apply every record in offset order, look up by either side.

    Links are held
    as their encoded JSON, zlib-compressed, and decoded on lookup (with a small cache of recent ones): a
    decoded link with its per-field fingerprints is some 16 KB of Python objects, its compressed JSON a
    small fraction of that (measured: 100,000 links took 1.6 GB decoded).
    """

    CACHE_SIZE = 4096

    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}
        self._by_record: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._cache: OrderedDict[str, Link] = OrderedDict()
        self._waiters: dict[str, set[str]] = {}
        self._ahead = Ahead()

    def __len__(self) -> int:
        return len(self._raw)

    def apply(self, link_id: str, link: Link | None) -> None:
        """Apply one record of the topic: a value replaces the pair, ``None`` (a tombstone) removes it."""
        self._apply(link_id, None if link is None else LINK_CODEC.encode(link), link)

    def apply_raw(self, link_id: str, raw: bytes | None) -> None:
        """Apply one record as read from the topic (validated lazily, on lookup), whatever its revision."""
        self._apply(link_id, raw, None)

    def commit(self, changes: Iterable[tuple[str, Link | None]]) -> None:
        """A batch's staged link changes, once its transaction is committed (rule, step 2)."""
        changes = list(changes)
        for link_id, link in changes:
            self.apply(link_id, link)
        self._ahead.committed(changes)

    def apply_record(self, key: bytes | None, value: bytes | None, where: Position) -> None:
        """One record of the `links` topic, in topic order (rule, step 3); an unreadable one is logged and
        skipped."""
        if key is None:
            return
        try:
            link_id = link_id_from_key(key.decode())
            incoming = None if value is None else int(orjson.loads(value).get("revision", 1))
            if not self._ahead.passes(link_id, incoming):
                return  # behind a change of this link this replica committed ahead of the tail
            if (
                incoming is not None
                and (current := self.revision(link_id)) is not None
                and incoming < current
            ):
                return  # older than a link this replica committed ahead of the tail
            self.apply_raw(link_id, value)
        except (ValueError, UnicodeDecodeError, TypeError, AttributeError, KeyError) as error:
            log.warning("skipping unreadable link at %s: %r", where, error)

    def revision(self, link_id: str) -> int | None:
        packed = self._raw.get(link_id)
        return None if packed is None else int(orjson.loads(zlib.decompress(packed)).get("revision", 1))

    def _apply(self, link_id: str, raw: bytes | None, link: Link | None) -> None:
        old = self._raw.pop(link_id, None)
        self._cache.pop(link_id, None)
        if old is not None:
            previous = orjson.loads(zlib.decompress(old))
            old_keys, old_kind = _keys_of(previous)
            self._counts[old_kind] -= 1
            for key in old_keys:
                if self._by_record.get(key) == link_id:
                    del self._by_record[key]
            for key in previous.get("waiting_for", ()):
                self._waiters.get(key, set()).discard(link_id)
                if not self._waiters.get(key, True):
                    del self._waiters[key]
        if raw is None:
            return
        decoded = orjson.loads(raw)
        keys, kind = _keys_of(decoded)
        self._raw[link_id] = zlib.compress(raw, 1)
        self._counts[kind] = self._counts.get(kind, 0) + 1
        for key in keys:
            self._by_record[key] = link_id
        for key in decoded.get("waiting_for", ()):
            self._waiters.setdefault(key, set()).add(link_id)
        if link is not None:
            self._remember(link_id, link)

    def _remember(self, link_id: str, link: Link) -> None:
        self._cache[link_id] = link
        self._cache.move_to_end(link_id)
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)

    def get(self, link_id: str) -> Link | None:
        link = self._cache.get(link_id)
        if link is not None:
            self._cache.move_to_end(link_id)
            return link
        packed = self._raw.get(link_id)
        if packed is None:
            return None
        link = Link.model_validate_json(zlib.decompress(packed))
        self._remember(link_id, link)
        return link

    def find(self, record: RecordRef | str) -> Link | None:
        """The pair holding this record (by its key, or the key of a record merged into it)."""
        key = record if isinstance(record, str) else record.key
        link_id = self._by_record.get(key)
        return None if link_id is None else self.get(link_id)

    def find_many(self, keys: Iterable[str]) -> dict[str, Link]:
        """`find` for many record keys at once: the link of each key a link holds (the others left out)."""
        return {key: link for key in keys if (link := self.find(key)) is not None}

    def link_ids(self, keys: Iterable[str]) -> dict[str, str]:
        """The id of the link holding each of these record keys (keys no link holds are left out): what the
        router needs of a link, without decoding it."""
        return {key: link_id for key in keys if (link_id := self._by_record.get(key)) is not None}

    def waiting_on(self, record_key: str) -> set[str]:
        """The links whose pair waits for this record to be linked (`Link.waiting_for`)."""
        return set(self._waiters.get(record_key, ()))

    def counts(self) -> dict[str, int]:
        """Links per pair of object types (``<hubspot object>~<dataverse object>``)."""
        return {kind: n for kind, n in self._counts.items() if n}

    def __iter__(self) -> Iterator[Link]:
        for link_id in list(self._raw):
            link = self.get(link_id)
            if link is not None:
                yield link


def _keys_of(raw: dict[str, Any]) -> tuple[list[str], str]:
    """The record keys a link's JSON answers to (both sides and merged-away ids), and its pair kind."""
    keys: list[str] = []
    for side in (raw["hubspot"], raw["dataverse"]):
        parts = (side["system"], side["tenant"], side["object_type"])
        keys.append(join_key(*parts, side["object_id"]))
        keys.extend(join_key(*parts, old) for old in side.get("merged_ids", ()))
    return keys, f"{raw['hubspot']['object_type']}~{raw['dataverse']['object_type']}"


class StaleLinkError(RuntimeError):
    """A link built on an older copy than the batch's current one: a bug, never published (the apply loop
    retries the batch, then its items one by one)."""


class StagedLinks:
    """The link store as a batch sees it: the committed view plus the batch's own, not yet published, link
    changes. The committed view moves only once the batch's transaction is committed (`LinkIndex.commit`),
    so a batch that fails half-way leaves no trace in it and its retry publishes every link it makes."""

    def __init__(self, base: CommittedLinks) -> None:
        self.base = base
        self.staged = LinkIndex()
        self.removed: set[str] = set()
        self._prefetched: dict[str, Link | None] | None = None

    @contextlib.contextmanager
    def prefetched(self, keys: Iterable[str]) -> Iterator[None]:
        """Within the block, `find` answers these record keys from the committed links as one query read
        them on entry (`CommittedLinks.find_many`), rather than one query per key. Only for a block without
        awaits: the committed view moves between awaits (the link tail), and this answers as it stood."""
        wanted = list(dict.fromkeys(keys))
        found = self.base.find_many(wanted)
        self._prefetched = {key: found.get(key) for key in wanted}
        try:
            yield
        finally:
            self._prefetched = None

    def _committed(self, key: str) -> Link | None:
        if self._prefetched is not None and key in self._prefetched:
            return self._prefetched[key]
        return self.base.find(key)

    def find(self, record: RecordRef | str) -> Link | None:
        """The pair holding this record (by its key, or the key of a record merged into it)."""
        key = record if isinstance(record, str) else record.key
        link = self.staged.find(key)
        if link is not None:
            return link
        link = self._committed(key)
        if link is None or link.link_id in self.removed or self.staged.get(link.link_id) is not None:
            return None  # tombstoned, or re-pointed (a merge) within this batch
        return link

    def get(self, link_id: str) -> Link | None:
        if link_id in self.removed:
            return None
        return self.staged.get(link_id) or self.base.get(link_id)

    def waiting_on(self, key: str) -> set[str]:
        """The links (as this batch leaves them) waiting for this record to be linked."""
        base = {i for i in self.base.waiting_on(key) if i not in self.removed and self.staged.get(i) is None}
        return base | self.staged.waiting_on(key)

    def apply(self, link_id: str, link: Link | None) -> None:
        """Stage a link change under the writer rule (step 1): refused below or at the current revision."""
        if link is None:
            self.removed.add(link_id)
        else:
            current = self.get(link_id)
            if current is not None and link.revision <= current.revision:
                raise StaleLinkError(
                    f"link {link_id}: revision {link.revision} would replace revision {current.revision}"
                )
            self.removed.discard(link_id)
        self.staged.apply(link_id, link)
