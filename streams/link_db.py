"""The link store on disk: the `links` topic materialized in one SQLite file per sync replica.

Why on disk: every replica holds every link (the router looks pairs up globally), and held in memory they
grew the process by ~1.9 KB each and were read back in full at every start (117 s and 1.9 GB at 1M links).
Here the links live in the file, the process keeps SQLite's page cache (bounded) and a few decoded links,
and a restart reads only the topic's tail.

The tables, written together in one transaction per batch of records:

- ``links``: per link id its revision, pair kind and value (the topic's JSON, LZ4-compressed);
- ``record_keys``: per record key (either side's, and the ids merged into a pair) the link holding it;
- ``waiters``: per record key the links waiting for it to be linked (`Link.waiting_for`);
- ``kinds``: links per pair kind, kept as they change (counting 10M rows at every batch is not an option);
- ``offsets``: per partition of the topic, the offset of the next record to apply. It moves in the same
  transaction as the links it covers (quix-streams keeps its changelog offset in the same RocksDB write
  batch as the state), so after a crash the file and its offsets agree, and a restart resumes from them.
- ``meta``: the topic's name and its cluster's id: a file of another topic or cluster is rebuilt, never
  read (`LinkStore.open`).

Durability: WAL with ``synchronous=NORMAL``: a killed process loses nothing SQLite committed, a power cut
may lose the last transactions, with their offsets, so they are read again. Nothing needs a backup: the
topic is the truth, and a missing, unreadable or foreign file is rebuilt from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import cramjam

from streams._link_batch import Ahead, Changes, Held, Incoming, fold, head_of
from streams.keys import RecordRef
from streams.links import LINK_CODEC, Link

__all__ = ["LinkStore"]

log = logging.getLogger(__name__)

SCHEMA = "1"
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    link_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, kind TEXT NOT NULL, value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS record_keys (key TEXT PRIMARY KEY, link_id TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_keys_by_link ON record_keys (link_id);
CREATE TABLE IF NOT EXISTS waiters (
    key TEXT NOT NULL, link_id TEXT NOT NULL, PRIMARY KEY (key, link_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS waiters_by_link ON waiters (link_id);
CREATE TABLE IF NOT EXISTS kinds (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",  # 64 MiB of pages at most: the bound on what the store keeps in memory
    "PRAGMA temp_store=MEMORY",
)
_CHUNK = 500
"""Ids per ``IN (...)`` query: below SQLite's default limit of bound parameters."""


class LinkStore:
    """The `links` topic in a SQLite file: the committed view the router and the applier read (the same
    calls as `streams.link_store.LinkIndex`), fed by `streams.link_view.LinkView` a batch at a time."""

    CACHE_SIZE = 1024
    """Decoded links kept (a decoded link of 75 fields a side is ~16 KB of Python objects)."""

    def __init__(self, path: Path, db: sqlite3.Connection, lock: IO[bytes]) -> None:
        self.path = path
        self._db = db
        self._lock = lock
        self._cache: OrderedDict[str, Link] = OrderedDict()
        self._ahead = Ahead()
        self.rebuilt = False
        """True when `open` (or `reset`) started this file empty."""

    @classmethod
    def open(cls, state_dir: Path, *, topic: str, cluster_id: str) -> Self:
        """The replica's file for ``topic`` under ``state_dir``, started over when it is unreadable or holds
        another topic's or cluster's links. Replicas sharing a directory each take a file of their own (the
        first one no other process holds: ``links-<topic>.sqlite3``, then ``-2``, ``-3``...)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path, lock = _claim(state_dir, topic)
        try:
            if not path.exists():
                store = cls(path, _create(path, topic=topic, cluster_id=cluster_id), lock)
                store.rebuilt = True
                log.info("link store %s: a new file, built from the topic", path)
                return store
            db, reason = _connect(path, topic=topic, cluster_id=cluster_id)
        except BaseException:
            lock.close()
            raise
        store = cls(path, db, lock)
        if reason is not None:
            log.warning("link store %s: %s; rebuilding it from the topic", path, reason)
            store.reset(topic=topic, cluster_id=cluster_id)
        return store

    def close(self) -> None:
        """Checkpoint the WAL into the file and release it (idempotent)."""
        if self._lock.closed:
            return
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._lock.close()

    def reset(self, *, topic: str | None = None, cluster_id: str | None = None) -> None:
        """Start over empty (a new file), keeping or replacing the topic and cluster it is bound to."""
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall()) if topic is None else {}
        topic = topic if topic is not None else meta.get("topic", "")
        cluster_id = cluster_id if cluster_id is not None else meta.get("cluster_id", "")
        self._db.close()
        _remove(self.path)
        self._db = _create(self.path, topic=topic, cluster_id=cluster_id)
        self._cache.clear()
        self._ahead.clear()
        self.rebuilt = True

    # -- what `LinkView` feeds it --------------------------------------------------------------------

    def offsets(self) -> dict[int, int]:
        """Per partition, the offset of the next record to apply (none yet: read from the start)."""
        return dict(self._db.execute("SELECT partition, next FROM offsets").fetchall())

    def written_at(self) -> float | None:
        """When (Unix time) the store was last known to be up to date with the topic; ``None``: never."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'written_at'").fetchone()
        return None if row is None else float(row[0])

    def mark_current(self) -> None:
        """Record that the store is up to date with the topic now (a quiet topic writes no batches)."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('written_at', ?)", (repr(time.time()),))

    def apply_batch(self, records: Sequence[Incoming], next_offsets: Mapping[int, int]) -> None:
        """Records of the topic in order, and the offsets after them, in one transaction (rule step 3)."""
        records = [
            r for r in records if self._ahead.passes(r.link_id, None if r.head is None else r.head.revision)
        ]
        self._write(records, next_offsets, topic_order=True)

    # -- the committed view ----------------------------------------------------------------------------

    def commit(self, changes: Iterable[tuple[str, Link | None]]) -> None:
        """A batch's staged link changes, once its transaction is committed (rule step 2): ahead of the
        topic's tail, the offsets stay (the tail re-applies these records at the same revision)."""
        changes = list(changes)
        incoming = [
            Incoming(link_id, None, None)
            if link is None
            else Incoming(link_id, raw := LINK_CODEC.encode(link), head_of(raw))
            for link_id, link in changes
        ]
        self._write(incoming, {}, topic_order=False)
        self._ahead.committed(changes)
        for link_id, link in changes:
            if link is not None:
                self._remember(link_id, link)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT coalesce(sum(n), 0) FROM kinds").fetchone()[0])

    def revision(self, link_id: str) -> int | None:
        row = self._db.execute("SELECT revision FROM links WHERE link_id = ?", (link_id,)).fetchone()
        return None if row is None else int(row[0])

    def get(self, link_id: str) -> Link | None:
        link = self._cached(link_id)
        if link is not None:
            return link
        row = self._db.execute("SELECT value FROM links WHERE link_id = ?", (link_id,)).fetchone()
        return None if row is None else self._decode(link_id, row[0])

    def _cached(self, link_id: str) -> Link | None:
        link = self._cache.get(link_id)
        if link is not None:
            self._cache.move_to_end(link_id)
        return link

    def _decode(self, link_id: str, value: bytes) -> Link:
        link = Link.model_validate_json(bytes(cramjam.lz4.decompress_block(value)))
        self._remember(link_id, link)
        return link

    def find(self, record: RecordRef | str) -> Link | None:
        """The pair holding this record (by its key, or the key of a record merged into it)."""
        key = record if isinstance(record, str) else record.key
        row = self._db.execute("SELECT link_id FROM record_keys WHERE key = ?", (key,)).fetchone()
        return None if row is None else self.get(row[0])

    def find_many(self, keys: Iterable[str]) -> dict[str, Link]:
        """`find` for many record keys in one query per `_CHUNK` keys (a batch's, not one query an event):
        the link of each key a link holds, each link decoded once (the others left out)."""
        rows: list[tuple[str, str, bytes]] = []
        for chunk in _chunks(keys):
            rows += self._db.execute(
                "SELECT record_keys.key, links.link_id, links.value FROM record_keys"  # noqa: S608 -- marks
                " JOIN links ON links.link_id = record_keys.link_id"
                f" WHERE record_keys.key IN ({_marks(chunk)})",
                chunk,
            ).fetchall()
        decoded: dict[str, Link] = {}
        for _, link_id, value in rows:
            if link_id not in decoded:
                decoded[link_id] = self._cached(link_id) or self._decode(link_id, value)
        return {key: decoded[link_id] for key, link_id, _ in rows}

    def link_ids(self, keys: Iterable[str]) -> dict[str, str]:
        """The id of the link holding each of these record keys (keys no link holds are left out), in one
        query per `_CHUNK` keys: what the router needs of a link, without reading or decoding it."""
        found: dict[str, str] = {}
        for chunk in _chunks(keys):
            found.update(
                self._db.execute(
                    f"SELECT key, link_id FROM record_keys WHERE key IN ({_marks(chunk)})",  # noqa: S608
                    chunk,
                ).fetchall()
            )
        return found

    def waiting_on(self, record_key: str) -> set[str]:
        """The links whose pair waits for this record to be linked (`Link.waiting_for`)."""
        rows = self._db.execute("SELECT link_id FROM waiters WHERE key = ?", (record_key,))
        return {row[0] for row in rows}

    def counts(self) -> dict[str, int]:
        """Links per pair of object types (``<hubspot object>~<dataverse object>``)."""
        return dict(self._db.execute("SELECT kind, n FROM kinds WHERE n > 0").fetchall())

    def __iter__(self) -> Iterator[Link]:
        for (value,) in self._db.execute("SELECT value FROM links"):
            yield Link.model_validate_json(bytes(cramjam.lz4.decompress_block(value)))

    # -- the one writer ---------------------------------------------------------------------------------

    def _remember(self, link_id: str, link: Link) -> None:
        self._cache[link_id] = link
        self._cache.move_to_end(link_id)
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)

    def _held(self, link_ids: set[str]) -> dict[str, Held]:
        found: dict[str, tuple[int, str]] = {}
        keys: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(link_ids)):
            marks = _marks(chunk)
            for link_id, revision, kind in self._db.execute(
                f"SELECT link_id, revision, kind FROM links WHERE link_id IN ({marks})",  # noqa: S608 -- marks
                chunk,
            ):
                found[link_id] = (revision, kind)
            for key, link_id in self._db.execute(
                f"SELECT key, link_id FROM record_keys WHERE link_id IN ({marks})",  # noqa: S608 -- marks
                chunk,
            ):
                keys.setdefault(link_id, []).append(key)
        return {i: Held(r, k, tuple(keys.get(i, ()))) for i, (r, k) in found.items()}

    def _write(
        self, incoming: Sequence[Incoming], next_offsets: Mapping[int, int], *, topic_order: bool
    ) -> None:
        changes = fold(incoming, self._held({c.link_id for c in incoming}), topic_order=topic_order)
        for link_id in changes.links:
            self._cache.pop(link_id, None)
        with self._db:  # one transaction: the links, their keys and waits, the counts and the offsets
            _write_changes(self._db, changes)
            if next_offsets:
                self._db.executemany(
                    "INSERT INTO offsets VALUES (?, ?)"
                    " ON CONFLICT (partition) DO UPDATE SET next = excluded.next",
                    sorted(next_offsets.items()),
                )


def _chunks(keys: Iterable[str]) -> Iterator[list[str]]:
    """The distinct keys, `_CHUNK` at a time (one ``IN (...)`` query each)."""
    distinct = list(dict.fromkeys(keys))
    for start in range(0, len(distinct), _CHUNK):
        yield distinct[start : start + _CHUNK]


def _marks(chunk: Sequence[str]) -> str:
    return ",".join("?" * len(chunk))


def _write_changes(db: sqlite3.Connection, changes: Changes) -> None:
    ids = [(link_id,) for link_id in changes.links]
    db.executemany("DELETE FROM waiters WHERE link_id = ?", ids)
    db.executemany(
        "DELETE FROM links WHERE link_id = ?", [(i,) for i, v in changes.links.items() if v is None]
    )
    db.executemany(
        "INSERT OR REPLACE INTO links VALUES (?, ?, ?, ?)",
        [
            (link_id, head.revision, head.kind, bytes(cramjam.lz4.compress_block(raw)))
            for link_id, final in changes.links.items()
            if final is not None
            for raw, head in (final,)
        ],
    )
    db.executemany(
        "INSERT OR IGNORE INTO waiters VALUES (?, ?)",
        [
            (key, link_id)
            for link_id, final in changes.links.items()
            if final is not None
            for key in final[1].waiting_for
        ],
    )
    db.executemany(
        "DELETE FROM record_keys WHERE key = ?", [(k,) for k, i in changes.owners.items() if i is None]
    )
    db.executemany(
        "INSERT OR REPLACE INTO record_keys VALUES (?, ?)",
        [(k, i) for k, i in changes.owners.items() if i is not None],
    )
    db.executemany(
        "INSERT INTO kinds VALUES (?, ?) ON CONFLICT (kind) DO UPDATE SET n = n + excluded.n",
        list(changes.counts.items()),
    )


def _claim(state_dir: Path, topic: str) -> tuple[Path, IO[bytes]]:
    """The first of this topic's files that no other process holds, and the lock that holds it."""
    for n in range(1, 1000):
        path = state_dir / f"links-{topic}{'' if n == 1 else f'-{n}'}.sqlite3"
        lock = path.with_name(path.name + ".lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return path, lock
    raise RuntimeError(f"no free link store file for {topic} under {state_dir}")


def _connect(path: Path, *, topic: str, cluster_id: str) -> tuple[sqlite3.Connection, str | None]:
    """The file opened, and why it cannot be used as it is (``None``: it can)."""
    db = sqlite3.connect(path)
    try:
        for pragma in _PRAGMAS:
            db.execute(pragma)
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        db.execute("SELECT count(*) FROM offsets").fetchone()
    except sqlite3.DatabaseError as error:  # not a database, malformed, no such table
        db.close()
        return _create(path, topic=topic, cluster_id=cluster_id, replace=True), f"unreadable ({error})"
    for name, want in (("schema", SCHEMA), ("topic", topic), ("cluster_id", cluster_id)):
        if meta.get(name) != want:
            return db, f"holds {name} {meta.get(name)!r}, not {want!r}"
    return db, None


def _create(path: Path, *, topic: str, cluster_id: str, replace: bool = False) -> sqlite3.Connection:
    if replace:
        _remove(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size=16384")  # before any table: a link's ~2.5 KB leaves less of a page unused
    for pragma in _PRAGMAS:
        db.execute(pragma)
    db.executescript(_TABLES)
    with db:
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("schema", SCHEMA), ("topic", topic), ("cluster_id", cluster_id)],
        )
    return db


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
