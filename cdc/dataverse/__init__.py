"""Everything Dataverse: the Web API edge and what the daemon does with it.

- ``paths``: every Web API URL and metric label, and the table naming rule (``contact`` / ``contacts``);
- ``auth`` (msal tokens), ``client`` (aiohttp, retries, metrics), ``errors`` (answers sorted by what the
  caller does next);
- ``rows``: change-tracking rows -> change events (pure);
- ``poller``: the change-tracking poller of `cdc poll`;
- ``gateway`` (with ``_multipart``, the ``$batch`` body): the sync engine's `CrmGateway` port;
- ``provisioning`` and ``keys``: change tracking, columns and alternate keys for `cdc provision`.

It imports nothing of HubSpot's (`cdc.hubspot`); an import-linter contract holds it to that. This module
re-exports the edge (client, auth, errors, rows); the rest is imported by module.
"""

from cdc.dataverse.auth import DataverseAuthError, TokenProvider
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import (
    DataverseApiError,
    ExpiredDeltaTokenError,
    FatalError,
    RetriableError,
    UnauthorizedError,
    classify,
)
from cdc.dataverse.paths import entity_logical_name
from cdc.dataverse.rows import RowError, is_deleted_entry, row_to_event

__all__ = [
    "DataverseApiError",
    "DataverseAuthError",
    "DataverseClient",
    "ExpiredDeltaTokenError",
    "FatalError",
    "RetriableError",
    "RowError",
    "TokenProvider",
    "UnauthorizedError",
    "classify",
    "entity_logical_name",
    "is_deleted_entry",
    "row_to_event",
]
