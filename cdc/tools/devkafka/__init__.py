"""A real local Apache Kafka from its Maven jars (`LocalKafka`), and pytest fixtures for it."""

from cdc.tools.devkafka.runner import KafkaRunnerError, LocalKafka, kafka_version, resolve_jars

__all__ = ["KafkaRunnerError", "LocalKafka", "kafka_version", "resolve_jars"]
