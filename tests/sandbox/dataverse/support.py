"""Helpers of the Dataverse contract tests: the org URL, a create shortcut, and a $batch writer and reader
written from the fact sheet (§2.7), independent of the emulator's own multipart code."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx

ORG = "https://org.test"
API = f"{ORG}/api/data/v9.2"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def create(client: httpx.AsyncClient, entity_set: str, body: dict[str, object]) -> str:
    """POST and return the new id read from the ``OData-EntityId`` header."""
    response = await client.post(f"/api/data/v9.2/{entity_set}", json=body)
    assert response.status_code == 204, response.text
    match = re.search(r"\(([0-9a-f-]{36})\)$", response.headers["OData-EntityId"])
    assert match is not None
    return match.group(1)


async def enable_change_tracking(client: httpx.AsyncClient, *tables: str) -> None:
    """Turn change tracking on as documented for a table update (Learn, create-update-entity-definitions-
    using-web-api, "Update table definitions"): read the whole definition, set ``ChangeTrackingEnabled``, PUT
    it all back with ``MSCRM.MergeLabels: true``."""
    for table in tables:
        url = f"/api/data/v9.2/EntityDefinitions(LogicalName='{table}')"
        definition = (await client.get(url)).json()
        definition.pop("@odata.context", None)
        answer = await client.put(
            url, json={**definition, "ChangeTrackingEnabled": True}, headers={"MSCRM.MergeLabels": "true"}
        )
        assert answer.status_code == 204, answer.text


async def key_status(client: httpx.AsyncClient, table: str) -> dict[str, str]:
    """Key name -> ``EntityKeyIndexStatus``, as a client reads it from the key metadata."""
    url = f"/api/data/v9.2/EntityDefinitions(LogicalName='{table}')/Keys"
    url += "?$select=LogicalName,EntityKeyIndexStatus"
    return {k["LogicalName"]: k["EntityKeyIndexStatus"] for k in (await client.get(url)).json()["value"]}


async def build_key_indexes(client: httpx.AsyncClient) -> None:
    """Let the org's key index jobs finish: move the sandbox clock past their duration."""
    delay = (await client.get("/_admin/keys")).json()["index_delay_s"]
    assert (await client.post("/_admin/clock/advance", json={"seconds": delay})).status_code == 200


@dataclass
class Part:
    """One response inside a multipart/mixed batch answer, parsed by the test's own reader."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    in_changeset: bool = False


def _sections(text: str, boundary: str) -> list[str]:
    chunks = re.split(rf"^--{re.escape(boundary)}(?:--)?\s*$", text, flags=re.MULTILINE)
    return [c.strip("\n") for c in chunks[1:-1]]


def _headers(block: str) -> dict[str, str]:
    out = {}
    for line in block.splitlines():
        if ":" in line:
            name, value = line.split(":", 1)
            out[name.strip().lower()] = value.strip()
    return out


def read_batch_response(response: httpx.Response) -> list[Part]:
    boundary = response.headers["content-type"].split("boundary=")[1].strip()
    text = response.text.replace("\r\n", "\n")
    parts: list[Part] = []
    for section in _sections(text, boundary):
        mime_head, _, rest = section.partition("\n\n")
        mime = _headers(mime_head)
        if mime["content-type"].startswith("multipart/mixed"):
            inner = mime["content-type"].split("boundary=")[1].strip()
            for item in _sections(rest, inner):
                _, _, http = item.partition("\n\n")
                parts.append(_http(http, in_changeset=True))
        else:
            parts.append(_http(rest, in_changeset=False))
    return parts


def _http(text: str, *, in_changeset: bool) -> Part:
    status_line, _, rest = text.partition("\n")
    head, _, body = rest.partition("\n\n")
    return Part(int(status_line.split()[1]), _headers(head), body.strip(), in_changeset)


def batch_body(boundary: str, parts: list[str | list[str]]) -> bytes:
    """Build a $batch body by hand; a list is a change set of requests (each gets a Content-ID)."""
    lines: list[str] = []
    for index, part in enumerate(parts):
        lines.append(f"--{boundary}")
        if isinstance(part, list):
            changeset = f"changeset_{index}"
            lines += [f"Content-Type: multipart/mixed; boundary={changeset}", ""]
            for number, request in enumerate(part, start=1):
                lines += [
                    f"--{changeset}",
                    "Content-Type: application/http",
                    "Content-Transfer-Encoding: binary",
                    f"Content-ID: {number}",
                    "",
                    request,
                ]
            lines.append(f"--{changeset}--")
        else:
            lines += ["Content-Type: application/http", "Content-Transfer-Encoding: binary", "", part]
    lines.append(f"--{boundary}--")
    return ("\r\n".join(lines) + "\r\n").encode()


def http_request(method: str, url: str, body: str | None = None, headers: tuple[str, ...] = ()) -> str:
    head = [f"{method} {url} HTTP/1.1", *headers]
    if body is not None:
        head.append("Content-Type: application/json;type=entry")
        return "\r\n".join([*head, "", body])
    return "\r\n".join([*head, ""])
