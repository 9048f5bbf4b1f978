"""Kafka message keys and the record reference they are made from.

Every keyed topic uses a '/'-separated string whose parts are percent-encoded, so that a part holding a
'/' (a Dataverse org URL path, an odd custom object name) can never shift the others:

- change events and audit records: ``<system>/<tenant>/<object_type>/<object_id>``,
  e.g. ``hubspot/1234567/contact/51`` or ``dataverse/contoso.crm.dynamics.com/contact/6f1d...``;
- links: ``link/<link_id>`` (see `streams.links`);
- checkpoints: ``checkpoint/<system>/<tenant>/<object_type>`` (see `streams.checkpoints`).

Keys are UTF-8 bytes on the wire.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field


class SourceSystem(StrEnum):
    HUBSPOT = "hubspot"
    DATAVERSE = "dataverse"

    @property
    def other(self) -> SourceSystem:
        return SourceSystem.DATAVERSE if self is SourceSystem.HUBSPOT else SourceSystem.HUBSPOT


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
"""What `quote` leaves as it is: a part made only of these is its own encoding (most ids are)."""


def join_key(*parts: str) -> str:
    """Join parts into a key, percent-encoding each so that '/' only ever separates."""
    return "/".join([_encoded(part) for part in parts])


@functools.lru_cache(maxsize=16_384)
def _encoded(part: str) -> str:
    """One part, percent-encoded. Kept: the router and the applier key every change several times, and
    most parts repeat (systems, tenants, object types; a tenant with a port, as a local Dataverse has, is
    not its own encoding). `quote` is slow in pure Python (half a link's indexing time in the link store):
    skipped when a no-op."""
    return part if _UNRESERVED.fullmatch(part) else quote(part, safe="")


def split_key(key: str) -> list[str]:
    parts = key.split("/")
    return [unquote(part) for part in parts] if "%" in key else parts


class RecordRef(BaseModel):
    """One record in one CRM: the identity every event, link side and audit entry carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: SourceSystem
    tenant: str = Field(min_length=1, description="HubSpot portal id or Dataverse organization host.")
    object_type: str = Field(
        min_length=1, description="e.g. contact, company, deal; account, opportunity, lead."
    )
    object_id: str = Field(min_length=1, description="HubSpot record id (a string: ids exceed 2^31) or GUID.")

    @property
    def key(self) -> str:
        return join_key(self.system, self.tenant, self.object_type, self.object_id)

    @classmethod
    def from_key(cls, key: str) -> RecordRef:
        parts = split_key(key)
        if len(parts) != 4:  # noqa: PLR2004 -- system/tenant/object_type/object_id
            raise ValueError(f"not a record key (system/tenant/object_type/object_id): {key!r}")
        system, tenant, object_type, object_id = parts
        return cls(system=SourceSystem(system), tenant=tenant, object_type=object_type, object_id=object_id)
