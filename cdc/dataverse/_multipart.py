"""The Web API ``$batch`` body (fact sheet §2.7): independent parts out, their answers back, in order.

No change sets: each part stands alone, so with ``Prefer: odata.continue-on-error`` one refused part
leaves the others written. Line ends are written CRLF and read as CRLF or LF.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["BatchSyntaxError", "Part", "PartAnswer", "decode", "encode"]

_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";,\s]+)"?', re.IGNORECASE)
_STATUS = re.compile(r"^HTTP/\d\.\d\s+(\d{3})")


class BatchSyntaxError(ValueError):
    """The ``$batch`` answer is not the multipart body it should be."""


@dataclass(frozen=True)
class Part:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class PartAnswer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


def encode(parts: Sequence[Part]) -> tuple[str, bytes]:
    """(the request's Content-Type, the body)."""
    boundary = f"batch_{uuid.uuid4().hex}"
    lines: list[bytes] = []
    for part in parts:
        lines += [
            f"--{boundary}".encode(),
            b"Content-Type: application/http",
            b"Content-Transfer-Encoding: binary",
            b"",
            f"{part.method} {part.url} HTTP/1.1".encode(),
            *(f"{name}: {value}".encode() for name, value in part.headers.items()),
            b"",
            part.body or b"",
        ]
    lines.append(f"--{boundary}--".encode())
    return f"multipart/mixed; boundary={boundary}", b"\r\n".join(lines) + b"\r\n"


def _headers(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    for index, line in enumerate(lines):
        if not line.strip():
            return headers, lines[index + 1 :]
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, []


def _sections(text: str, boundary: str) -> list[list[str]]:
    sections: list[list[str]] = []
    current: list[str] | None = None
    for line in text.split("\n"):
        marker = line.rstrip()
        if marker in {f"--{boundary}", f"--{boundary}--"}:
            if current is not None:
                sections.append(current)
            if marker == f"--{boundary}--":
                return sections
            current = []
        elif current is not None:
            current.append(line)
    return sections


def decode(content_type: str, body: bytes) -> list[PartAnswer]:
    """The answers of a ``$batch``, flattening change sets, in the order the parts were sent."""
    match = _BOUNDARY.search(content_type)
    if match is None or not content_type.lower().startswith("multipart/mixed"):
        raise BatchSyntaxError(f"a $batch answer must be multipart/mixed, not {content_type[:80]!r}")
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    answers: list[PartAnswer] = []
    for section in _sections(text, match.group(1)):
        mime, rest = _headers(section)
        inner = mime.get("content-type", "")
        if inner.lower().startswith("multipart/mixed"):
            answers += decode(inner, "\n".join(rest).encode())
            continue
        while rest and not rest[0].strip():
            rest = rest[1:]
        status = _STATUS.match(rest[0]) if rest else None
        if status is None:
            raise BatchSyntaxError("a $batch answer part has no HTTP status line")
        headers, payload = _headers(rest[1:])
        answers.append(PartAnswer(int(status.group(1)), headers, "\n".join(payload).strip().encode()))
    return answers
