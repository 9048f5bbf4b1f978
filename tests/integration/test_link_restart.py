"""A sync replica keeps its links in a file (`streams.link_db`) with the offsets of the `links` topic it
applied: restarted, after a clean stop or a kill -9 that closed nothing, it goes on from that file (reads
only the tail; a rebuild would replace the file) and still syncs, both new pairs and the pairs it knew."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from streams.config import KafkaSettings
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def dv_rows(stack: Stack, email: str) -> list[dict[str, Any]]:
    return [r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").lower() == email]


def store_file(stack: Stack) -> Path:
    [path] = stack.settings.sync.state_dir.glob(f"links-{stack.settings.kafka.topic_prefix}*.sqlite3")
    return path


def applied(path: Path) -> int:
    """The offsets the file says it applied, summed over partitions (read as an operator would)."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT coalesce(sum(next), 0) FROM offsets").fetchone()[0])


async def synced(stack: Stack, email: str, lastname: str) -> None:
    async def landed() -> bool:
        return [r.get("lastname") for r in await dv_rows(stack, email)] == [lastname]

    await eventually(landed, within=60, what=f"{email} with lastname {lastname} in Dataverse")


async def test_a_replica_stopped_cleanly_resumes_from_its_file_and_still_syncs(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        known = await stack.hs_create("contacts", {"email": "known@example.com", "lastname": "One"})
        await synced(stack, "known@example.com", "One")
        await quiet(stack)
        path = store_file(stack)
        inode, before = path.stat().st_ino, applied(path)
        assert before > 0

        await stack.stop_sync()
        caplog.set_level(logging.INFO, logger="streams.link_view")
        caplog.clear()
        await stack.start_sync()
        assert "resumed from its offsets with 0 records" in caplog.text
        assert path.stat().st_ino == inode  # the same file: not rebuilt

        await stack.hs_update("contacts", known, {"lastname": "Two"})  # a pair it knew: no duplicate
        await stack.hs_create("contacts", {"email": "new@example.com", "lastname": "New"})
        await synced(stack, "known@example.com", "Two")
        await synced(stack, "new@example.com", "New")
        await quiet(stack)
        assert applied(path) > before


async def test_a_killed_replica_resumes_from_its_file_and_still_syncs(kafka_settings: KafkaSettings) -> None:
    async with running_stack(kafka_settings, small_config(), processes=True) as stack:
        known = await stack.hs_create("contacts", {"email": "kept@example.com", "lastname": "One"})
        await synced(stack, "kept@example.com", "One")
        path = await eventually(partial(asyncio.to_thread, store_file, stack), what="the replica's file")

        async def committed() -> int:
            return await asyncio.to_thread(applied, path)

        before = await eventually(committed, what="the first link applied to the file")
        inode = path.stat().st_ino

        await stack.kill_replica(0)  # kill -9 (the file is left open, its WAL not checkpointed), restarted
        await stack.hs_update("contacts", known, {"lastname": "Two"})
        await stack.hs_create("contacts", {"email": "after-kill@example.com", "lastname": "New"})
        await synced(stack, "kept@example.com", "Two")
        await synced(stack, "after-kill@example.com", "New")

        async def moved_on() -> bool:
            return await committed() > before

        await eventually(moved_on, what="the restarted replica's links in the same file")
        assert path.stat().st_ino == inode  # resumed from it, not rebuilt
