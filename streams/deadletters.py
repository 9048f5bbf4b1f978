"""Dead letters: events that could not be applied after their retries, on the `deadletter` topic.

Key: the original message's key, so all dead letters of one record sit together. The original value is
kept whole (as text when it is UTF-8, else base64) so that `cdc deadletter redrive` can re-publish it.
"""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from streams.codec import Codec, Versioned


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
