"""HubSpot's JSON error body and one constructor per error the emulator answers.

Body (fact sheet §3.4): ``{"status": "error", "message", "correlationId", "category", "context"?,
"errors"?}``; 429s use ``errorType`` + ``policyName`` instead of ``category`` (§5.2). Where the fact sheet
has no wording (401, 404, 409 texts), the messages are the ones HubSpot's public API is widely seen to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HubSpotError",
    "bad_request",
    "batch_too_large",
    "conflict",
    "duplicate_ids",
    "expired",
    "invalid_property_values",
    "missing_scopes",
    "not_found",
    "object_not_found",
    "property_exists",
    "property_group_exists",
    "rate_limited",
    "rules_broken",
    "search_window_exceeded",
    "unauthorized",
    "unavailable",
]

DAILY_MESSAGE = "You have reached your daily limit."
TEN_SECONDLY_MESSAGE = "You have reached your ten_secondly_rolling limit."
SECONDLY_MESSAGE = "You have reached your secondly limit."


@dataclass
class HubSpotError(Exception):
    """An error answer: status plus the JSON fields beyond ``status``/``correlationId``."""

    status: int
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    def body(self, correlation_id: str, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id,
            **self.fields,
        }
        if self.status == 429:  # noqa: PLR2004 -- the 429 body names its request (fact sheet 5.2)
            body["requestId"] = request_id
        return body


def bad_request(message: str, **context: list[str]) -> HubSpotError:
    fields: dict[str, Any] = {"category": "VALIDATION_ERROR"}
    if context:
        fields["context"] = context
    return HubSpotError(400, message, fields)


def unauthorized() -> HubSpotError:
    return HubSpotError(
        401,
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        {"category": "INVALID_AUTHENTICATION"},
    )


def expired(seconds_ago: float) -> HubSpotError:
    """An OAuth access token past its end (useparagon.com's page on HubSpot's EXPIRED_AUTHENTICATION)."""
    minutes = max(0, int(seconds_ago // 60))
    return HubSpotError(
        401,
        f"The OAuth token used to make this call expired {minutes} minute(s) ago.",
        {"category": "EXPIRED_AUTHENTICATION"},
    )


def missing_scopes(scopes: tuple[str, ...]) -> HubSpotError:
    """A token without any of ``scopes``: 403 ``MISSING_SCOPES`` naming them under
    ``errors[].context.requiredGranularScopes`` (HubSpot/hubspot-api-nodejs issue 268 shows the shape with
    ``requiredScopes``; integrations report ``requiredGranularScopes`` from live portals)."""
    return HubSpotError(
        403,
        "This app hasn't been granted all required scopes to make this call. Read more about required "
        "scopes here: https://developers.hubspot.com/scopes.",
        {
            "errors": [
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": list(scopes)},
                }
            ],
            "links": {"scopes": "https://developers.hubspot.com/scopes"},
            "category": "MISSING_SCOPES",
        },
    )


def not_found(message: str = "resource not found") -> HubSpotError:
    return HubSpotError(404, message, {"category": "OBJECT_NOT_FOUND"})


def object_not_found(object_id: str) -> HubSpotError:
    return HubSpotError(
        404,
        "Object not found.  objectId are usually numeric.",
        {"category": "OBJECT_NOT_FOUND", "context": {"id": [object_id]}},
    )


def conflict(singular_label: str, existing_id: str) -> HubSpotError:
    """A unique value (contact email, custom unique property) already belongs to another record."""
    return HubSpotError(
        409, f"{singular_label} already exists. Existing ID: {existing_id}", {"category": "CONFLICT"}
    )


def property_exists(name: str) -> HubSpotError:
    return HubSpotError(
        409, f"Property named '{name}' already exists.", {"category": "OBJECT_ALREADY_EXISTS"}
    )


def property_group_exists(name: str) -> HubSpotError:
    return HubSpotError(
        409, f"A property group named '{name}' already exists.", {"category": "OBJECT_ALREADY_EXISTS"}
    )


def invalid_property_values(problems: list[tuple[str, str, str]]) -> HubSpotError:
    """``problems``: (property name, error code, message), e.g. ``PROPERTY_DOESNT_EXIST``."""
    return HubSpotError(
        400,
        "Property values were not valid: " + "; ".join(message for _, _, message in problems),
        {
            "category": "VALIDATION_ERROR",
            "errors": [
                {"message": message, "code": code, "context": {"propertyName": [name]}}
                for name, code, message in problems
            ],
        },
    )


def rules_broken(problems: list[tuple[str, str, str]]) -> HubSpotError:
    """Admin-configured validation rules a 2026-09 write breaks: ``problems`` are (property name, code:
    ``MISSING_REQUIRED_PROPERTY`` or ``MISSING_CONDITIONAL_REQUIRED_PROPERTY``, the rule's message). The
    shape of the changelog's example (hs:changelog/crm-api-write-validation-enforcement): 400,
    ``VALIDATION_ERROR``, ``errors[].code`` and ``context.propertyName``; the top message is ours."""
    return HubSpotError(
        400,
        "; ".join(dict.fromkeys(message for _, _, message in problems)),
        {
            "category": "VALIDATION_ERROR",
            "errors": [
                {"message": message, "code": code, "context": {"propertyName": [name]}}
                for name, code, message in problems
            ],
        },
    )


def duplicate_ids(ids: list[str]) -> HubSpotError:
    shown = ", ".join(ids)
    return HubSpotError(
        400,
        f"Duplicate IDs found in batch input: [{shown}]. IDs must be unique",
        {"category": "VALIDATION_ERROR", "context": {"ids": ids}},
    )


def batch_too_large(limit: int, given: int) -> HubSpotError:
    return bad_request(f"Batch input too large: {given} inputs given, at most {limit} allowed")


def search_window_exceeded() -> HubSpotError:
    return bad_request("The search API returns at most 10000 results per query; refine the filters")


def rate_limited(policy: str) -> HubSpotError:
    """429 in the documented shape; ``policy`` is ``DAILY``, ``TEN_SECONDLY_ROLLING`` or ``SECONDLY``.

    The app adds ``requestId`` (and the correlation id) from its seeded generator when it answers.
    """
    message = {"DAILY": DAILY_MESSAGE, "SECONDLY": SECONDLY_MESSAGE}.get(policy, TEN_SECONDLY_MESSAGE)
    return HubSpotError(429, message, {"errorType": "RATE_LIMIT", "policyName": policy})


def unavailable() -> HubSpotError:
    return HubSpotError(503, "Service Unavailable", {"category": "SERVICE_UNAVAILABLE"})
