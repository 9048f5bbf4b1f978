"""Dataverse's JSON error envelope and one constructor per documented error code.

Body shape (fact sheet §5): ``{"error": {"code": "0x8004...", "message": "..."}}``; ``innererror`` is not
sent (removed in 2020). Where the fact sheet leaves the HTTP status open (expired delta token), the
emulator's choice is noted on the constructor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

__all__ = [
    "DataverseError",
    "bad_request",
    "concurrency_limit",
    "duplicate_key",
    "etag_mismatch",
    "expired_oauth_token",
    "expired_version_stamp",
    "invalid_key",
    "not_found",
    "payload_error",
    "query_error",
    "record_exists",
    "request_limit",
    "tracking_option_not_supported",
    "unauthorized",
    "unavailable",
]


@dataclass
class DataverseError(Exception):
    """An API answer other than success; ``headers`` carry e.g. ``Retry-After``."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> bytes:
        return orjson.dumps({"error": {"code": self.code, "message": self.message}})


def bad_request(message: str, code: str = "0x80040203") -> DataverseError:
    """InvalidArgument-style 400s (malformed requests the fact sheet gives no own code for)."""
    return DataverseError(400, code, message)


def query_error(message: str) -> DataverseError:
    """OData query parse errors ($select/$filter/$orderby naming unknown columns, bad syntax)."""
    return DataverseError(400, "0x80060888", message)


def payload_error(entity_set: str, detail: str) -> DataverseError:
    """ODataClientPayloadError: a write body that does not fit the table (unknown column, wrong type)."""
    return DataverseError(
        400,
        "0x80048d19",
        f"Error identified in Payload provided by the user for Entity :'{entity_set}', "
        f"For more information on this error please follow this help link "
        f"https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : "
        f"Microsoft.OData.ODataException: {detail}",
    )


def user_disabled(user_id: str) -> DataverseError:
    """UserDisabled (0x80040225, Learn web-service-error-codes): a disabled user bound as a record's owner.
    403, as a real org answered it (``{"error":{"code":"0x80040225","message":"The specified user(Id =
    ...) is disabled. Consider enabling this user. ..."}}``)."""
    return DataverseError(
        403,
        "0x80040225",
        f"The specified user(Id = {user_id}) is disabled. Consider enabling this user. Additional Details: "
        "Disabled users cannot own records.",
    )


def not_found(logical_name: str, record_id: str) -> DataverseError:
    """ObjectDoesNotExist, HTTP 404."""
    return DataverseError(404, "0x80040217", f"{logical_name} With Id = {record_id} Does Not Exist")


def etag_mismatch() -> DataverseError:
    """A stale ``If-Match`` (ConcurrencyVersionMismatch), HTTP 412, with the body the conditional-operations
    page documents: an empty ``code`` (fact sheet §2.5 and §5, COND "Apply optimistic concurrency on delete":
    ``{"error":{"code":"","message":"The version of the existing record doesn't match the RowVersion
    property provided."}}``). Clients must decide by the status, never by a code that may be empty."""
    return DataverseError(
        412, "", "The version of the existing record doesn't match the RowVersion property provided."
    )


def record_exists() -> DataverseError:
    """``If-None-Match: *`` and the record exists: HTTP 412 with an empty code, as documented (fact sheet
    §2.4, COND "Limit upsert operations")."""
    return DataverseError(412, "", "A record with matching key values already exists.")


def duplicate_key(key_name: str, columns: tuple[str, ...]) -> DataverseError:
    """DuplicateRecordEntityKey: a create or update would give two rows the same alternate key."""
    return DataverseError(
        412,
        "0x80060892",
        f"Entity Key {key_name} violated. A record with the same value for {','.join(columns)} "
        "already exists. A duplicate record cannot be created. Try again with different values.",
    )


def invalid_key(logical_name: str) -> DataverseError:
    return DataverseError(
        400,
        "0x80060888",
        f"The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{logical_name}'. "
        "Ensure that the names and number of key properties match the declared or alternate key "
        f"properties for the resource 'Microsoft.Dynamics.CRM.{logical_name}'.",
    )


def tracking_option_not_supported(option: str) -> DataverseError:
    return query_error(f'The "${option}" query parameter isn\'t supported when Change Tracking is enabled.')


def expired_version_stamp() -> DataverseError:
    """ExpiredVersionStamp; the status is undocumented, the emulator answers 400 (fact sheet §8)."""
    return DataverseError(
        400, "0x80044352", "Version stamp associated with the client has expired. Please perform a full sync."
    )


def request_limit(limit: int, window_s: int, retry_after_s: int) -> DataverseError:
    return DataverseError(
        429,
        "0x80072322",
        f"Number of requests exceeded the limit of {limit} over time window of {window_s} seconds.",
        {"Retry-After": str(retry_after_s)},
    )


def concurrency_limit(limit: int, retry_after_s: int) -> DataverseError:
    return DataverseError(
        429,
        "0x80072326",
        f"Number of concurrent requests exceeded the limit of {limit}.",
        {"Retry-After": str(retry_after_s)},
    )


def unavailable() -> DataverseError:
    """An injected outage (fault knob ``error_rate``): 503, retriable, SQL-governor style message."""
    return DataverseError(
        503,
        "0x8004A001",
        "The server is busy and the request was not completed. Try the request again later.",
    )


def unauthorized(www_authenticate: str) -> DataverseError:
    """No bearer token, an unknown one, or one for another audience: 401 (compose page status table)."""
    return DataverseError(401, "", "", {"WWW-Authenticate": www_authenticate})


def expired_oauth_token(www_authenticate: str) -> DataverseError:
    return DataverseError(
        401, "0x80041d52", "The OAuth token has expired", {"WWW-Authenticate": www_authenticate}
    )
