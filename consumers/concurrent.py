"""Independent calls at once, with every one of them finished before the caller goes on.

`concurrently` is `asyncio.gather` for calls that must not be left half-done: when one fails, the others
still run to their end (a write already on the wire is never cancelled by a sibling's error), and then the
first failure, in the order given, is raised. A sequential loop would have sent the calls before the
failing one and none after; the caller treats the two the same way (the batch is retried whole), and the
wait is one round trip instead of one per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar, cast

__all__ = ["concurrently"]

T = TypeVar("T")


async def concurrently(calls: Iterable[Awaitable[T]]) -> list[T]:
    """The results of ``calls`` in their order, run at once; the first error raised once all have ended."""
    pending = list(calls)
    if len(pending) <= 1:
        return [await call for call in pending]  # no task for the common case of one call
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast("list[T]", results)
