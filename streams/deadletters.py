"""Dead letters: events that could not be applied after their retries, on the `deadletter` topic.

Key: the original message's key, so all dead letters of one record sit together. The original value is
kept whole (as text when it is UTF-8, else base64) so that `cdc deadletter redrive` can re-publish it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from streams.codec import SCHEMA_HEADER, Codec, Position, Versioned

WEBHOOK_STEP = "webhook"
"""The ``step`` of a HubSpot webhook event the receiver could not read: it never was a change event, so
its letter is kept to be read (`cdc deadletter show`), not redriven onto a changes topic."""


class DeadLetter(Versioned):
    """One message that failed, where it came from, and why."""

    SCHEMA: ClassVar[str] = "deadletter"

    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: str | None = None
    value: str | None = None
    value_encoding: Literal["utf-8", "base64"] = "utf-8"
    step: str | None = Field(default=None, description="The sync step that failed, when one was chosen.")
    error_class: str = Field(
        min_length=1, description="The error's kind, e.g. SchemaError or RecordRejected."
    )
    error: str = Field(min_length=1)
    attempts: int = Field(default=1, ge=1)
    failed_at: AwareDatetime

    @model_validator(mode="after")
    def _value_matches_encoding(self) -> Self:
        if self.value is not None and self.value_encoding == "base64":
            try:
                base64.b64decode(self.value, validate=True)
            except binascii.Error:
                raise ValueError("value is not valid base64") from None
        return self

    @staticmethod
    def wrap_value(raw: bytes | None) -> tuple[str | None, Literal["utf-8", "base64"]]:
        """The original bytes as (text, encoding) for the record."""
        if raw is None:
            return None, "utf-8"
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"

    def original_value(self) -> bytes | None:
        if self.value is None:
            return None
        if self.value_encoding == "base64":
            return base64.b64decode(self.value)
        return self.value.encode("utf-8")


DEADLETTER_CODEC: Codec[DeadLetter] = Codec(DeadLetter)


class Redrive(Versioned):
    """A marker on the `deadletter` topic: the dead letter at (partition, offset) was re-published.

    Written in one Kafka transaction with the re-published message, so a dead letter is re-sent once:
    `cdc deadletter list` shows it as redriven and a second redrive skips it. Readers tell the two record
    kinds apart by the ``cdc-schema`` header (:func:`decode_deadletter_topic`).
    """

    SCHEMA: ClassVar[str] = "redrive"

    deadletter_partition: int = Field(ge=0)
    deadletter_offset: int = Field(ge=0)
    topic: str = Field(min_length=1, description="Where the original value was re-published.")
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    redriven_at: AwareDatetime


REDRIVE_CODEC: Codec[Redrive] = Codec(Redrive)


def decode_deadletter_topic(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], where: Position
) -> DeadLetter | Redrive:
    """A record of the `deadletter` topic: a dead letter, or a redrive marker (by its schema header)."""
    for name, raw in headers:
        if name == SCHEMA_HEADER and raw.startswith(f"{Redrive.SCHEMA}.".encode()):
            return REDRIVE_CODEC.decode(value, where)
    return DEADLETTER_CODEC.decode(value, where)
