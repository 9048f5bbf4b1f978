"""The HubSpot gateway speaks the API version it is set to (``hubspot.api_version``), against the sandbox over
real sockets: batch read, create, update and archive, and association create, read and archive, in each of
legacy (v3/v4), 2026-03 and 2026-09, on that version's routes only; a refused input is read per input
whether the answer is a 207 or a 200 with the errors folded in (2026-09); and a 2026-09 write an admin's
validation rule refuses is that input's error, with the rule's message, while the batch's other inputs are
written (hs:changelog/crm-api-write-validation-enforcement)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.hubspot.gateway import HubSpotGateway, open_hubspot_gateway
from cdc.hubspot.paths import API_VERSIONS, HubSpotApiVersion
from cdc.metrics import Metrics
from cdc.sandbox.hubspot.versions import SERVED
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.serving import serve
from cdc.settings import HubSpotSettings
from consumers.ports import WriteKind, WriteOp
from consumers.retries import RetryPolicy
from tests.integration.test_gateways import create, update

pytestmark = [pytest.mark.slow]
FAST = RetryPolicy(retries=1, throttles=0, wait_initial_s=0.01, wait_max_s=0.05, jitter_s=0.01)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=31) as sandbox:
        yield sandbox


@pytest.fixture
async def admin(box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{box.info.hubspot.base_url}/_admin", timeout=30) as client:
        yield client


@pytest.fixture(params=API_VERSIONS)
def version(request: pytest.FixtureRequest) -> HubSpotApiVersion:
    """The ``hubspot.api_version`` a test runs with (each test runs with every one)."""
    chosen: HubSpotApiVersion = request.param
    return chosen


@pytest.fixture
async def hubspot(box: Sandbox, version: HubSpotApiVersion) -> AsyncIterator[HubSpotGateway]:
    info = box.info.hubspot
    settings = HubSpotSettings(
        base_url=info.base_url,
        token=SecretStr(info.token),
        portal_id=str(info.portal_id),
        api_version=version,
    )
    async with open_hubspot_gateway(settings, Metrics(CollectorRegistry()), policy=FAST) as gateway:
        yield gateway


def archive(ref: str, object_type: str, object_id: str) -> WriteOp:
    return WriteOp(ref=ref, kind=WriteKind.DELETE, object_type=object_type, object_id=object_id, values={})


async def routes_called(admin: httpx.AsyncClient) -> set[str]:
    counted: dict[str, int] = (await admin.get("/calls")).json()["by_endpoint"]
    return set(counted)


async def test_records_and_associations_round_trip_in_the_version_asked(
    hubspot: HubSpotGateway, admin: httpx.AsyncClient, version: HubSpotApiVersion
) -> None:
    served = SERVED[version]
    await admin.delete("/calls")
    [acme, globex] = await hubspot.write(
        [create("c1", "company", {"name": "Acme"}), create("c2", "company", {"name": "Globex"})]
    )
    made = await hubspot.write(
        [
            create("a", "contact", {"email": "a@example.com"}, associations={"company:1": acme.object_id}),
            create("bad", "contact", {"email": "b@example.com", "no_such_property": "x"}),
            create("c", "contact", {"email": "c@example.com"}),
        ]
    )
    assert [o.ok for o in made] == [True, False, True]
    assert "no_such_property" in str(made[1].error)  # read per input, in a 207 or in the 200
    a, c = str(made[0].object_id), str(made[2].object_id)

    changed = await hubspot.write(
        [
            update("u1", "contact", a, {"firstname": "Ann"}, associations={"company:1": globex.object_id}),
            update("u2", "contact", c, {"no_such_property": "x"}),
            update("u3", "contact", "999999999", {"firstname": "Nobody"}),
        ]
    )
    assert [o.ok for o in changed] == [True, False, False]
    assert "no_such_property" in str(changed[1].error)
    assert "OBJECT_NOT_FOUND" in str(changed[2].error)
    read = await hubspot.read("contact", [a, c], fields=["firstname"], associations=["company:1"])
    assert read[a].values == {"firstname": "Ann"}
    assert read[a].associations == {"company:1": globex.object_id}
    assert read[c].associations == {"company:1": None}

    [cleared] = await hubspot.write([update("x", "contact", a, {}, associations={"company:1": None})])
    assert cleared.ok, cleared.error  # the association archive: 204 in v4, 200 with a body since 2026-03
    assert (await hubspot.read("contact", [a], fields=[], associations=["company:1"]))[a].associations == {
        "company:1": None
    }
    [gone] = await hubspot.write([archive("d", "contact", c)])
    assert gone.ok
    assert c not in await hubspot.read("contact", [c], fields=[])
    assert c in await hubspot.read("contact", [c], fields=[], archived=True)

    called = await routes_called(admin)
    roots = {served.objects, served.associations, served.properties}
    assert all(any(route.split(" ", 1)[1].startswith(root) for root in roots) for route in called), called
    assert f"POST {served.associations}/{{fromObjectType}}/{{toObjectType}}/batch/labels/archive" in called


@contextlib.asynccontextmanager
async def removals_answered(box: Sandbox, status: int, body: dict[str, Any]) -> AsyncIterator[HubSpotGateway]:
    """A 2026-09 gateway talking to the sandbox through a proxy that answers every association removal
    (``batch/labels/archive``) with ``status`` and ``body`` instead of passing it on."""
    upstream = httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=30)

    async def forward(request: Request) -> Response:
        if request.url.path.endswith("/batch/labels/archive"):
            return Response(orjson.dumps(body), status, media_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k.lower() in {"authorization", "content-type"}}
        answer = await upstream.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers=headers,
        )
        return Response(answer.content, answer.status_code, media_type="application/json")

    proxy = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PATCH", "DELETE"])])
    info = box.info.hubspot
    async with upstream, serve(proxy, name="refusing-hubspot") as served:
        settings = HubSpotSettings(
            base_url=served.base_url, token=SecretStr(info.token), portal_id=str(info.portal_id)
        )
        async with open_hubspot_gateway(settings, Metrics(CollectorRegistry()), policy=FAST) as gateway:
            yield gateway


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (
            200,
            {
                "status": "COMPLETE",
                "results": [],
                "numErrors": 1,
                "errors": [
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": "Missing 'Edit Associations' permission.",
                        "context": {},
                    }
                ],
            },
            "VALIDATION_ERROR: Missing 'Edit Associations' permission.",
        ),
        (
            400,
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": "Missing 'Edit Associations' permission.",
            },
            "VALIDATION_ERROR: Missing 'Edit Associations' permission.",
        ),
    ],
    ids=["folded-into-the-200", "a-400"],
)
async def test_a_refused_association_removal_fails_its_op_and_says_why(
    box: Sandbox, status: int, body: dict[str, Any], why: str
) -> None:
    """2026-03 and 2026-09 answer a removal with a batch body (v4: 204), whose ``errors`` can refuse it
    (a user-level association permission, enforced from 2026-09); a 400 refuses the call. Either way the op
    whose association stays is not ok and says why; the update itself was written, and nothing crashes."""
    async with removals_answered(box, status, body) as hubspot:
        [company] = await hubspot.write([create("co", "company", {"name": "Acme"})])
        [person] = await hubspot.write(
            [
                create(
                    "p", "contact", {"email": "p@example.com"}, associations={"company:1": company.object_id}
                )
            ]
        )
        person_id = str(person.object_id)
        [cleared, other] = await hubspot.write(
            [
                update("x", "contact", person_id, {"firstname": "X"}, associations={"company:1": None}),
                create("q", "contact", {"email": "q@example.com"}),
            ]
        )
        record = (
            await hubspot.read("contact", [person_id], fields=["firstname"], associations=["company:1"])
        )[person_id]
    assert other.ok
    assert not cleared.ok
    assert cleared.error == f"association: removing companies {company.object_id}: {why}"
    assert record.values == {"firstname": "X"}
    assert record.associations == {"company:1": company.object_id}


async def test_a_validation_rule_refuses_one_input_in_2026_09_and_the_rest_are_written(
    hubspot: HubSpotGateway, admin: httpx.AsyncClient, version: HubSpotApiVersion
) -> None:
    """2026-09 refuses the batch whole (400 VALIDATION_ERROR, the sandbox's harsher reading); the gateway
    splits it until the refused input stands alone, and that op's error is the rule's message. Earlier
    versions do not enforce the rules (the changelog): every input is written."""
    rule = {"objectType": "contacts", "propertyName": "jobtitle", "message": "Contacts need a job title."}
    assert (await admin.post("/validation-rules", json=rule)).status_code == 201
    ops = [create(f"ok{i}", "contact", {"email": f"ok{i}@example.com", "jobtitle": "CTO"}) for i in range(9)]
    ops.insert(4, create("bare", "contact", {"email": "bare@example.com"}))
    outcomes = await hubspot.write(ops)
    if version != "2026-09":
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        return
    assert [o.ref for o in outcomes if not o.ok] == ["bare"]
    assert outcomes[4].error == "VALIDATION_ERROR (jobtitle): Contacts need a job title."
    stored = {r["properties"]["email"] for r in (await admin.get("/objects/contacts")).json()["results"]}
    assert stored == {f"ok{i}@example.com" for i in range(9)}
