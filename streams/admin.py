"""Make the cluster match the topic catalog: create what is missing, report what drifted.

Creating is idempotent (a topic created concurrently by another replica counts as existing). Drift is
never "fixed" silently: fewer partitions than the catalog breaks per-record ordering assumptions of a
running group, and a `links` topic that is not compacted loses links; both need a human decision.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from streams.clients import make_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog, TopicSpec

TOPIC_ALREADY_EXISTS = 36


class TopicAdminError(RuntimeError):
    """The cluster refused a topic operation; the message names the topic and Kafka's reason."""


@dataclass(frozen=True)
class ActualTopic:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


def drift(spec: TopicSpec, actual: ActualTopic) -> list[str]:
    """What differs between the catalog's topic and the cluster's, in words an operator can act on.

    More partitions or replicas than the catalog asks for are fine (an operator may have scaled up);
    fewer are drift, as is any catalog config with another value.
    """
    problems = []
    if actual.partitions < spec.partitions:
        problems.append(f"has {actual.partitions} partitions, the catalog needs at least {spec.partitions}")
    if actual.replication_factor < spec.replication_factor:
        problems.append(
            f"has replication factor {actual.replication_factor}, the catalog needs {spec.replication_factor}"
        )
    for key, wanted in sorted(spec.config.items()):
        have = actual.config.get(key)
        if have != wanted:
            problems.append(f"{key}={have} but the catalog needs {key}={wanted}")
    return problems


@dataclass
class EnsureReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drifted: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.drifted

    def as_json(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "drift": self.drifted, "ok": self.ok}


async def describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, ActualTopic]:
    """The named topics that exist, with their partition count, replication and topic-level configs."""
    metadata = {topic["topic"]: topic for topic in await admin.describe_topics() if topic["topic"] in names}
    if not metadata:
        return {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in metadata]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise TopicAdminError(
                    f"cannot read the configs of {resource['resource_name']}: {resource['error_message']}"
                )
            configs[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    return {
        name: ActualTopic(
            name=name,
            partitions=len(topic["partitions"]),
            replication_factor=max((len(p["replicas"]) for p in topic["partitions"]), default=0),
            config=configs.get(name, {}),
        )
        for name, topic in metadata.items()
    }


DESCRIBE_RETRIES = 10


async def ensure_topics(admin: AIOKafkaAdminClient, catalog: TopicCatalog) -> EnsureReport:
    """Create the catalog's missing topics; describe the rest and report drift."""
    report = EnsureReport()
    names = [spec.name for spec in catalog]
    existing = await describe(admin, names)
    missing = [spec for spec in catalog if spec.name not in existing]
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config))
                for spec in missing
            ]
        )
        for result in response.to_object()["topic_errors"]:
            code = result["error_code"]
            if code == 0:
                report.created.append(result["topic"])
            elif code != TOPIC_ALREADY_EXISTS:  # lost a race with another replica: check it below
                raise TopicAdminError(
                    f"cannot create topic {result['topic']}: {result.get('error_message') or f'error {code}'}"
                )
    to_check = [spec for spec in catalog if spec.name not in report.created]
    actual = await describe(admin, [spec.name for spec in to_check]) if to_check else {}
    for _ in range(DESCRIBE_RETRIES):
        # A topic created a moment ago (by us or another replica) may not be in every broker's metadata yet.
        unseen = [spec.name for spec in to_check if spec.name not in actual]
        if not unseen:
            break
        await asyncio.sleep(0.2)
        actual.update(await describe(admin, unseen))
    for spec in to_check:
        if spec.name not in actual:
            raise TopicAdminError(f"topic {spec.name} was reported to exist but cannot be described")
        report.existing.append(spec.name)
        problems = drift(spec, actual[spec.name])
        if problems:
            report.drifted[spec.name] = problems
    return report


class KafkaUnavailableError(ConnectionError):
    """The cluster did not answer; the message names the bootstrap servers and the setting to check."""


@contextlib.asynccontextmanager
async def open_admin(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, or :class:`KafkaUnavailableError` within ``kafka.connect_timeout_s``."""
    admin = make_admin(kafka)
    try:
        await asyncio.wait_for(admin.start(), kafka.connect_timeout_s)
    except (TimeoutError, KafkaError, OSError) as error:
        await admin.close()
        reason = str(error) or type(error).__name__
        raise KafkaUnavailableError(
            f"cannot reach Kafka at {kafka.bootstrap_servers} within {kafka.connect_timeout_s:g}s "
            f"({reason}); "
            "check CDC_KAFKA__BOOTSTRAP_SERVERS and the security settings"
        ) from None
    try:
        yield admin
    finally:
        await admin.close()


async def cluster_id(kafka: KafkaSettings) -> str:
    """The cluster's id, which a local copy of a topic records so it is never read against another cluster."""
    async with open_admin(kafka) as admin:
        return str((await admin.describe_cluster())["cluster_id"])
