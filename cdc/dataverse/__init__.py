"""The Dataverse Web API edge: msal tokens, the aiohttp client, error classes and row conversion."""

from cdc.dataverse.auth import DataverseAuthError, TokenProvider
from cdc.dataverse.client import DataverseClient, RetryPolicy
from cdc.dataverse.errors import (
    DataverseApiError,
    ExpiredDeltaTokenError,
    FatalError,
    RetriableError,
    UnauthorizedError,
    classify,
)
from cdc.dataverse.rows import RowError, entity_logical_name, is_deleted_entry, row_to_event

__all__ = [
    "DataverseApiError",
    "DataverseAuthError",
    "DataverseClient",
    "ExpiredDeltaTokenError",
    "FatalError",
    "RetriableError",
    "RetryPolicy",
    "RowError",
    "TokenProvider",
    "UnauthorizedError",
    "classify",
    "entity_logical_name",
    "is_deleted_entry",
    "row_to_event",
]
