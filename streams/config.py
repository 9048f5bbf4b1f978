"""The Kafka part of the settings tree: where the cluster is, how to authenticate, how topics are named.

It is a plain frozen pydantic model so that `streams` stays free of our settings loader; `cdc.settings`
nests it under `kafka` (env vars `CDC_KAFKA__...`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Compression = Literal["zstd", "lz4", "gzip", "snappy", "none"]


class KafkaSettings(BaseModel):
    """Connection, security and naming settings for one Kafka cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list of brokers to bootstrap from.",
        min_length=1,
    )
    client_id: str = Field(default="cdc", min_length=1)
    topic_prefix: str = Field(
        default="crm.",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prepended to every topic name of the catalog, e.g. 'crm.' gives 'crm.changes.hubspot'.",
    )
    replication_factor: int = Field(default=1, ge=1, description="Replication factor for created topics.")
    partitions: int = Field(
        default=6, ge=1, description="Partitions for the keyed, high-volume topics (changes, links, audit)."
    )
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    connect_timeout_s: float = Field(
        default=15.0, gt=0, description="How long a command waits for the cluster before it gives up."
    )
    compression: Compression = "zstd"

    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates."
    )
    ssl_certfile: Path | None = Field(default=None, description="Client certificate, for mutual TLS.")
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _security_is_complete(self) -> Self:
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and (
            self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username and "
                "sasl_password"
            )
        if not uses_sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism is set but security_protocol is {self.security_protocol}; "
                "use SASL_SSL or SASL_PLAINTEXT"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mutual TLS needs both)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {str(path)!r} is not a readable file")
        return self

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")
