"""The status + error code -> error class mapping: pure, no I/O (the retry policy: `test_retries.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.dataverse.errors import (
    DataverseApiError,
    ExpiredDeltaTokenError,
    FatalError,
    RetriableError,
    UnauthorizedError,
    classify,
    retry_after_seconds,
)


def body(code: str, message: str = "m") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize("status", [200, 204, 304])
def test_success_is_no_error(status: int) -> None:
    assert classify(status, None, {}) is None


@pytest.mark.parametrize("status", [400, 404, 500])
def test_an_expired_version_stamp_means_a_full_pass_whatever_the_status(status: int) -> None:
    error = classify(status, body("0x80044352", "Version stamp ... expired"), {}, endpoint="contacts:track")
    assert isinstance(error, ExpiredDeltaTokenError)
    assert error.endpoint == "contacts:track"
    assert "0x80044352" in str(error)


def test_the_code_is_matched_case_insensitively() -> None:
    assert isinstance(classify(400, body("0X80044352"), {}), ExpiredDeltaTokenError)


@pytest.mark.parametrize("code", ["0x80072322", "0x80072321", "0x80072326"])
def test_a_429_waits_retry_after(code: str) -> None:
    error = classify(429, body(code), {"Retry-After": "7"})
    assert isinstance(error, RetriableError)
    assert error.retry_after == 7.0


def test_a_429_without_retry_after_falls_back_to_backoff() -> None:
    error = classify(429, None, {})
    assert isinstance(error, RetriableError)
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (500, None),
        (502, "not json"),
        (503, body("")),
        (504, {}),
        (400, body("0x80073000")),
        (400, body("0x8004A001")),
    ],
)
def test_server_errors_and_transient_sql_codes_are_retriable(status: int, payload: Any) -> None:
    assert isinstance(classify(status, payload, {}), RetriableError)


@pytest.mark.parametrize(("status", "code"), [(401, ""), (401, "0x80041d52"), (400, "0x8004A101")])
def test_a_refused_token_is_unauthorized(status: int, code: str) -> None:
    error = classify(status, body(code), {})
    assert isinstance(error, UnauthorizedError)
    assert isinstance(error, FatalError)  # when renewing once did not help


@pytest.mark.parametrize(
    ("status", "code"), [(400, "0x80060888"), (403, "0x80040220"), (404, "0x80040217"), (405, ""), (412, "")]
)
def test_everything_else_is_fatal(status: int, code: str) -> None:
    error = classify(status, body(code, "why"), {})
    assert type(error) is FatalError
    assert error.status == status
    assert error.message == "why"


def test_an_empty_body_still_says_the_status() -> None:
    error = classify(403, None, {})
    assert isinstance(error, DataverseApiError)
    assert error.message == "HTTP 403"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"Retry-After": "999999"}, 3600.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
    ],
)
def test_retry_after_is_seconds_bounded(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected
