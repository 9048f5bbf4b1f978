"""``$batch`` bodies (fact sheet §2.7): parse a multipart/mixed request into parts and change sets, and
build the multipart/mixed response. Pure text handling; running the parts is the Web API's job.

Line ends are read as CRLF or LF and written as CRLF. A part inside a change set keeps its
``Content-ID`` so later parts can say ``$1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "BatchRequest",
    "BatchResponse",
    "BatchSyntaxError",
    "ChangeSet",
    "boundary_of",
    "build_request",
    "build_response",
    "parse_request",
]

_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";,\s]+)"?', re.IGNORECASE)


class BatchSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class BatchRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: str = ""
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    requests: list[BatchRequest]


@dataclass(frozen=True)
class BatchResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    content_id: str | None = None


def boundary_of(content_type: str) -> str:
    if not content_type.lower().startswith("multipart/mixed"):
        raise BatchSyntaxError("The batch request must have a multipart/mixed content type.")
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise BatchSyntaxError("The multipart/mixed content type has no boundary.")
    return match.group(1)


def _split(text: str, boundary: str) -> list[str]:
    parts: list[str] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        stripped = line.rstrip()
        if stripped == f"--{boundary}--":
            if current is not None:
                parts.append("\n".join(current))
            return parts
        if stripped == f"--{boundary}":
            if current is not None:
                parts.append("\n".join(current))
            current = []
        elif current is not None:
            current.append(line)
    raise BatchSyntaxError(f"The batch is missing its closing boundary '--{boundary}--'.")


def _headers_and_body(text: str) -> tuple[dict[str, str], str]:
    """Header lines up to the first empty line, then the body (which may be empty)."""
    lines = text.split("\n")
    headers: dict[str, str] = {}
    for index, line in enumerate(lines):
        if not line.strip():
            return headers, "\n".join(lines[index + 1 :])
        name, sep, value = line.partition(":")
        if not sep:
            raise BatchSyntaxError(f"Malformed header line '{line}'.")
        headers[name.strip().lower()] = value.strip()
    return headers, ""


def _request(text: str, content_id: str | None) -> BatchRequest:
    mime, inner = _headers_and_body(text)
    if not mime.get("content-type", "").lower().startswith("application/http"):
        raise BatchSyntaxError("Each batch part must have Content-Type application/http.")
    request_line, _, rest = inner.lstrip("\n").partition("\n")
    words = request_line.split()
    if len(words) < 2:  # noqa: PLR2004 -- method and URL at least
        raise BatchSyntaxError(f"Malformed request line '{request_line}'.")
    headers, body = _headers_and_body(rest)
    return BatchRequest(
        words[0].upper(), words[1], headers, body.strip("\n"), content_id or mime.get("content-id")
    )


def parse_request(body: bytes, content_type: str) -> list[BatchRequest | ChangeSet]:
    text = body.decode("utf-8").replace("\r\n", "\n")
    parts: list[BatchRequest | ChangeSet] = []
    for part in _split(text, boundary_of(content_type)):
        mime, inner = _headers_and_body(part.lstrip("\n"))
        if mime.get("content-type", "").lower().startswith("multipart/mixed"):
            changeset = boundary_of(mime["content-type"])
            requests = []
            for item in _split(inner, changeset):
                item_mime, _ = _headers_and_body(item.lstrip("\n"))
                requests.append(_request(item.lstrip("\n"), item_mime.get("content-id")))
            parts.append(ChangeSet(requests))
        else:
            parts.append(_request(part.lstrip("\n"), None))
    return parts


def _http_part(
    lines: list[str], first: str, headers: dict[str, str], body: str, content_id: str | None
) -> None:
    lines += ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", first, *(f"{k}: {v}" for k, v in headers.items()), "", body]


def build_request(parts: list[BatchRequest | ChangeSet], boundary: str) -> bytes:
    """The multipart body a client sends (for tests and the property that parse inverts it)."""
    lines: list[str] = []
    for index, part in enumerate(parts):
        lines.append(f"--{boundary}")
        if isinstance(part, ChangeSet):
            inner = f"changeset_{boundary}_{index}"
            lines += [f"Content-Type: multipart/mixed; boundary={inner}", ""]
            for request in part.requests:
                lines.append(f"--{inner}")
                _http_part(
                    lines,
                    f"{request.method} {request.url} HTTP/1.1",
                    request.headers,
                    request.body,
                    request.content_id,
                )
            lines.append(f"--{inner}--")
        else:
            _http_part(lines, f"{part.method} {part.url} HTTP/1.1", part.headers, part.body, None)
    lines.append(f"--{boundary}--")
    return ("\r\n".join(lines) + "\r\n").encode()


def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"


def build_response(
    parts: list[BatchResponse | list[BatchResponse]], boundary: str, changeset_ids: list[str]
) -> bytes:
    """``parts``: single responses, or the responses of one committed change set (a list)."""
    lines: list[str] = []
    changesets = iter(changeset_ids)
    for part in parts:
        lines.append(f"--{boundary}")
        if isinstance(part, list):
            inner = f"changesetresponse_{next(changesets)}"
            lines += [f"Content-Type: multipart/mixed; boundary={inner}", ""]
            for response in part:
                lines.append(f"--{inner}")
                _http_part(
                    lines, _status_line(response.status), response.headers, response.body, response.content_id
                )
            lines.append(f"--{inner}--")
        else:
            _http_part(lines, _status_line(part.status), part.headers, part.body, part.content_id)
    lines.append(f"--{boundary}--")
    return ("\r\n".join(lines) + "\r\n").encode()
