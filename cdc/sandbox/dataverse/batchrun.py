"""Running a ``$batch`` (fact sheet §2.7): parts in order; a change set inside one store transaction
(any failure rolls the whole set back and answers only the failing response); the batch stops at the
first failure unless ``Prefer: odata.continue-on-error``. ``$n`` in a URL or an ``@odata.bind`` value
names the record written by the part with ``Content-ID: n`` in the same change set.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.batch import (
    BatchRequest,
    BatchResponse,
    BatchSyntaxError,
    ChangeSet,
    build_response,
    parse_request,
)
from cdc.sandbox.dataverse.context import API_PREFIX, ApiRequest, Outcome
from cdc.sandbox.dataverse.webapi import WebApi

__all__ = ["MAX_BATCH_REQUESTS", "run_batch"]

MAX_BATCH_REQUESTS = 1000
_REFERENCE = re.compile(r"^\$(\d+)")


class _ChangeSetFailedError(Exception):
    def __init__(self, response: BatchResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _reference(text: str, ids: dict[str, str]) -> str:
    match = _REFERENCE.match(text)
    if match is None:
        return text
    if match.group(1) not in ids:
        raise errors.bad_request(
            f"Content-ID Reference: '${match.group(1)}' does not exist in the batch context."
        )
    return ids[match.group(1)] + text[match.end() :]


def _body(text: str, ids: dict[str, str]) -> bytes:
    if not text.strip() or not ids:
        return text.encode()
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.encode()
    if isinstance(body, dict):
        body = {
            k: _reference(v, ids) if k.endswith("@odata.bind") and isinstance(v, str) else v
            for k, v in body.items()
        }
    return orjson.dumps(body)


def _sub_request(batch: ApiRequest, part: BatchRequest, ids: dict[str, str]) -> ApiRequest:
    url = urlsplit(_reference(part.url, ids))
    path = url.path
    if path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) + 1 :]
    elif path.startswith("/"):
        raise errors.bad_request(f"The batch part URL '{part.url}' is not below {API_PREFIX}.")
    prefer = tuple(v for k, v in part.headers.items() if k == "prefer")
    return ApiRequest(
        part.method, path, dict(parse_qsl(url.query)), part.headers, _body(part.body, ids), batch.org, prefer
    )


def _as_response(outcome: Outcome, content_id: str | None) -> BatchResponse:
    headers = {k: v for k, v in outcome.headers.items() if k.lower() != "content-length"}
    return BatchResponse(outcome.status, headers, outcome.body.decode(), content_id)


def _error_response(error: errors.DataverseError, content_id: str | None) -> BatchResponse:
    headers = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    return BatchResponse(error.status, headers, error.body().decode(), content_id)


def _run_one(
    api: WebApi, batch: ApiRequest, part: BatchRequest, ids: dict[str, str]
) -> tuple[BatchResponse, Outcome | None]:
    try:
        sub = _sub_request(batch, part, ids)
    except errors.DataverseError as error:
        return _error_response(error, part.content_id), None
    if sub.path == "$batch":
        return _error_response(
            errors.bad_request("Nested $batch requests are not supported."), part.content_id
        ), None
    outcome = api.execute(sub)
    return _as_response(outcome, part.content_id), outcome


def _run_changeset(
    api: WebApi, batch: ApiRequest, changeset: ChangeSet
) -> list[BatchResponse] | BatchResponse:
    ids: dict[str, str] = {}
    done: list[BatchResponse] = []
    try:
        with api.store.transaction():
            for part in changeset.requests:
                if part.method == "GET":
                    error = errors.bad_request("GET requests are not allowed inside a change set.")
                    raise _ChangeSetFailedError(_error_response(error, part.content_id))  # noqa: TRY301 -- unwinds the transaction
                response, outcome = _run_one(api, batch, part, ids)
                if response.status >= 400:  # noqa: PLR2004 -- HTTP error class
                    raise _ChangeSetFailedError(response)  # noqa: TRY301 -- unwinds the transaction
                if part.content_id and outcome is not None and outcome.entity_url:
                    ids[part.content_id] = outcome.entity_url
                done.append(response)
    except _ChangeSetFailedError as failed:
        return failed.response
    return done


def run_batch(api: WebApi, request: ApiRequest) -> Outcome:
    try:
        parts = parse_request(request.body, request.headers.get("content-type", ""))
    except (BatchSyntaxError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"Invalid batch request: {exc}") from exc
    total = sum(len(p.requests) if isinstance(p, ChangeSet) else 1 for p in parts)
    if total > MAX_BATCH_REQUESTS:
        raise errors.bad_request(f"The batch contains {total} requests; the limit is {MAX_BATCH_REQUESTS}.")
    continue_on_error = request.prefer.continue_on_error
    responses: list[BatchResponse | list[BatchResponse]] = []
    changeset_ids: list[str] = []
    for part in parts:
        result: Any
        if isinstance(part, ChangeSet):
            result = _run_changeset(api, request, part)
            if isinstance(result, list):
                changeset_ids.append(api.store.new_id())
        else:
            result, _ = _run_one(api, request, part, {})
        responses.append(result)
        failed = isinstance(result, BatchResponse) and result.status >= 400  # noqa: PLR2004 -- HTTP error class
        if failed and not continue_on_error:
            break
    boundary = f"batchresponse_{api.store.new_id()}"
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"}
    if continue_on_error:
        headers["Preference-Applied"] = "odata.continue-on-error"
    return Outcome(200, headers, build_response(responses, boundary, changeset_ids))
