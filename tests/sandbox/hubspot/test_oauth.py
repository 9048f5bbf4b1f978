"""The emulator's OAuth app: the token endpoint of each version, access tokens that end, refresh tokens an
admin revokes, and scopes that decide what a token may call (`cdc.sandbox.hubspot.oauth`, ``.scopes``).
Sources are in those modules' docstrings; these tests hold the emulator to them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cdc.sandbox.hubspot import HubSpotSandbox

VERSIONS = {"legacy": "/oauth/v1/token", "2026-03": "/oauth/2026-03/token", "2026-09": "/oauth/2026-09/token"}
OBJECTS = "/crm/objects/2026-09"


@pytest.fixture
async def anon(sandbox: HubSpotSandbox) -> Any:
    """A client without the static token: what an OAuth app's requests look like."""
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.hubapi.test") as c:
        yield c


def refresh_form(sandbox: HubSpotSandbox, **changes: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": sandbox.oauth.client_id,
        "client_secret": sandbox.client_secret,
        "refresh_token": sandbox.oauth.refresh_token,
        **changes,
    }


def client_credentials(sandbox: HubSpotSandbox, scope: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": sandbox.oauth.client_id,
        "client_secret": sandbox.client_secret,
        "scope": scope,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", VERSIONS.values())
async def test_a_refresh_token_gets_an_access_token_that_the_api_takes(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox, path: str
) -> None:
    answer = await anon.post(path, data=refresh_form(sandbox))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["token_use"] == "access_token"
    assert body["expires_in"] == 1800  # "expires after 30 minutes"
    assert body["refresh_token"] == sandbox.oauth.refresh_token  # HubSpot answers with the same one
    assert body["hub_id"] == sandbox.portal_id
    assert "crm.objects.contacts.read" in body["scopes"]
    assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(body["access_token"]))).status_code == 200


@pytest.mark.parametrize("version", ["2026-03", "2026-09"])
async def test_the_dated_endpoints_read_their_parameters_from_the_body_only(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox, version: str
) -> None:
    refused = await anon.post(VERSIONS[version], params=refresh_form(sandbox))
    assert refused.status_code == 400
    assert refused.json()["category"] == "VALIDATION_ERROR"
    as_json = await anon.post(VERSIONS[version], json=refresh_form(sandbox))
    assert as_json.status_code == 400


async def test_v1_also_takes_them_from_the_query(anon: httpx.AsyncClient, sandbox: HubSpotSandbox) -> None:
    """The v1 spec lists ``client_secret`` and ``refresh_token`` as query parameters."""
    assert (await anon.post("/oauth/v1/token", params=refresh_form(sandbox))).status_code == 200


async def test_a_revoked_refresh_token_is_refused_in_each_versions_shape_until_restored(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    issued = (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).json()["access_token"]
    assert (await anon.post("/_admin/oauth/revoke", json={})).json() == {"revoked": True}
    v1 = await anon.post(VERSIONS["legacy"], data=refresh_form(sandbox))
    assert v1.status_code == 400
    assert v1.json() == {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}
    dated = await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))
    assert dated.status_code == 400
    assert dated.json()["subCategory"] == "BAD_REFRESH_TOKEN"
    assert {"category", "correlationId", "message"} <= set(dated.json())
    # "Access tokens generated with the refresh token will not be affected" (v1 spec)
    assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(issued))).status_code == 200
    assert (await anon.post("/_admin/oauth/restore", json={})).json() == {"revoked": False}
    assert (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).status_code == 200


async def test_wrong_client_credentials_or_an_unknown_refresh_token_are_refused(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    wrong_secret = await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox, client_secret="nope"))
    assert (wrong_secret.status_code, wrong_secret.json()["subCategory"]) == (400, "BAD_CLIENT_ID")
    unknown = await anon.post(VERSIONS["legacy"], data=refresh_form(sandbox, refresh_token="nope"))
    assert unknown.json()["status"] == "BAD_REFRESH_TOKEN"
    no_grant = await anon.post(VERSIONS["legacy"], data=refresh_form(sandbox, grant_type="password"))
    assert (no_grant.status_code, no_grant.json()["status"]) == (400, "BAD_GRANT_TYPE")


async def test_an_access_token_ends_with_hubspots_expired_answer(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    await anon.put("/_admin/oauth", json={"accessTokenLifetimeS": 5})
    body = (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).json()
    assert body["expires_in"] == 5
    sandbox.clock.advance(4.9)
    assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(body["access_token"]))).status_code == 200
    sandbox.clock.advance(125)
    ended = await anon.get(f"{OBJECTS}/contacts", headers=bearer(body["access_token"]))
    assert ended.status_code == 401
    assert ended.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert ended.json()["message"] == "The OAuth token used to make this call expired 2 minute(s) ago."
    unknown = await anon.get(f"{OBJECTS}/contacts", headers=bearer("C" + "x" * 100))
    assert unknown.json()["category"] == "INVALID_AUTHENTICATION"


async def test_the_admin_ends_every_access_token_at_once(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    token = (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).json()["access_token"]
    assert (await anon.post("/_admin/oauth/expire")).json() == {"expired": 1}
    ended = await anon.get(f"{OBJECTS}/contacts", headers=bearer(token))
    assert ended.json()["category"] == "EXPIRED_AUTHENTICATION"


async def test_revoking_the_app_refuses_its_access_tokens_too(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    token = (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).json()["access_token"]
    await anon.post("/_admin/token/revoke")
    assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(token))).status_code == 401


async def test_an_authorization_code_is_exchanged_once_for_a_new_refresh_token(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    granted = (
        await anon.post("/_admin/oauth/authorize", json={"redirectUri": "https://sync.example/cb"})
    ).json()
    form = {
        "grant_type": "authorization_code",
        "client_id": sandbox.oauth.client_id,
        "client_secret": sandbox.client_secret,
        "redirect_uri": "https://sync.example/cb",
        "code": granted["code"],
    }
    wrong_redirect = await anon.post(
        VERSIONS["2026-09"], data={**form, "redirect_uri": "https://elsewhere/cb"}
    )
    assert wrong_redirect.json()["subCategory"] == "BAD_AUTH_CODE"
    first = await anon.post(VERSIONS["2026-09"], data=form)
    assert first.status_code == 200
    refresh = first.json()["refresh_token"]
    assert refresh != sandbox.oauth.refresh_token
    again = await anon.post(VERSIONS["legacy"], data=form)
    assert again.json() == {"status": "BAD_AUTH_CODE", "message": "missing or unknown auth code"}
    renewed = await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox, refresh_token=refresh))
    assert renewed.status_code == 200


@pytest.mark.parametrize("version", ["legacy", "2026-03"])
async def test_client_credentials_give_a_token_for_the_scopes_asked_without_a_refresh_token(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox, version: str
) -> None:
    form = client_credentials(sandbox, "crm.objects.contacts.read")
    body = (await anon.post(VERSIONS[version], data=form)).json()
    assert body["token_use"] == "client_credentials"
    assert "refresh_token" not in body
    assert body["scopes"] == ["crm.objects.contacts.read"]
    token = bearer(body["access_token"])
    assert (await anon.get(f"{OBJECTS}/contacts", headers=token)).status_code == 200
    assert (await anon.get(f"{OBJECTS}/companies", headers=token)).status_code == 403
    not_granted = await anon.post(VERSIONS[version], data={**form, "scope": "crm.objects.tickets.read"})
    assert not_granted.status_code == 400


async def test_2026_09_refuses_client_credentials_as_its_draft_spec_lists_no_such_grant(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    refused = await anon.post(
        VERSIONS["2026-09"], data=client_credentials(sandbox, "crm.objects.contacts.read")
    )
    assert (refused.status_code, refused.json()["subCategory"]) == (400, "BAD_GRANT_TYPE")


async def test_an_unserved_token_version_is_a_404_page(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    answer = await anon.post("/oauth/2025-09/token", data=refresh_form(sandbox))
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]


async def scoped_token(anon: httpx.AsyncClient, sandbox: HubSpotSandbox, *scopes: str) -> dict[str, str]:
    """An access token of an installation that granted ``scopes`` only."""
    code = (await anon.post("/_admin/oauth/authorize", json={"scopes": list(scopes)})).json()["code"]
    form = {
        "grant_type": "authorization_code",
        "client_id": sandbox.oauth.client_id,
        "client_secret": sandbox.client_secret,
        "redirect_uri": "https://localhost/oauth-callback",
        "code": code,
    }
    return bearer((await anon.post(VERSIONS["2026-09"], data=form)).json()["access_token"])


def required(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["message"].startswith("This app hasn't been granted all required scopes to make this call.")
    scopes: list[str] = body["errors"][0]["context"]["requiredGranularScopes"]
    return scopes


async def test_a_token_may_call_what_its_scopes_allow_and_a_403_names_what_else_it_needs(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    token = await scoped_token(anon, sandbox, "crm.objects.contacts.read")
    assert (await anon.get(f"{OBJECTS}/contacts", headers=token)).status_code == 200
    search = await anon.post(f"{OBJECTS}/contacts/search", json={}, headers=token)
    assert search.status_code == 200
    read = await anon.post(f"{OBJECTS}/contacts/batch/read", json={"inputs": []}, headers=token)
    assert read.status_code != 403
    write = await anon.post(f"{OBJECTS}/contacts/batch/create", json={"inputs": []}, headers=token)
    assert required(write) == ["crm.objects.contacts.write"]
    assert required(await anon.get(f"{OBJECTS}/0-2", headers=token)) == ["crm.objects.companies.read"]
    prop = {
        "name": "x",
        "label": "X",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
    }
    create = await anon.post("/crm/properties/2026-09/contacts", json=prop, headers=token)
    assert required(create) == ["crm.schemas.contacts.write"]
    assert (await anon.get("/crm/properties/2026-09/contacts", headers=token)).status_code == 200
    assert required(await anon.get("/crm/owners/2026-09", headers=token)) == ["crm.objects.owners.read"]
    associate = await anon.post(
        "/crm/associations/2026-09/contacts/companies/batch/create", json={"inputs": []}, headers=token
    )
    assert required(associate) == ["crm.objects.contacts.write"]


async def test_a_write_scope_does_not_let_a_token_read(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    """Each object spec's GET lists the read scope alone (spec:CRM/Contacts/Rollouts/424/2026-09)."""
    token = await scoped_token(anon, sandbox, "crm.objects.contacts.write")
    assert required(await anon.get(f"{OBJECTS}/contacts", headers=token)) == ["crm.objects.contacts.read"]


async def test_the_static_token_keeps_every_scope(client: httpx.AsyncClient) -> None:
    assert (await client.get("/crm/owners/2026-09")).status_code == 200
    assert (await client.post(f"{OBJECTS}/companies/batch/create", json={"inputs": []})).status_code != 403


async def test_renewed_tokens_share_the_apps_rate_limit(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    """The burst limit is the app's (fact sheet §6): a new access token starts no fresh bucket."""
    await anon.put("/_admin/ratelimits", json={"burst": 2})
    for _ in range(2):
        token = (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).json()["access_token"]
        assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(token))).status_code == 200
    token = (await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))).json()["access_token"]
    assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(token))).status_code == 429
    assert (await anon.get(f"{OBJECTS}/contacts", headers=bearer(sandbox.token))).status_code == 429


async def test_the_admin_api_shows_and_changes_the_app(
    anon: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    info = (await anon.get("/_admin/info")).json()
    assert (info["clientId"], info["refreshToken"]) == (sandbox.oauth.client_id, sandbox.oauth.refresh_token)
    changed = (await anon.put("/_admin/oauth", json={"accessTokenLifetimeS": 3, "scopes": ["oauth"]})).json()
    assert (changed["accessTokenLifetimeS"], changed["scopes"]) == (3, ["oauth"])
    assert (await anon.put("/_admin/oauth", json={"accessTokenLifetimeS": 0})).status_code == 400
    assert (await anon.post("/_admin/oauth/revoke", json={"refreshToken": "unknown"})).status_code == 404
    await anon.post(VERSIONS["2026-09"], data=refresh_form(sandbox))
    assert (await anon.get("/_admin/oauth")).json()["issued"] == {"refresh_token": 1}


async def test_same_seed_same_oauth_credentials() -> None:
    first, second, other = HubSpotSandbox(seed=3), HubSpotSandbox(seed=3), HubSpotSandbox(seed=4)
    assert (first.oauth.client_id, first.oauth.refresh_token) == (
        second.oauth.client_id,
        second.oauth.refresh_token,
    )
    assert first.oauth.refresh_token != other.oauth.refresh_token
    assert HubSpotSandbox(seed=3).token == first.token  # the static token is what it was for the seed
