"""Kafka-facing building blocks that know no CRM: topics, schemas, keys, codecs, clients, stores."""

__all__: list[str] = []
