"""``$batch`` (fact sheet §2.7): change sets roll back as a unit, stop-on-error vs continue-on-error,
Content-ID references, response framing."""

from __future__ import annotations

import json

import httpx

from tests.sandbox.dataverse.support import API, batch_body, create, http_request, read_batch_response


async def _post_batch(client: httpx.AsyncClient, body: bytes, prefer: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_abc"}
    if prefer:
        headers["Prefer"] = prefer
    return await client.post("/api/data/v9.2/$batch", content=body, headers=headers)


async def _lastnames(client: httpx.AsyncClient) -> list[str]:
    rows = (await client.get("/api/data/v9.2/contacts?$orderby=lastname")).json()["value"]
    return [r["lastname"] for r in rows]


async def test_changeset_commits_with_content_id_references(client: httpx.AsyncClient) -> None:
    body = batch_body(
        "batch_abc",
        [
            [
                http_request("POST", f"{API}/accounts", json.dumps({"name": "Batch Co"})),
                http_request(
                    "POST",
                    f"{API}/contacts",
                    json.dumps({"lastname": "Ref", "parentcustomerid_account@odata.bind": "$1"}),
                ),
                http_request("PATCH", "$1", json.dumps({"telephone1": "555"})),
            ],
            http_request("GET", f"{API}/contacts?$select=lastname", headers=("Accept: application/json",)),
        ],
    )
    response = await _post_batch(client, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    parts = read_batch_response(response)
    assert [p.status for p in parts] == [204, 204, 204, 200]
    assert [p.in_changeset for p in parts] == [True, True, True, False]
    assert parts[0].headers["content-id" if "content-id" in parts[0].headers else "odata-entityid"]
    account_url = parts[0].headers["odata-entityid"]
    assert account_url.startswith(f"{API}/accounts(")
    account_id = account_url.split("(")[1].rstrip(")")
    assert json.loads(parts[3].body)["value"][0]["lastname"] == "Ref"
    contact = (await client.get("/api/data/v9.2/contacts")).json()["value"][0]
    assert contact["_parentcustomerid_value"] == account_id
    account = (await client.get(f"/api/data/v9.2/accounts({account_id})")).json()
    assert account["telephone1"] == "555"


async def test_a_failing_changeset_rolls_back_as_a_unit(client: httpx.AsyncClient) -> None:
    body = batch_body(
        "batch_abc",
        [
            [
                http_request("POST", f"{API}/contacts", json.dumps({"lastname": "first"})),
                http_request("POST", f"{API}/contacts", json.dumps({"lastname": "second"})),
                http_request("POST", f"{API}/contacts", json.dumps({"lastname": "bad", "nope": 1})),
            ],
            http_request("POST", f"{API}/contacts", json.dumps({"lastname": "after"})),
        ],
    )
    response = await _post_batch(client, body)
    assert response.status_code == 200
    parts = read_batch_response(response)
    assert len(parts) == 1
    assert parts[0].status == 400
    assert json.loads(parts[0].body)["error"]["code"] == "0x80048d19"
    assert await _lastnames(client) == []


async def test_continue_on_error_runs_the_rest(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000009"
    body = batch_body(
        "batch_abc",
        [
            http_request("POST", f"{API}/contacts", json.dumps({"lastname": "a"})),
            http_request("DELETE", f"{API}/contacts({missing})"),
            [http_request("POST", f"{API}/contacts", json.dumps({"lastname": "x", "nope": 1}))],
            http_request("POST", f"{API}/contacts", json.dumps({"lastname": "b"})),
        ],
    )
    stopped = read_batch_response(await _post_batch(client, body))
    assert [p.status for p in stopped] == [204, 404]
    assert await _lastnames(client) == ["a"]
    response = await _post_batch(client, body, prefer="odata.continue-on-error")
    assert response.headers["Preference-Applied"] == "odata.continue-on-error"
    assert [p.status for p in read_batch_response(response)] == [204, 404, 400, 204]
    assert await _lastnames(client) == ["a", "a", "b"]


async def test_get_inside_changeset_and_unknown_reference_fail(client: httpx.AsyncClient) -> None:
    contact = await create(client, "contacts", {"lastname": "keep"})
    body = batch_body(
        "batch_abc",
        [
            [
                http_request("PATCH", f"{API}/contacts({contact})", json.dumps({"lastname": "x"})),
                http_request("GET", f"{API}/contacts"),
            ]
        ],
    )
    parts = read_batch_response(await _post_batch(client, body))
    assert parts[0].status == 400
    assert await _lastnames(client) == ["keep"]
    reference = batch_body("batch_abc", [[http_request("PATCH", "$7", json.dumps({"lastname": "x"}))]])
    parts = read_batch_response(await _post_batch(client, reference))
    assert (
        json.loads(parts[0].body)["error"]["message"]
        == "Content-ID Reference: '$7' does not exist in the batch context."
    )


async def test_malformed_batch_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/data/v9.2/$batch",
        content=b"--batch_abc\r\nnonsense",
        headers={"Content-Type": "multipart/mixed; boundary=batch_abc"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message"}
    assert (
        await client.post(
            "/api/data/v9.2/$batch", content=b"{}", headers={"Content-Type": "application/json"}
        )
    ).status_code == 400


async def test_a_batch_counts_as_one_call(client: httpx.AsyncClient) -> None:
    await client.delete("/_admin/calls")
    body = batch_body(
        "batch_abc",
        [http_request("POST", f"{API}/contacts", json.dumps({"lastname": str(i)})) for i in range(5)],
    )
    await _post_batch(client, body)
    snapshot = (await client.get("/_admin/calls")).json()
    assert snapshot["by_endpoint"] == {"POST /api/data/v9.2/$batch": 1}
