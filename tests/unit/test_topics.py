"""The topic catalog and the drift rules, without a broker."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from click.testing import CliRunner

from cdc.cli import cli
from streams.admin import ActualTopic, drift
from streams.config import KafkaSettings
from streams.keys import SourceSystem
from streams.topics import LEASE_PARTITIONS, TopicCatalog, TopicRole


def test_catalog_has_every_topic_under_the_prefix() -> None:
    catalog = TopicCatalog.from_settings(KafkaSettings(topic_prefix="acme."))
    assert [spec.name for spec in catalog] == [
        "acme.changes.hubspot",
        "acme.changes.dataverse",
        "acme.links",
        "acme.checkpoints",
        "acme.deadletter",
        "acme.audit",
        "acme.poll.leases",
        "acme.sync.work",
        "acme.sync.sent",
        "acme.budget",
        "acme.exclusions",
        "acme.control",
        "acme.sync.parked",
    ]
    assert catalog[TopicRole.LINKS].config["cleanup.policy"] == "compact"
    assert catalog[TopicRole.CHECKPOINTS].config["cleanup.policy"] == "compact"
    assert catalog[TopicRole.SENT].config["cleanup.policy"] == "compact"
    assert catalog[TopicRole.EXCLUSIONS].config["cleanup.policy"] == "compact"
    assert catalog[TopicRole.AUDIT].config["cleanup.policy"] == "delete"
    assert "retention.ms" in catalog[TopicRole.AUDIT].config


def test_each_source_system_has_its_changes_topic() -> None:
    catalog = TopicCatalog.from_settings(KafkaSettings(topic_prefix="acme."))
    assert catalog.changes_topic(SourceSystem.HUBSPOT) == "acme.changes.hubspot"
    assert catalog.changes_topic(SourceSystem.DATAVERSE) == "acme.changes.dataverse"
    assert {catalog.changes_topic(system) for system in SourceSystem} == {
        catalog.name(TopicRole.CHANGES_HUBSPOT),
        catalog.name(TopicRole.CHANGES_DATAVERSE),
    }


def test_the_lease_topic_has_a_fixed_partition_count_whatever_the_settings() -> None:
    # Every replica maps a table to a partition by hashing over this count: it must not follow settings.
    for partitions in (1, 6, 48):
        spec = TopicCatalog.from_settings(KafkaSettings(partitions=partitions))[TopicRole.POLL_LEASES]
        assert spec.partitions == LEASE_PARTITIONS == 16
        assert spec.config["cleanup.policy"] == "delete"


def test_replicated_clusters_get_min_insync_replicas() -> None:
    single = TopicCatalog.from_settings(KafkaSettings())
    replicated = TopicCatalog.from_settings(KafkaSettings(replication_factor=3))
    assert "min.insync.replicas" not in single[TopicRole.LINKS].config
    assert replicated[TopicRole.LINKS].config["min.insync.replicas"] == "2"
    assert all(spec.replication_factor == 3 for spec in replicated)


def test_invalid_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="topic_prefix"):
        KafkaSettings(topic_prefix="has space")


def actual(spec_name: str, partitions: int, rf: int, **config: str) -> ActualTopic:
    return ActualTopic(spec_name, partitions, rf, MappingProxyType(config))


def test_drift_lists_each_difference() -> None:
    spec = TopicCatalog.from_settings(KafkaSettings(partitions=6, replication_factor=3))[TopicRole.LINKS]
    assert drift(spec, actual(spec.name, 6, 3, **spec.config)) == []
    assert drift(spec, actual(spec.name, 12, 5, **spec.config, **{"segment.ms": "1"})) == []
    assert drift(spec, actual(spec.name, 2, 1, **{"cleanup.policy": "delete"})) == [
        "has 2 partitions, the catalog needs at least 6",
        "has replication factor 1, the catalog needs 3",
        "cleanup.policy=delete but the catalog needs cleanup.policy=compact",
        "min.compaction.lag.ms=None but the catalog needs min.compaction.lag.ms=0",
        "min.insync.replicas=None but the catalog needs min.insync.replicas=2",
    ]


def test_cli_describe_json_is_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_KAFKA__TOPIC_PREFIX", "x.")
    result = CliRunner().invoke(cli, ["topics", "describe", "--json"])
    assert result.exit_code == 0, result.output
    import orjson  # noqa: PLC0415

    topics = orjson.loads(result.output)
    assert {"name", "partitions", "replication_factor", "config"} <= set(topics[0])
    assert [t["name"] for t in topics][2] == "x.links"
    assert topics[2]["config"]["cleanup.policy"] == "compact"
