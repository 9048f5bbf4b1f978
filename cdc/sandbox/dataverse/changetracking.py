"""Delta tokens and the paging cursor of change-tracking reads (fact sheet §1).

A delta token is ``<version>!<MM/dd/yyyy HH:mm:ss>`` like the documented ones: the org version it was
issued at and when. It expires ``expire_days`` after issue (``ExpireChangeTrackingInDays``); an old or
unreadable token answers ``0x80044352``.

A page of a tracking read covers versions ``(after, upto]`` where ``upto`` is fixed on the first page, so
every page of one read agrees on what is in it: rows first (oldest version first, each once in its latest
state), then deletes. A row written again while the pages are being read moves above ``upto`` and comes
in the next delta, never lost. The cursor travels in ``$skiptoken`` as a Dataverse-style paging cookie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.store import Deleted, Row, Store

__all__ = ["Cursor", "delta_page", "make_token", "read_token"]

_TOKEN = re.compile(r"^(\d+)!(\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2})$")
_COOKIE = re.compile(r'pagenumber="(\d+)" pagingcookie="([^"]*)" istracking="(True|False)"')
_FORMAT = "%m/%d/%Y %H:%M:%S"


def make_token(version: int, now: datetime) -> str:
    return f"{version}!{now.astimezone(UTC).strftime(_FORMAT)}"


def read_token(token: str, now: datetime, expire_days: float) -> int:
    """The version a token stands for; raises ExpiredVersionStamp when old or malformed."""
    match = _TOKEN.match(token.strip())
    if match is None:
        raise errors.expired_version_stamp()
    issued = datetime.strptime(match.group(2), _FORMAT).replace(tzinfo=UTC)
    if now - issued > timedelta(days=expire_days):
        raise errors.expired_version_stamp()
    return int(match.group(1))


@dataclass(frozen=True)
class Cursor:
    """Where a tracking read stands: phase ``i`` (initial: rows only), ``r`` (rows), ``d`` (deletes)."""

    after: int
    upto: int
    phase: str
    position: int
    page: int = 1

    def cookie(self) -> str:
        cookie = f"{self.after}.{self.upto}.{self.phase}.{self.position}"
        return f'<cookie pagenumber="{self.page}" pagingcookie="{cookie}" istracking="True" />'

    @classmethod
    def from_cookie(cls, text: str) -> Cursor | None:
        match = _COOKIE.search(text)
        if match is None or match.group(3) != "True":
            return None
        parts = match.group(2).split(".")
        if len(parts) != 4 or parts[2] not in {"i", "r", "d"}:  # noqa: PLR2004 -- four cookie fields
            return None
        try:
            return cls(int(parts[0]), int(parts[1]), parts[2], int(parts[3]), int(match.group(1)))
        except ValueError:
            return None


def delta_page(
    store: Store, table: str, cursor: Cursor, size: int
) -> tuple[list[Row | Deleted], Cursor | None]:
    """One page of changes and the cursor of the next page (None on the last page)."""
    items: list[Row | Deleted] = []
    following = replace(cursor, page=cursor.page + 1)
    if cursor.phase in {"i", "r"}:
        rows = store.changed_since(table, max(cursor.after, cursor.position), cursor.upto)
        items.extend(rows[:size])
        if len(rows) > size:
            return items, replace(following, position=rows[size - 1].version)
        if cursor.phase == "i":
            return items, None
        cursor = replace(cursor, phase="d", position=cursor.after)
    deletes = store.deleted_since(table, max(cursor.after, cursor.position), cursor.upto)
    room = size - len(items)
    items.extend(deletes[:room])
    if len(deletes) > room:
        position = deletes[room - 1].version if room > 0 else max(cursor.after, cursor.position)
        return items, replace(following, phase="d", position=position)
    return items, None
