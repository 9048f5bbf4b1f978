"""Rows in memory: one org-wide version counter (SQL ``rowversion``, fact sheet §3.1), ETags, and the
delete log that change tracking reads.

Alternate keys are built as on a real org: creating one submits an index job and the key's
``EntityKeyIndexStatus`` goes Pending -> InProgress -> Active, or Failed when rows then hold duplicate
values (Learn, define-alternate-keys-entity, "Monitor index creation for alternate keys"; the maker page
define-alternate-keys-portal: "The alternate key will not be immediately available. A system job is
initiated ... to create database indexes"). The job takes ``key_index_delay_s`` of the sandbox clock
(so ``POST /_admin/clock/advance`` finishes it); it runs when someone next looks at the table's keys
(`Store.settle_keys`). Until a key is Active its uniqueness is not enforced (there is no index yet) and
it cannot address a row.

Every write takes the store's re-entrant lock, so requests from several tasks or threads see whole writes.
Inside :meth:`Store.transaction` each write also records how to undo itself; a failure rolls all of them
back (``$batch`` change sets and the bulk actions). Version numbers used by a rolled-back write stay
unused, as gaps in a real rowversion do.
"""

from __future__ import annotations

import contextlib
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cdc.sandbox.clock import Clock
from cdc.sandbox.dataverse.tables import Column, Key, Table, standard_tables

__all__ = ["KEY_INDEX_DELAY_S", "Deleted", "Row", "Store"]

KEY_INDEX_DELAY_S = 1.0
"""Default duration of a key's index job in the sandbox: short, so the demo and tests that provision wait
little, but never zero, so nothing may use a key the moment it is created."""


@dataclass(frozen=True)
class Row:
    """One record; ``values`` are keyed by column logical name (lookups hold the target GUID)."""

    table: str
    id: str
    values: dict[str, Any]
    lookup_tables: Mapping[str, str]
    version: int

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass(frozen=True)
class Deleted:
    id: str
    version: int


@dataclass
class _Data:
    rows: dict[str, dict[str, Row]] = field(default_factory=dict)
    deleted: dict[str, list[Deleted]] = field(default_factory=dict)


class Store:
    def __init__(self, *, seed: int, clock: Clock, key_index_delay_s: float = KEY_INDEX_DELAY_S) -> None:
        self.clock = clock
        self.key_index_delay_s = key_index_delay_s
        self.lock = threading.RLock()
        self.tables = standard_tables()
        self._data = _Data(
            rows={name: {} for name in self.tables}, deleted={name: [] for name in self.tables}
        )
        self._random = random.Random(f"dataverse-rows:{seed}")  # noqa: S311 -- reproducible ids, not secrets
        self._version = 1000
        self._undo: list[Callable[[], None]] | None = None

    # -- lookups --------------------------------------------------------------------------------

    def table_by_set(self, entity_set: str) -> Table | None:
        return next((t for t in self.tables.values() if t.entity_set == entity_set), None)

    def new_id(self) -> str:
        with self.lock:
            return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    @property
    def version(self) -> int:
        """The latest version handed out (a delta token's upper bound)."""
        return self._version

    def get(self, table: str, record_id: str) -> Row | None:
        return self._data.rows[table].get(record_id.lower())

    def rows(self, table: str) -> list[Row]:
        with self.lock:
            return list(self._data.rows[table].values())

    def find_by_key(self, table: Table, values: Mapping[str, Any]) -> Row | None:
        def matches(row: Row) -> bool:
            return all(_same(row.values.get(name), value) for name, value in values.items())

        with self.lock:
            return next((r for r in self._data.rows[table.logical_name].values() if matches(r)), None)

    def changed_since(self, table: str, after: int, upto: int) -> list[Row]:
        """Rows whose latest write has a version in ``(after, upto]``, oldest first."""
        with self.lock:
            found = [r for r in self._data.rows[table].values() if after < r.version <= upto]
        return sorted(found, key=lambda r: r.version)

    def deleted_since(self, table: str, after: int, upto: int) -> list[Deleted]:
        """Deletes in ``(after, upto]``, skipping rows that exist again (re-created by an upsert)."""
        with self.lock:
            rows = self._data.rows[table]
            return [
                d
                for d in self._data.deleted[table]
                if after < d.version <= upto and not (d.id in rows and rows[d.id].version > d.version)
            ]

    # -- writes ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes in the block happen, or none does (nested blocks join the outer one)."""
        with self.lock:
            if self._undo is not None:
                yield
                return
            self._undo = []
            try:
                yield
            except BaseException:
                for undo in reversed(self._undo):
                    undo()
                raise
            finally:
                self._undo = None

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _put(self, row: Row) -> None:
        rows = self._data.rows[row.table]
        previous = rows.get(row.id)
        rows[row.id] = row

        def undo() -> None:
            if previous is None:
                rows.pop(row.id, None)
            else:
                rows[row.id] = previous

        self._remember(undo)

    def create(
        self,
        table: Table,
        values: Mapping[str, Any],
        lookups: Mapping[str, str],
        record_id: str | None = None,
    ) -> Row:
        with self.lock:
            record_id = (record_id or self.new_id()).lower()
            now = self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
            merged: dict[str, Any] = {c: None for c in table.columns}
            merged.update(values)
            _apply_state(table, merged, values, creating=True)
            version = self._next_version()
            merged.update(
                {table.primary_id: record_id, "createdon": now, "modifiedon": now, "versionnumber": version}
            )
            _derive(table, merged)
            row = Row(table.logical_name, record_id, merged, dict(lookups), version)
            self._put(row)
            return row

    def update(self, table: Table, row: Row, values: Mapping[str, Any], lookups: Mapping[str, str]) -> Row:
        with self.lock:
            merged = dict(row.values)
            merged.update(values)
            _apply_state(table, merged, values, creating=False)
            version = self._next_version()
            merged.update(
                {"modifiedon": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"), "versionnumber": version}
            )
            _derive(table, merged)
            tables = {**row.lookup_tables, **lookups}
            for name in values:
                if name in tables and merged.get(name) is None:
                    del tables[name]
            updated = replace(row, values=merged, lookup_tables=tables, version=version)
            self._put(updated)
            return updated

    def delete(self, table: Table, row: Row) -> None:
        with self.lock:
            rows, log = self._data.rows[table.logical_name], self._data.deleted[table.logical_name]
            del rows[row.id]
            log.append(Deleted(row.id, self._next_version()))

            def undo() -> None:
                log.pop()
                rows[row.id] = row

            self._remember(undo)

    def add_table(self, table: Table) -> None:
        """A table created through the metadata API: empty, change tracking off."""
        with self.lock:
            self.tables[table.logical_name] = table
            self._data.rows[table.logical_name] = {}
            self._data.deleted[table.logical_name] = []

    def add_column(self, table: Table, column: Column) -> None:
        with self.lock:
            table.add(column)
            for row in self._data.rows[table.logical_name].values():
                row.values.setdefault(column.name, None)

    def add_key(self, table: Table, key: Key) -> Key:
        """Define ``key`` and submit its index job: it is Pending until the job has run."""
        with self.lock:
            queued = self._submitted(key)
            table.keys.append(queued)
            return queued

    def _submitted(self, key: Key) -> Key:
        now = self.clock.time()
        ready = now + self.key_index_delay_s
        return replace(key, status="Pending", submitted=now, ready_at=ready, failure="")

    def reactivate_key(self, table: Table, name: str) -> Key | None:
        """``ReactivateEntityKey``: submit a new index job for a key that is not Active (a Failed one, once
        its duplicates are gone); an Active key stays as it is. None: no such key."""
        with self.lock:
            self.settle_keys(table)
            for index, key in enumerate(table.keys):
                if key.name == name.lower():
                    if not key.active:
                        table.keys[index] = self._submitted(key)
                    return table.keys[index]
        return None

    def settle_keys(self, table: Table) -> list[Key]:
        """Advance every index job of ``table`` to where the sandbox clock says it is: InProgress after half
        its time, then Active, or Failed when two rows hold the same non-empty values of the key's
        columns (text compared case-insensitively, as the SQL collation does). Returns the keys."""
        with self.lock:
            now = self.clock.time()
            for index, key in enumerate(table.keys):
                if key.status not in {"Pending", "InProgress"}:
                    continue
                if now >= key.ready_at:
                    duplicate = self._duplicate(table, key)
                    failure = "" if duplicate is None else f"duplicate values {duplicate!r}"
                    status = "Failed" if failure else "Active"
                    table.keys[index] = replace(key, status=status, failure=failure)
                elif now >= (key.submitted + key.ready_at) / 2:
                    table.keys[index] = replace(key, status="InProgress")
            return list(table.keys)

    def _duplicate(self, table: Table, key: Key) -> tuple[Any, ...] | None:
        seen: set[tuple[Any, ...]] = set()
        for row in self._data.rows[table.logical_name].values():
            values = tuple(row.values.get(c) for c in key.columns)
            if None in values:
                continue
            folded = tuple(v.casefold() if isinstance(v, str) else v for v in values)
            if folded in seen:
                return values
            seen.add(folded)
        return None

    def key_conflict(self, table: Table, values: Mapping[str, Any], own_id: str | None) -> Key | None:
        """The Active alternate key another row already holds with these values, if any (a key whose
        index is not built yet enforces nothing)."""
        with self.lock:
            for key in self.settle_keys(table):
                if not key.active:
                    continue
                wanted = {c: values.get(c) for c in key.columns}
                if any(v is None for v in wanted.values()):
                    continue
                other = self.find_by_key(table, wanted)
                if other is not None and other.id != own_id:
                    return key
        return None

    def reset(self) -> None:
        with self.lock:
            self.tables = standard_tables()
            self._data = _Data(
                rows={name: {} for name in self.tables}, deleted={name: [] for name in self.tables}
            )


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.casefold() == expected.casefold()
    return bool(actual == expected)


def _apply_state(table: Table, merged: dict[str, Any], given: Mapping[str, Any], *, creating: bool) -> None:
    """statecode/statuscode move together: a status implies its state, a new state its default status."""
    state_column, status_column = table.columns.get("statecode"), table.columns.get("statuscode")
    if state_column is None or status_column is None:
        return
    if creating:
        merged["statecode"] = 0
    if "statuscode" in given and given["statuscode"] is not None:
        choice = status_column.choice(int(given["statuscode"]))
        if choice is not None and choice.state is not None:
            merged["statecode"] = choice.state
    elif creating or "statecode" in given:
        state = state_column.choice(int(merged.get("statecode") or 0))
        merged["statuscode"] = state.default_status if state else None


def _derive(table: Table, merged: dict[str, Any]) -> None:
    """Read-only derived columns: ``fullname`` of contacts and leads."""
    if "fullname" in table.columns and "firstname" in table.columns:
        parts = [merged.get("firstname"), merged.get("lastname")]
        merged["fullname"] = " ".join(p for p in parts if p) or None
