"""The admin page's security rules, in process through httpx's ASGI transport (no browser, no Kafka: a fake
source). Not starlette's httpx.AsyncClient: the installed starlette deprecates it over httpx (a warning, so an
error here), and the project's other ASGI tests use the transport already.

What an admin relies on: nothing is reachable without a login; a wrong password is refused, and repeated
ones from one address are slowed down; every POST needs the session's CSRF token (a forged or missing one is
a 403 and nothing happens); a session ends at its expiry; an unknown record is a clear 404 page; no
password, hash or session secret ever appears in a page or a cookie.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.routing import Route

from cdc.admin import SESSION_COOKIE, create_app, hash_password
from cdc.admin.views import VIEWS
from cdc.settings import AdminSettings
from tests.unit.admin_fakes import DV, EXCLUSION, HS, FakeHealth

PASSWORD = "correct horse battery staple"
SECRET = "session-secret-that-must-stay-hidden-0123456789"
HASH = hash_password(PASSWORD)
MAX_AGE = 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeHealth:
    return FakeHealth()


@pytest.fixture
async def client(fake: FakeHealth, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    settings = AdminSettings(session_max_age_s=MAX_AGE, login_attempts=3, login_window_s=60)
    app = create_app(settings, fake, users={"ada": HASH}, secret=SECRET, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as test:
        yield test


async def csrf_of(client: httpx.AsyncClient, path: str = "/login") -> str:
    page = await client.get(path)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, password: str = PASSWORD) -> int:
    answer = await client.post(
        "/login", data={"user": "ada", "password": password, "csrf": await csrf_of(client)}
    )
    return answer.status_code


GET_PATHS = [
    "/",
    "/records",
    "/records/story?q=501",
    "/excluded",
    "/paused",
    "/deadletters",
    "/lag",
    "/budget",
]
POSTS = {
    "/records/sync": {"record": HS.key},
    "/records/push": {"record": HS.key, "winner": "hubspot"},
    "/excluded/retry": {"record": EXCLUSION.key},
    "/excluded/retry-all": {"reason": "ambiguous_match"},
    "/paused/pause": {"target": "", "reason": "a bulk import"},
    "/paused/resume": {"target": "hubspot-contacts-to-dataverse"},
    "/deadletters/redrive": {"letter": "7"},
    "/logout": {},
}


def test_every_view_and_action_is_listed_here() -> None:
    """So a new view cannot slip past the tests below without being added to them."""
    gets = {r.path for v in VIEWS for r in v.routes if isinstance(r, Route) and "GET" in (r.methods or ())}
    posts = {r.path for v in VIEWS for r in v.routes if isinstance(r, Route) and "POST" in (r.methods or ())}
    assert gets == {p.split("?")[0] for p in GET_PATHS}
    assert posts | {"/logout"} == set(POSTS)


@pytest.mark.parametrize("path", [*GET_PATHS, "/no-such-page"])
async def test_no_page_without_login(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", list(POSTS))
async def test_no_action_without_login(client: httpx.AsyncClient, fake: FakeHealth, path: str) -> None:
    token = await csrf_of(client)  # even with the anonymous session's own token
    answer = await client.post(path, data={**POSTS[path], "csrf": token})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")
    assert fake.actions == []


async def test_login_then_every_page_renders(client: httpx.AsyncClient) -> None:
    assert await log_in(client) == 303
    for path in GET_PATHS:
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert "Log out" in answer.text
    assert "ada@example.com" in (await client.get("/records/story?q=ada@example.com")).text


async def test_wrong_password_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/login", data={"user": "ada", "password": "nope", "csrf": await csrf_of(client)}
    )
    assert answer.status_code == 401
    assert "Wrong user name or password" in answer.text
    assert (await client.get("/")).status_code == 303
    unknown = await client.post(
        "/login", data={"user": "bob", "password": PASSWORD, "csrf": await csrf_of(client)}
    )
    assert unknown.status_code == 401


async def test_failed_logins_are_limited_per_address(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert await log_in(client, "wrong") == 401
    answer = await client.post(
        "/login", data={"user": "ada", "password": PASSWORD, "csrf": await csrf_of(client)}
    )
    assert answer.status_code == 429
    assert "too many failed logins" in answer.text
    assert (await client.get("/")).status_code == 303


@pytest.mark.parametrize("token", [None, "", "forged-token"])
@pytest.mark.parametrize("path", list(POSTS))
async def test_forged_or_missing_csrf_is_403_and_changes_nothing(
    client: httpx.AsyncClient, fake: FakeHealth, path: str, token: str | None
) -> None:
    assert await log_in(client) == 303
    data = {**POSTS[path], **({} if token is None else {"csrf": token})}
    answer = await client.post(path, data=data)
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert fake.actions == []
    assert (await client.get("/")).status_code == 200, "still logged in: a forged logout did not log out"


async def test_login_needs_the_csrf_token_too(client: httpx.AsyncClient) -> None:
    await csrf_of(client)
    answer = await client.post("/login", data={"user": "ada", "password": PASSWORD})
    assert answer.status_code == 403
    assert (await client.get("/")).status_code == 303


async def test_a_token_from_another_session_is_refused(client: httpx.AsyncClient, fake: FakeHealth) -> None:
    assert await log_in(client) == 303
    other = await csrf_of(client, "/")
    client.cookies.clear()
    assert await log_in(client) == 303  # a new session, a new token
    answer = await client.post("/records/sync", data={"record": HS.key, "csrf": other})
    assert answer.status_code == 403
    assert fake.actions == []


async def test_actions_with_the_token_are_done_as_the_user(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    token = await csrf_of(client, "/")
    answer = await client.post("/records/sync", data={"record": DV.key, "csrf": token})
    assert answer.status_code == 303
    assert "read again" in (await client.get(answer.headers["location"])).text
    assert (await client.post("/deadletters/redrive", data={"letter": "7", "csrf": token})).status_code == 303
    assert fake.actions == [("sync_now", DV.key, "ada"), ("redrive", "7", "ada")]


async def test_an_expired_session_goes_to_the_login_page(
    client: httpx.AsyncClient, clock: Clock, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    token = await csrf_of(client, "/")
    clock.now += MAX_AGE - 1
    assert (await client.get("/")).status_code == 200
    clock.now += 2
    answer = await client.get("/deadletters")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/deadletters"
    assert (await client.post("/records/sync", data={"record": HS.key, "csrf": token})).status_code == 303
    assert fake.actions == []


@pytest.mark.parametrize(
    ("method", "path", "data", "says"),
    [
        ("get", "/records/story?q=no-such-record", None, "no link and no audit record names"),
        ("post", "/records/sync", {"record": "hubspot/123/contact/999"}, "HubSpot has no contact 999"),
        ("post", "/records/sync", {"record": "not a record"}, "not a record"),
        ("post", "/deadletters/redrive", {"letter": "0:99"}, "no dead letter 0:99"),
        (
            "post",
            "/records/push",
            {"record": "hubspot/123/contact/999", "winner": "dataverse"},
            "no such record: 999",
        ),
        ("post", "/records/push", {"record": "not a record", "winner": "hubspot"}, "not a record"),
        ("post", "/excluded/retry", {"record": "hubspot/123/contact/999"}, "not excluded now"),
        ("post", "/paused/pause", {"target": "no-such-step"}, "unknown step &#39;no-such-step&#39;"),
        ("post", "/paused/resume", {"target": "no-such-step"}, "unknown step &#39;no-such-step&#39;"),
        ("post", "/excluded/retry-all", {"q": "nobody@example.com"}, "no excluded record matches"),
        ("post", "/deadletters/redrive", {"letter": "x"}, "not a dead-letter offset"),
        ("get", "/no-such-page", None, "Not Found"),
    ],
)
async def test_unknown_things_are_a_clear_404(
    client: httpx.AsyncClient,
    fake: FakeHealth,
    *,
    method: str,
    path: str,
    data: dict[str, str] | None,
    says: str,
) -> None:
    assert await log_in(client) == 303
    if data is not None:
        data = {**data, "csrf": await csrf_of(client, "/")}
    answer = await client.request(method.upper(), path, data=data)
    assert answer.status_code == 404
    assert says in answer.text
    assert "Nothing was changed" in answer.text
    assert fake.actions == []


async def test_cookie_and_headers(client: httpx.AsyncClient) -> None:
    await client.get("/login")
    answer = await client.post(
        "/login", data={"user": "ada", "password": PASSWORD, "csrf": await csrf_of(client)}
    )
    cookie = answer.headers["set-cookie"].lower()
    for flag in ("httponly", "secure", "samesite=lax", f"max-age={MAX_AGE}"):
        assert flag in cookie
    page = await client.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script
    assert page.headers["x-frame-options"] == "DENY"


async def test_after_login_only_a_local_path(client: httpx.AsyncClient) -> None:
    for target, lands in [("/budget", "/budget"), ("//evil.example/x", "/"), ("https://evil.example", "/")]:
        client.cookies.clear()
        answer = await client.post(
            "/login",
            data={"user": "ada", "password": PASSWORD, "next": target, "csrf": await csrf_of(client)},
        )
        assert answer.headers["location"] == lands


async def test_no_credential_in_any_page_or_cookie(client: httpx.AsyncClient) -> None:
    seen = [(await client.get("/login")).text]
    wrong = {"user": "ada", "password": "wrong " + PASSWORD, "csrf": await csrf_of(client)}
    seen.append((await client.post("/login", data=wrong)).text)
    assert await log_in(client) == 303
    seen += [(await client.get(path)).text for path in GET_PATHS]
    raw = client.cookies[SESSION_COOKIE].split(".")[0]
    session = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))
    assert set(session) == {"user", "login_at", "csrf"}
    seen.append(json.dumps(session))
    for text in seen:
        for secret in (PASSWORD, HASH, HASH.split("$")[-1], SECRET):
            assert secret not in text


async def test_the_liveness_probe_says_only_ok(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")
    assert (answer.status_code, answer.text) == (200, "ok")


async def test_values_from_a_crm_are_escaped(client: httpx.AsyncClient) -> None:
    assert await log_in(client) == 303
    page = (await client.get("/deadletters")).text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_an_oversized_form_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    token = await csrf_of(client, "/")
    answer = await client.post("/records/sync", data={"record": HS.key, "pad": "x" * 20_000, "csrf": token})
    assert answer.status_code == 413
    assert fake.actions == []


async def test_kafka_not_answering_is_a_503_page_saying_so(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    fake.kafka_down = True
    answer = await client.get("/")
    assert answer.status_code == 503
    assert "cannot reach Kafka at kafka:9092" in answer.text


async def test_a_kafka_error_of_the_client_itself_is_a_503_page_too(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    fake.coordinator_loading = True
    answer = await client.get("/")
    assert answer.status_code == 503
    assert "GroupCoordinatorNotAvailableError" in answer.text


async def test_retry_push_and_retry_all_are_done_as_the_user(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    token = await csrf_of(client, "/excluded")
    one = await client.post("/excluded/retry", data={"record": EXCLUSION.key, "step": "", "csrf": token})
    assert one.status_code == 303
    assert "1 excluded record(s) read again" in (await client.get(one.headers["location"])).text
    every = await client.post("/excluded/retry-all", data={"reason": "ambiguous_match", "csrf": token})
    assert every.headers["location"] == "/excluded?reason=ambiguous_match&step=&q="
    pushed = await client.post("/records/push", data={"record": HS.key, "winner": "dataverse", "csrf": token})
    assert pushed.status_code == 303
    story = (await client.get(pushed.headers["location"])).text
    assert "update dataverse contact x" in story  # what was written, shown once after the push
    assert fake.actions == [
        ("retry", EXCLUSION.key, "ada"),
        ("retry", EXCLUSION.key, "ada"),  # the filter's only ambiguous match
        ("push from dataverse", HS.key, "ada"),
    ]


async def test_a_push_from_an_unknown_side_is_refused(client: httpx.AsyncClient, fake: FakeHealth) -> None:
    assert await log_in(client) == 303
    token = await csrf_of(client, "/")
    answer = await client.post(
        "/records/push", data={"record": HS.key, "winner": "salesforce", "csrf": token}
    )
    assert answer.status_code == 400
    assert "hubspot or dataverse" in answer.text
    assert fake.actions == []


async def test_the_excluded_view_counts_filters_and_searches(client: httpx.AsyncClient) -> None:
    assert await log_in(client) == 303
    page = (await client.get("/excluded")).text
    assert "2 now" in page
    assert "dup@example.com" in page
    assert "deal 77" in page
    assert "&lt;b&gt;won&lt;/b&gt;" in page  # a CRM's value, escaped
    assert "Retry all shown (2)" in page
    by_reason = (await client.get("/excluded?reason=ambiguous_match")).text
    assert "dup@example.com" in by_reason
    assert "deal 77" not in by_reason
    by_step = (await client.get("/excluded?step=deals")).text
    assert "deal 77" in by_step
    assert "dup@example.com" not in by_step
    searched = (await client.get("/excluded?q=DUP@")).text
    assert "contact 502" in searched
    assert "deal 77" not in searched
    assert "No excluded records match this filter" in (await client.get("/excluded?q=nobody")).text
    assert "/records/story?q=502" in page  # each row leads to the record's story


async def test_the_overview_counts_and_the_story_shows_the_exclusion(client: httpx.AsyncClient) -> None:
    assert await log_in(client) == 303
    overview = (await client.get("/")).text
    assert '<a class="bad" href="/excluded?step=hubspot-contacts-to-dataverse">1</a>' in overview
    story = (await client.get("/records/story?q=502")).text  # no link, no audit: found by its exclusion
    assert "ambiguous_match" in story
    assert "dup@example.com" in story
    assert "2 candidates with this match key" in story
    assert "Since 2026-12-06 12:00:00 UTC" in story
    linked = (await client.get("/records/story?q=501")).text
    assert "Push from HubSpot" in linked
    assert "Push from Dataverse" in linked


async def test_pause_and_resume_are_done_as_the_user_and_every_page_says_what_is_paused(
    client: httpx.AsyncClient, fake: FakeHealth
) -> None:
    assert await log_in(client) == 303
    assert "Paused:" not in (await client.get("/")).text
    token = await csrf_of(client, "/paused")
    answer = await client.post("/paused/pause", data={"target": "", "reason": "a bulk import", "csrf": token})
    assert answer.status_code == 303
    for path in GET_PATHS:
        assert "Paused: everything by ada since 2026-12-06T12:00:00+00:00" in (await client.get(path)).text, (
            path
        )
    page = (await client.get("/paused")).text
    assert "a bulk import" in page
    assert ">Resume</button>" in page
    step = "hubspot-contacts-to-dataverse"
    await client.post("/paused/pause", data={"target": step, "csrf": token})
    await client.post("/paused/resume", data={"target": "", "csrf": token})
    banner = (await client.get("/")).text
    assert f"Paused: {step} by ada" in banner
    assert "everything by" not in banner
    assert fake.actions == [("pause", "*", "ada"), ("pause", step, "ada"), ("resume", "*", "ada")]
