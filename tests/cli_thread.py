"""`cdc` run from an async test: in a worker thread, since it runs its own event loop, while the sandbox
(or the whole pipeline) keeps serving on the test's loop."""

from __future__ import annotations

import asyncio

from cdc.cli import main


async def cdc(*args: str) -> int:
    """The command's exit code."""
    try:
        await asyncio.to_thread(main, [*args])
    except SystemExit as done:
        return int(done.code or 0)
    return 0
