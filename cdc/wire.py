"""What the HubSpot and Dataverse packages share, knowing neither: chunking, timestamps, short error texts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

__all__ = ["ERROR_CHARS", "chunks", "packed", "parse_time", "short"]

T = TypeVar("T")
ERROR_CHARS = 300


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def packed(items: Sequence[T], *, most: int, budget: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    """``items`` in order, in as few calls as the API allows: at most ``most`` per call and at most
    ``budget`` of ``size`` (what each adds to the request: a filter's characters) together. An item larger
    than the budget goes alone (the API then says what is wrong with it)."""
    chunk: list[T] = []
    used = 0
    for item in items:
        cost = size(item)
        if chunk and (len(chunk) >= most or used + cost > budget):
            yield chunk
            chunk, used = [], 0
        chunk.append(item)
        used += cost
    if chunk:
        yield chunk


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
