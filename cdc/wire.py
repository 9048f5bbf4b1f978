"""What the HubSpot and Dataverse packages share, knowing neither: chunking, timestamps, short error texts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

__all__ = ["ERROR_CHARS", "chunks", "parse_time", "short"]

T = TypeVar("T")
ERROR_CHARS = 300


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 instant (``...Z`` or with an offset) as an aware datetime; None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def short(text: str) -> str:
    """An API message trimmed for an outcome (it may be logged and dead-lettered)."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."
