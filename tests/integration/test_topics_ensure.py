"""`cdc topics ensure` creates the catalog, is a no-op the second time, and reports drift clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from aiokafka.admin import NewTopic

from streams.admin import describe, ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog, TopicRole

pytestmark = pytest.mark.kafka


async def test_ensure_creates_every_topic_then_is_a_no_op(kafka_settings: KafkaSettings) -> None:
    catalog = TopicCatalog.from_settings(kafka_settings)
    async with open_admin(kafka_settings) as admin:
        first = await ensure_topics(admin, catalog)
        second = await ensure_topics(admin, catalog)
        actual = await describe(admin, [spec.name for spec in catalog])

    assert sorted(first.created) == sorted(spec.name for spec in catalog)
    assert second.created == []
    assert sorted(second.existing) == sorted(first.created)
    assert second.ok
    links = actual[catalog.name(TopicRole.LINKS)]
    assert links.config["cleanup.policy"] == "compact"
    assert links.partitions == kafka_settings.partitions
    assert actual[catalog.name(TopicRole.CHECKPOINTS)].config["cleanup.policy"] == "compact"
    assert actual[catalog.name(TopicRole.AUDIT)].config["retention.ms"] == str(30 * 24 * 3600 * 1000)


async def test_ensure_reports_a_links_topic_that_is_not_compacted(kafka_settings: KafkaSettings) -> None:
    catalog = TopicCatalog.from_settings(kafka_settings)
    links = catalog.name(TopicRole.LINKS)
    async with open_admin(kafka_settings) as admin:
        await admin.create_topics([NewTopic(links, 1, 1, topic_configs={"cleanup.policy": "delete"})])
        report = await ensure_topics(admin, catalog)

    assert not report.ok
    assert links not in report.created
    assert report.drifted[links] == [
        "has 1 partitions, the catalog needs at least 3",
        "cleanup.policy=delete but the catalog needs cleanup.policy=compact",
    ]
    assert set(report.created) == {spec.name for spec in catalog} - {links}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdc", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def test_cli_ensure_twice_then_drift_exits_3_with_the_reason(kafka_settings: KafkaSettings) -> None:
    env = {
        **os.environ,
        "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CDC_KAFKA__TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    first = run_cli("topics", "ensure", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(TopicCatalog.from_settings(kafka_settings).topics)
    again = run_cli("topics", "ensure", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert '"created": []' in again.stdout

    drifted = run_cli("topics", "ensure", env={**env, "CDC_KAFKA__PARTITIONS": "12"})
    assert drifted.returncode == 3
    assert (
        f"{kafka_settings.topic_prefix}links has 6 partitions, the catalog needs at least 12"
        in drifted.stderr
    )
    assert drifted.stderr.startswith("cdc: error:")
    assert "Traceback" not in drifted.stderr


def test_cli_ensure_against_an_unreachable_cluster_says_what_to_check() -> None:
    env = {**os.environ, "CDC_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1", "CDC_KAFKA__CONNECT_TIMEOUT_S": "3"}
    result = run_cli("topics", "ensure", env=env)
    assert result.returncode == 69
    assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]], (
        f"expected one line, got: {result.stderr}"
    )
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert "CDC_KAFKA__BOOTSTRAP_SERVERS" in result.stderr
