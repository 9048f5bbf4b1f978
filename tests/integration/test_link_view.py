"""The sync's link view tails the links topic; after a rebalance the apply loop waits until the view holds
every link committed so far (`LinkView.caught_up`), so a partition's new owner plans with the links its
old owner committed rather than a copy its tail has not caught up with (which the chaos test showed: stale
fingerprints, and a link written at a revision already taken)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from streams.admin import ensure_topics, open_admin
from streams.clients import make_producer
from streams.config import KafkaSettings
from streams.link_view import LinkView
from streams.links import LINK_CODEC, link_key
from streams.topics import TopicCatalog, TopicRole
from tests.integration.test_compaction import make_link

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_caught_up_returns_once_every_committed_link_is_in_the_view(
    kafka_settings: KafkaSettings,
) -> None:
    catalog = TopicCatalog.from_settings(kafka_settings)
    async with open_admin(kafka_settings) as admin:
        await ensure_topics(admin, catalog)
    view = LinkView(kafka_settings, catalog)
    await view.load()
    stop = asyncio.Event()
    tail = asyncio.create_task(view.run(stop))
    try:
        producer = make_producer(kafka_settings)
        await producer.start()
        try:
            links = [make_link(n, 1) for n in range(500)]
            for link in links:
                await producer.send(
                    catalog.name(TopicRole.LINKS),
                    key=link_key(link.link_id).encode(),
                    value=LINK_CODEC.encode(link),
                )
            await producer.flush()
        finally:
            await producer.stop()
        assert await view.caught_up(stop)
        assert len(view.index) == len(links)
        assert await view.caught_up(stop)  # nothing new: at once
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await tail
