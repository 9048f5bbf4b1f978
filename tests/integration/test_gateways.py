"""Both CRM gateways against the sandbox over real sockets (no Kafka): reads, finds, batched writes,
per-record errors, conflicts, associations, outages, and what the sandbox does with the daemon's writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
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

from cdc.dataverse.errors import FatalError
from cdc.dataverse.gateway import HUBSPOT_ID_COLUMN, DataverseGateway, open_dataverse_gateway
from cdc.dataverse.rows import row_to_event
from cdc.hubspot.errors import FatalError as HubSpotFatalError
from cdc.hubspot.gateway import DATAVERSE_ID_PROPERTY, HubSpotGateway, open_hubspot_gateway
from cdc.metrics import Metrics
from cdc.provisioning.run import enable_change_tracking, provision, provision_sandbox
from cdc.roles.sync import open_gateways
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.serving import serve
from cdc.settings import DataverseSettings, HubSpotSettings, Settings
from consumers.loader import default_config
from consumers.owners import Owner
from consumers.ports import CrmUnavailableError, Record, WriteKind, WriteOp
from consumers.retries import RetryPolicy
from streams.config import KafkaSettings
from streams.keys import SourceSystem

pytestmark = [pytest.mark.slow]
# What the sandbox counts (its own routes) for the daemon's default version, 2026-09.
BATCH_CREATE = "POST /crm/objects/2026-09/{objectType}/batch/create"
BATCH_READ = "POST /crm/objects/2026-09/{objectType}/batch/read"
OWNERS = "GET /crm/owners/2026-09"
DV_BATCH = "POST /api/data/v9.2/$batch"
DV_QUERY = "GET /api/data/v9.2/{entityset}"
DV_COLUMNS = "GET /api/data/v9.2/EntityDefinitions({entity})/Attributes"
KEYS = "GET /api/data/v9.2/EntityDefinitions({entity})/Keys"
FAST_HUBSPOT = RetryPolicy(retries=1, throttles=0, wait_initial_s=0.01, wait_max_s=0.05, jitter_s=0.01)
FAST_DATAVERSE = RetryPolicy(retries=1, throttles=0, wait_initial_s=0.01, wait_max_s=0.05, jitter_s=0.01)


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox(seed=23) as sandbox:
        yield sandbox


def hubspot_settings(box: Sandbox) -> HubSpotSettings:
    info = box.info.hubspot
    return HubSpotSettings(base_url=info.base_url, token=SecretStr(info.token), portal_id=str(info.portal_id))


def dataverse_settings(box: Sandbox) -> DataverseSettings:
    info = box.info.dataverse
    return DataverseSettings(
        base_url=info.base_url,
        tenant_id=info.tenant_id,
        client_id=info.client_id,
        client_secret=SecretStr(info.client_secret),
        authority=info.authority,
        scope=info.scope,
        ca_bundle=Path(info.ca_bundle),
    )


@pytest.fixture
async def hubspot(box: Sandbox) -> AsyncIterator[HubSpotGateway]:
    async with open_hubspot_gateway(
        hubspot_settings(box), Metrics(CollectorRegistry()), policy=FAST_HUBSPOT
    ) as gw:
        yield gw


@pytest.fixture
async def dataverse(box: Sandbox) -> AsyncIterator[DataverseGateway]:
    metrics = Metrics(CollectorRegistry())
    async with open_dataverse_gateway(dataverse_settings(box), metrics, policy=FAST_DATAVERSE) as gateway:
        yield gateway


def hubspot_admin(box: Sandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{box.info.hubspot.base_url}/_admin", timeout=60)


def dataverse_admin(box: Sandbox) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    return httpx.AsyncClient(base_url=f"{box.info.dataverse.base_url}/_admin", verify=context, timeout=60)


async def calls(api: httpx.AsyncClient, *, reset: bool = False) -> dict[str, int]:
    if reset:
        await api.delete("/calls")
    by_endpoint: dict[str, int] = (await api.get("/calls")).json()["by_endpoint"]
    return by_endpoint


def create(ref: str, object_type: str, values: dict[str, Any], **kw: Any) -> WriteOp:
    return WriteOp(ref=ref, kind=WriteKind.CREATE, object_type=object_type, values=values, **kw)


def update(ref: str, object_type: str, object_id: str, values: dict[str, Any], **kw: Any) -> WriteOp:
    return WriteOp(
        ref=ref, kind=WriteKind.UPDATE, object_type=object_type, object_id=object_id, values=values, **kw
    )


# -- HubSpot ----------------------------------------------------------------------------------------


async def test_hubspot_250_creates_land_in_three_batch_calls_and_read_back(
    box: Sandbox, hubspot: HubSpotGateway
) -> None:
    assert hubspot.system is SourceSystem.HUBSPOT
    assert hubspot.tenant == str(box.info.hubspot.portal_id)
    ops = [
        create(f"r{i}", "contact", {"email": f"p{i}@example.com", "firstname": f"P{i}"}) for i in range(250)
    ]
    async with hubspot_admin(box) as admin:
        await calls(admin, reset=True)
        outcomes = await hubspot.write(ops)
        assert (await calls(admin))[BATCH_CREATE] == math.ceil(250 / 100)
        assert [o.ref for o in outcomes] == [op.ref for op in ops]
        assert all(o.ok and o.object_id and o.version and o.modified_at for o in outcomes)
        ids = [str(o.object_id) for o in outcomes]
        await calls(admin, reset=True)
        records = await hubspot.read("contact", ids, fields=["email", "firstname"])
        assert (await calls(admin))[BATCH_READ] == 3
    assert set(records) == set(ids)
    first = records[ids[0]]
    assert first.values == {"email": "p0@example.com", "firstname": "P0"}
    assert first.version == outcomes[0].version
    assert first.modified_at is not None


async def test_hubspot_one_bad_input_fails_alone(hubspot: HubSpotGateway) -> None:
    made = await hubspot.write(
        [
            create("a", "contact", {"email": "a@example.com"}),
            create("bad", "contact", {"email": "b@example.com", "no_such_property": "x"}),
            create("c", "contact", {"email": "c@example.com"}),
        ]
    )
    assert [o.ok for o in made] == [True, False, True]
    assert made[1].error is not None
    assert "no_such_property" in made[1].error
    changed = await hubspot.write(
        [
            update("u1", "contact", str(made[0].object_id), {"firstname": "Ann"}),
            update("u2", "contact", str(made[2].object_id), {"no_such_property": "x"}),
            update("u3", "contact", "999999999", {"firstname": "Nobody"}),
        ]
    )
    assert [o.ok for o in changed] == [True, False, False]
    assert "no_such_property" in str(changed[1].error)
    assert "OBJECT_NOT_FOUND" in str(changed[2].error)
    assert changed[0].version is not None  # updatedAt: same millisecond as the create is possible
    again = await hubspot.write([create("dup", "contact", {"email": "A@example.com"})])
    assert not again[0].ok
    assert "CONFLICT" in str(again[0].error)


async def test_hubspot_find_by_email_is_consistent_and_case_insensitive(hubspot: HubSpotGateway) -> None:
    made = await hubspot.write(
        [create(f"r{i}", "contact", {"email": f"f{i}@example.com", "firstname": "Same"}) for i in range(3)]
    )
    found = await hubspot.find(
        "contact", "email", ["F1@Example.com", "nobody@example.com"], fields=["email", "firstname"]
    )
    assert [r.object_id for r in found["F1@Example.com"]] == [made[1].object_id]
    assert found["nobody@example.com"] == []
    by_name = await hubspot.find("contact", "firstname", ["Same", "Other"], fields=["email"])
    assert {r.object_id for r in by_name["Same"]} == {o.object_id for o in made}
    assert by_name["Other"] == []


async def test_hubspot_find_by_name_finds_several_names_whatever_their_case(
    box: Sandbox, hubspot: HubSpotGateway
) -> None:
    """Several names are one search with ``IN``, whose values HubSpot wants lowercase (D-SRCH): names as a
    user wrote them in Dataverse still find the companies."""
    async with hubspot_admin(box) as admin:
        seeded = await admin.post("/seed", json={"companies": [{"name": "Acme Corp"}, {"name": "Globex"}]})
        acme, globex = seeded.json()["companies"]
    found = await hubspot.find("company", "name", ["ACME corp", "globex", "Initech"], fields=["name"])
    assert {value: [r.object_id for r in records] for value, records in found.items()} == {
        "ACME corp": [acme],
        "globex": [globex],
        "Initech": [],
    }


async def test_hubspot_associations_set_cleared_and_read_back(hubspot: HubSpotGateway) -> None:
    companies = await hubspot.write(
        [create("c1", "company", {"name": "Acme"}), create("c2", "company", {"name": "Globex"})]
    )
    first, second = str(companies[0].object_id), str(companies[1].object_id)
    [contact] = await hubspot.write(
        [create("p", "contact", {"email": "assoc@example.com"}, associations={"company:1": first})]
    )
    assert contact.ok
    contact_id = str(contact.object_id)

    async def primary() -> str | None:
        records = await hubspot.read("contact", [contact_id], fields=["email"], associations=["company:1"])
        return records[contact_id].associations["company:1"]

    assert await primary() == first
    [moved] = await hubspot.write(
        [update("m", "contact", contact_id, {}, associations={"company:1": second})]
    )
    assert moved.ok
    assert await primary() == second
    [cleared] = await hubspot.write(
        [update("x", "contact", contact_id, {}, associations={"company:1": None})]
    )
    assert cleared.ok
    assert await primary() is None
    [refused] = await hubspot.write(
        [update("bad", "contact", contact_id, {}, associations={"company:1": "123456789"})]
    )
    assert not refused.ok
    assert "association" in str(refused.error)


async def test_hubspot_refused_association_fails_its_op_and_names_the_association(
    hubspot: HubSpotGateway,
) -> None:
    """The v4 batch create answers a refused association in the spec's ``StandardError`` shape, whose
    context names invalid ids, not the input pair: the op whose association did not land is not ok, and
    says which association; the op beside it in the same batch is written."""
    [company, *people] = await hubspot.write(
        [create("co", "company", {"name": "Real Co"})]
        + [create(f"p{i}", "contact", {"email": f"link{i}@example.com"}) for i in range(2)]
    )
    good, bad = (str(p.object_id) for p in people)
    missing = "987654321"
    outcomes = await hubspot.write(
        [
            update(
                "good", "contact", good, {"firstname": "G"}, associations={"company:1": company.object_id}
            ),
            update("bad", "contact", bad, {"firstname": "B"}, associations={"company:1": missing}),
        ]
    )
    assert [o.ok for o in outcomes] == [True, False]
    error = str(outcomes[1].error)
    assert error.startswith("association: ")
    assert f"contacts {bad} -> companies {missing} (type 1) refused" in error
    assert "One or more associations are invalid" in error
    read = await hubspot.read("contact", [good, bad], fields=["firstname"], associations=["company:1"])
    assert read[good].associations == {"company:1": company.object_id}
    assert read[bad].associations == {"company:1": None}


async def test_hubspot_read_by_a_merged_away_id_answers_with_the_survivor_under_that_id(
    box: Sandbox, hubspot: HubSpotGateway
) -> None:
    """HubSpot resolves an id merged into another record to the merge's record (a new id): the sync asks
    by the id its link holds, and must get the survivor under that id, with its associations."""
    made = await hubspot.write(
        [create("c", "company", {"name": "Merge Co"})]
        + [create(e, "contact", {"email": f"{e}@example.com"}) for e in ("keep", "fold")]
    )
    company, primary, other = (str(o.object_id) for o in made)
    [linked] = await hubspot.write([update("a", "contact", primary, {}, associations={"company:1": company})])
    assert linked.ok
    async with hubspot_admin(box) as admin:
        answer = await admin.post(
            "/objects/contacts/merge", json={"primaryObjectId": primary, "objectIdToMerge": other}
        )
        survivor = str(answer.json()["id"])
    found = await hubspot.read("contact", [primary, other], fields=["email"], associations=["company:1"])
    assert {k: r.object_id for k, r in found.items()} == {
        primary: survivor,
        other: survivor,
        survivor: survivor,
    }
    assert found[primary].values["email"] == "keep@example.com"
    assert found[primary].associations == {"company:1": company}
    # Every read brings the merged ids (the engine finds a lost merge by them), not as a value.
    assert set(found[survivor].merged_ids) == {primary, other}
    assert "hs_merged_object_ids" not in found[survivor].values


async def test_hubspot_own_writes_name_the_fields_the_app_wrote_last(box: Sandbox) -> None:
    """``propertiesWithHistory`` (fact sheet reference/hubspot.md §3.3): a field whose last history entry
    is the app's (``INTEGRATION``, the app id, §6) is its own write; one a user edited since is not. Read
    50 records per call (history lowers the batch limit); without an app id nothing is asked."""
    settings = hubspot_settings(box).model_copy(update={"app_id": box.info.hubspot.app_id})
    ops = [create(f"r{i}", "contact", {"email": f"o{i}@example.com", "city": f"C{i}"}) for i in range(60)]
    async with (
        open_hubspot_gateway(settings, Metrics(CollectorRegistry()), policy=FAST_HUBSPOT) as gw,
        hubspot_admin(box) as admin,
    ):
        ids = [str(o.object_id) for o in await gw.write(ops)]
        edited = await admin.patch(f"/objects/contacts/{ids[0]}", json={"properties": {"city": "Leeds"}})
        assert edited.status_code == 200, edited.text
        await calls(admin, reset=True)
        own = await gw.own_writes("contact", ids, fields=["city", "firstname"])
        assert (await calls(admin))[BATCH_READ] == 2
        assert own == {i: {"city": f"C{n}"} for n, i in enumerate(ids) if n > 0}  # no firstname: no history
    async with (
        open_hubspot_gateway(
            hubspot_settings(box), Metrics(CollectorRegistry()), policy=FAST_HUBSPOT
        ) as anonymous,
        hubspot_admin(box) as admin,
    ):
        await calls(admin, reset=True)
        assert await anonymous.own_writes("contact", ids, fields=["city"]) == {}
        assert BATCH_READ not in await calls(admin)


async def test_hubspot_owner_emails_come_from_one_cached_owner_list(box: Sandbox) -> None:
    """Owner id -> email for the ``owner_email`` lookup: the owner list is read once (active and archived
    owners), answered from memory while fresh, and read again when an id is missing from it."""
    now = [0.0]
    async with (
        open_hubspot_gateway(hubspot_settings(box), Metrics(CollectorRegistry()), policy=FAST_HUBSPOT) as gw,
        hubspot_admin(box) as admin,
    ):
        gw.owner_list._clock = lambda: now[0]
        gone = (await admin.post("/owners", json={"email": "gone@example.com"})).json()["id"]
        await admin.delete(f"/owners/{gone}")
        listed = {o.id: o.email for o in reversed(await gw._client.owner_list())}
        owner = next(i for i, email in listed.items() if email != "gone@example.com")
        await calls(admin, reset=True)
        found = await gw.lookup("owner_email", [owner, gone, "404"])
        assert found == {owner: listed[owner], gone: "gone@example.com"}
        assert await gw.lookup("owner_email", [owner]) == {owner: listed[owner]}
        assert await gw.lookup("formatted_value", [owner]) == {}
        assert (await calls(admin)).get(OWNERS) == 2  # active, then archived; once
        added = (await admin.post("/owners", json={"email": "late@example.com"})).json()["id"]
        assert await gw.lookup("owner_email", [added]) == {}  # read 0 s ago: not again yet
        now[0] = 31.0
        assert await gw.lookup("owner_email", [added]) == {added: "late@example.com"}
        assert (await calls(admin)).get(OWNERS) == 4


async def test_hubspot_owner_list_refused_leaves_owner_emails_out_and_says_why_once(
    hubspot: HubSpotGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A token without ``crm.objects.owners.read`` (403) must not stop the sync: the owner fields are
    left out (counted as ``lookup_not_found``) and the operator is told once what scope is missing."""

    async def refused() -> list[Owner]:
        raise HubSpotFatalError("403: This app hasn't been granted all required scopes", status=403)

    monkeypatch.setattr(hubspot._client, "owner_list", refused)
    with caplog.at_level(logging.ERROR, logger="cdc.hubspot.gateway"):
        assert await hubspot.lookup("owner_email", ["1"]) == {}
        hubspot.owner_list._read_at = -1000.0
        assert await hubspot.lookup("owner_email", ["1"]) == {}
    said = [r.getMessage() for r in caplog.records if "owner list" in r.getMessage()]
    assert len(said) == 1
    assert "crm.objects.owners.read" in said[0]


@pytest.mark.parametrize(("knob", "retry_after"), [("throttle_rate", 10.0), ("error_rate", None)])
async def test_hubspot_outage_is_crm_unavailable(
    box: Sandbox, hubspot: HubSpotGateway, knob: str, retry_after: float | None
) -> None:
    async with hubspot_admin(box) as admin:
        await admin.put("/faults", json={knob: 1.0})
        with pytest.raises(CrmUnavailableError) as caught:
            await hubspot.write([create("r", "contact", {"email": "down@example.com"})])
        with pytest.raises(CrmUnavailableError):
            await hubspot.read("contact", ["1"], fields=["email"])
        await admin.put("/faults", json={knob: 0.0})
    assert caught.value.system is SourceSystem.HUBSPOT
    assert caught.value.retry_after == retry_after
    assert box.info.hubspot.token not in str(caught.value)


async def test_the_sync_roles_gateways_hand_a_lasting_throttle_to_the_engine(box: Sandbox) -> None:
    """`cdc sync`'s gateways use the short client policies (`GATEWAY_POLICY`): a CRM that keeps answering
    429 is waited out once, then reaches the engine as `CrmUnavailableError`, whose pause keeps the consumer
    in its group and a stop honoured (`consumers.retries`); the default policies would wait inside the
    client for as long as the CRM asks, up to an hour per 429, the member dropped from its group meanwhile.
    The sandbox asks for 10 s (HubSpot's TEN_SECONDLY window, reference/hubspot.md §5.2) and 1 s (Dataverse's
    service protection Retry-After, reference/dataverse.md §4)."""
    settings = Settings(hubspot=hubspot_settings(box), dataverse=dataverse_settings(box))
    async with (
        open_gateways(settings, Metrics(CollectorRegistry())) as gateways,
        hubspot_admin(box) as hs,
        dataverse_admin(box) as dv,
    ):
        for admin in (hs, dv):
            await admin.put("/faults", json={"throttle_rate": 1.0})
        try:
            asks = {SourceSystem.HUBSPOT: "email", SourceSystem.DATAVERSE: "emailaddress1"}
            for system, field in asks.items():
                find = gateways[system].find("contact", field, ["x@example.com"], fields=[])
                with pytest.raises(CrmUnavailableError) as caught:
                    await asyncio.wait_for(find, 25)
                assert caught.value.system is system
        finally:
            for admin in (hs, dv):
                await admin.put("/faults", json={"throttle_rate": 0.0})


async def test_hubspot_api_writes_send_webhooks_naming_the_app(box: Sandbox, hubspot: HubSpotGateway) -> None:
    received: list[dict[str, Any]] = []

    async def receive(request: Request) -> Response:
        received.extend(orjson.loads(await request.body()))
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hooks", receive, methods=["POST"])])
    async with serve(receiver, name="hooks") as served:
        box.hubspot.set_webhook_url(f"{served.base_url}/hooks")
        [made] = await hubspot.write([create("r", "contact", {"email": "hook@example.com"})])
        await hubspot.write([update("u", "contact", str(made.object_id), {"firstname": "Hook"})])
        await box.hubspot.wait_webhooks()
        box.hubspot.set_webhook_url(None)
    mine = [e for e in received if str(e.get("objectId")) == made.object_id]
    # A project app (the sandbox's default): generic subscription types, the object by its type id.
    assert {e["subscriptionType"] for e in mine} >= {"object.creation", "object.propertyChange"}
    assert {e["objectTypeId"] for e in mine} == {"0-1"}
    assert {(e["changeSource"], e["sourceId"]) for e in mine} == {
        ("INTEGRATION", str(box.info.hubspot.app_id))
    }


# -- Dataverse --------------------------------------------------------------------------------------


async def test_dataverse_250_creates_land_in_three_batches_and_read_back(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    assert dataverse.system is SourceSystem.DATAVERSE
    ops = [
        create(f"r{i}", "contact", {"firstname": f"D{i}", "emailaddress1": f"d{i}@example.com"})
        for i in range(250)
    ]
    async with dataverse_admin(box) as admin:
        await calls(admin, reset=True)
        outcomes = await dataverse.write(ops)
        assert (await calls(admin))[DV_BATCH] == math.ceil(250 / 100)
    assert all(o.ok and o.object_id and o.version and o.modified_at for o in outcomes)
    ids = [str(o.object_id) for o in outcomes]
    records = await dataverse.read("contact", [*ids, "not-a-guid"], fields=["firstname", "emailaddress1"])
    assert set(records) == set(ids)
    assert records[ids[7]].values == {"firstname": "D7", "emailaddress1": "d7@example.com"}
    assert records[ids[7]].version == outcomes[7].version


async def test_dataverse_one_bad_op_fails_alone_and_names_the_field(dataverse: DataverseGateway) -> None:
    outcomes = await dataverse.write(
        [
            create("a", "contact", {"firstname": "Ok"}),
            create("b", "contact", {"nosuchcolumn": "x"}),
            create("c", "contact", {"firstname": "x" * 500}),
            create("d", "account", {"name": "Fine"}),
            update("e", "contact", "00000000-0000-4000-8000-000000000001", {"firstname": "Ghost"}),
        ]
    )
    assert [o.ok for o in outcomes] == [True, False, False, True, False]
    assert "nosuchcolumn" in str(outcomes[1].error)
    assert "firstname" in str(outcomes[2].error)
    assert "404" in str(outcomes[4].error)


async def test_dataverse_stale_if_match_is_a_conflict(dataverse: DataverseGateway) -> None:
    """The sandbox answers a stale If-Match with the documented body, whose code is empty: the 412 alone
    makes it a conflict (re-read, re-plan), for an update and for a delete."""
    [made] = await dataverse.write([create("a", "account", {"name": "Before"})])
    record_id, first = str(made.object_id), made.version
    [changed] = await dataverse.write([update("u", "account", record_id, {"name": "After"}, if_match=first)])
    assert changed.ok
    assert changed.version not in {None, first}
    stale, stale_delete = await dataverse.write(
        [
            update("s", "account", record_id, {"name": "Late"}, if_match=first),
            WriteOp(
                ref="d",
                kind=WriteKind.DELETE,
                object_type="account",
                values={},
                object_id=record_id,
                if_match=first,
            ),
        ]
    )
    for outcome in (stale, stale_delete):
        assert outcome.conflict
        assert not outcome.ok
        assert outcome.error is None
    current = await dataverse.read("account", [record_id], fields=["name"])
    assert current[record_id].values["name"] == "After"


async def test_dataverse_duplicate_key_412_on_an_if_match_update_is_an_error_not_a_conflict(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    """A 412 whose code names a duplicate key is not about the ETag: re-planning would send it again."""
    key = {"name": "cdc_accountnumber_key", "columns": ["accountnumber"]}
    async with dataverse_admin(box) as admin:
        made = await admin.post("/tables/account/keys", json=key)
        assert made.status_code == 201
        await admin.post("/clock/advance", json={"seconds": made.json()["ready_in_s"]})  # the index is built
    one, two = await dataverse.write(
        [
            create("a", "account", {"name": "One", "accountnumber": "N-1"}),
            create("b", "account", {"name": "Two", "accountnumber": "N-2"}),
        ]
    )
    assert one.ok
    assert two.ok
    [clash] = await dataverse.write(
        [update("c", "account", str(two.object_id), {"accountnumber": "N-1"}, if_match=two.version)]
    )
    assert not clash.ok
    assert not clash.conflict
    assert "412" in str(clash.error)


async def test_dataverse_lookups_set_cleared_and_read_back(dataverse: DataverseGateway) -> None:
    account, other = await dataverse.write(
        [create("a", "account", {"name": "Parent"}), create("b", "contact", {"lastname": "Other"})]
    )
    key = "parentcustomerid:account"
    [contact] = await dataverse.write(
        [create("c", "contact", {"lastname": "Child"}, associations={key: str(account.object_id)})]
    )
    contact_id = str(contact.object_id)

    async def parent(which: str = key) -> str | None:
        records = await dataverse.read("contact", [contact_id], fields=["lastname"], associations=[which])
        return records[contact_id].associations[which]

    assert await parent() == account.object_id
    [cleared] = await dataverse.write([update("x", "contact", contact_id, {}, associations={key: None})])
    assert cleared.ok
    assert await parent() is None
    to_contact = {"parentcustomerid:contact": str(other.object_id)}
    [moved] = await dataverse.write([update("y", "contact", contact_id, {}, associations=to_contact)])
    assert moved.ok
    assert await parent() is None  # it points at a contact now, not an account
    assert await parent("parentcustomerid:contact") == other.object_id


async def test_dataverse_find_by_email_returns_every_duplicate(dataverse: DataverseGateway) -> None:
    made = await dataverse.write(
        [
            create("a", "contact", {"lastname": "A", "emailaddress1": "dup@example.com"}),
            create("b", "contact", {"lastname": "B", "emailaddress1": "DUP@Example.com"}),
            create("c", "contact", {"lastname": "C", "emailaddress1": "o'neil@example.com"}),
        ]
    )
    found = await dataverse.find(
        "contact",
        "emailaddress1",
        ["Dup@example.com", "O'Neil@example.com", "none@example.com"],
        fields=["lastname"],
    )
    assert {r.object_id for r in found["Dup@example.com"]} == {made[0].object_id, made[1].object_id}
    assert [r.values["lastname"] for r in found["O'Neil@example.com"]] == ["C"]
    assert found["none@example.com"] == []


@pytest.mark.parametrize(("knob", "retry_after"), [("throttle_rate", 1.0), ("error_rate", None)])
async def test_dataverse_outage_is_crm_unavailable(
    box: Sandbox, dataverse: DataverseGateway, knob: str, retry_after: float | None
) -> None:
    async with dataverse_admin(box) as admin:
        await admin.put("/faults", json={knob: 1.0})
        with pytest.raises(CrmUnavailableError) as caught:
            await dataverse.write([create("r", "contact", {"lastname": "Down"})])
        with pytest.raises(CrmUnavailableError):
            await dataverse.find("contact", "emailaddress1", ["x@example.com"], fields=[])
        await admin.put("/faults", json={knob: 0.0})
    assert caught.value.system is SourceSystem.DATAVERSE
    assert caught.value.retry_after == retry_after
    assert box.info.dataverse.client_secret not in str(caught.value)


async def web_api(box: Sandbox) -> httpx.AsyncClient:
    """A client of the Dataverse Web API with a token of its own (as another app reading the feed)."""
    async with dataverse_admin(box) as admin:
        token = (await admin.post("/token")).json()["access_token"]
    context = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    return httpx.AsyncClient(verify=context, headers=headers, timeout=60)


async def test_dataverse_gateway_writes_show_in_the_change_tracking_feed(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    await enable_change_tracking(box.daemon_settings(KafkaSettings()), ["contacts"])
    async with await web_api(box) as api:
        url = f"{box.info.dataverse.base_url}/api/data/v9.2/contacts?$select=lastname"
        first = (await api.get(url, headers={"Prefer": "odata.track-changes"})).json()
        [made] = await dataverse.write([create("r", "contact", {"lastname": "Echo"})])
        delta = (await api.get(first["@odata.deltaLink"])).json()
    rows = {row["contactid"]: row for row in delta["value"]}
    assert rows[str(made.object_id)]["@odata.etag"] == made.version


async def made_opportunity(dataverse: DataverseGateway) -> tuple[str, str]:
    """(an opportunity pointing at an account, a contact, an owner and a campaign; one pointing nowhere)."""
    account, contact, owner, campaign = await dataverse.write(
        [
            create("a", "account", {"name": "Acme Corp"}),
            create("c", "contact", {"firstname": "Jane", "lastname": "Roe"}),
            create("u", "systemuser", {"firstname": "Sam", "lastname": "Seller"}),
            create("k", "campaign", {"name": "Spring Launch"}),
        ]
    )
    links = {
        "parentaccountid:account": str(account.object_id),
        "parentcontactid:contact": str(contact.object_id),
        "ownerid:systemuser": str(owner.object_id),
        "campaignid:campaign": str(campaign.object_id),
    }
    linked, bare = await dataverse.write(
        [
            create("o", "opportunity", {"name": "Big deal"}, associations=links),
            create("b", "opportunity", {"name": "Bare deal"}),
        ]
    )
    assert linked.ok
    assert bare.ok
    return str(linked.object_id), str(bare.object_id)


async def test_dataverse_lookup_columns_read_as_display_names(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    linked, bare = await made_opportunity(dataverse)
    fields = ["parentaccountid", "name", "parentcontactid", "ownerid", "campaignid"]
    async with dataverse_admin(box) as admin:
        await calls(admin, reset=True)
        records = await dataverse.read(
            "opportunity", [linked, bare], fields=fields, associations=["parentaccountid:account"]
        )
        assert await calls(admin) == {DV_COLUMNS: 1, DV_QUERY: 1}  # the columns, then the rows
        account_id = records[linked].associations["parentaccountid:account"]
        assert records[linked].values == {
            "parentaccountid": "Acme Corp",
            "name": "Big deal",
            "parentcontactid": "Jane Roe",
            "ownerid": "Sam Seller",
            "campaignid": "Spring Launch",
        }
        assert records[bare].values == {
            "parentaccountid": None,
            "name": "Bare deal",
            "parentcontactid": None,
            "ownerid": None,
            "campaignid": None,
        }
        found = await dataverse.find(
            "opportunity", "name", ["big DEAL", "none"], fields=["parentaccountid", "_parentaccountid_value"]
        )
        again = await dataverse.read("opportunity", [linked], fields=["parentaccountid"])
        assert await calls(admin) == {DV_COLUMNS: 1, DV_QUERY: 3}  # metadata once per table
        accounts = await dataverse.read("account", [str(account_id)], fields=["name"])
        assert await calls(admin) == {DV_COLUMNS: 2, DV_QUERY: 4}
    assert account_id is not None
    assert accounts[account_id].values == {"name": "Acme Corp"}
    [match] = found["big DEAL"]
    assert match.object_id == linked
    assert match.values == {"parentaccountid": "Acme Corp", "_parentaccountid_value": account_id}
    assert found["none"] == []
    assert again[linked].values == {"parentaccountid": "Acme Corp"}


async def test_dataverse_unknown_columns_are_dropped_with_one_warning(
    dataverse: DataverseGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cdc.dataverse.gateway")
    linked, _ = await made_opportunity(dataverse)
    fields = ["name", "nosuchcolumn", "parentaccountid"]
    records = await dataverse.read("opportunity", [linked], fields=fields)
    assert records[linked].values == {"name": "Big deal", "parentaccountid": "Acme Corp"}
    found = await dataverse.find("opportunity", "name", ["Big deal"], fields=fields)
    assert [r.values for r in found["Big deal"]] == [records[linked].values]
    warnings = [r.getMessage() for r in caplog.records if "nosuchcolumn" in r.getMessage()]
    assert len(warnings) == 1
    assert "opportunity" in warnings[0]
    with pytest.raises(ValueError, match="nosuchcolumn"):
        await dataverse.find("opportunity", "nosuchcolumn", ["x"], fields=["name"])
    with pytest.raises(ValueError, match="lookup"):
        await dataverse.find("opportunity", "parentaccountid", ["Acme Corp"], fields=["name"])


async def test_dataverse_without_metadata_falls_back_to_the_standard_lookups(
    dataverse: DataverseGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    linked, _ = await made_opportunity(dataverse)
    client = dataverse._client
    real_get = client.get_json
    refused: list[str] = []

    async def no_metadata(url: str, *, endpoint: str, prefer: str | None = None) -> dict[str, Any]:
        if "/EntityDefinitions(" in url:
            refused.append(url)
            raise FatalError(404, "0x8006088a", "Resource not found", endpoint=endpoint)
        return await real_get(url, endpoint=endpoint, prefer=prefer)

    monkeypatch.setattr(client, "get_json", no_metadata)
    fields = ["name", "ownerid", "parentaccountid"]
    for _ in range(2):
        records = await dataverse.read("opportunity", [linked], fields=fields)
        assert records[linked].values == {
            "name": "Big deal",
            "ownerid": "Sam Seller",
            "parentaccountid": "Acme Corp",
        }
    assert len(refused) == 1
    assert "cannot read the columns of opportunity" in caplog.text


async def test_dataverse_metadata_outage_is_crm_unavailable_and_not_cached(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    linked, _ = await made_opportunity(dataverse)
    async with dataverse_admin(box) as admin:
        await admin.put("/faults", json={"error_rate": 1.0})
        with pytest.raises(CrmUnavailableError):
            await dataverse.read("opportunity", [linked], fields=["parentaccountid"])
        await admin.put("/faults", json={"error_rate": 0.0})
        await calls(admin, reset=True)
        records = await dataverse.read("opportunity", [linked], fields=["parentaccountid"])
        assert await calls(admin) == {DV_COLUMNS: 1, DV_QUERY: 1}
    assert records[linked].values == {"parentaccountid": "Acme Corp"}


# -- creates keyed by the other CRM's id (two replicas, one batch) ------------------------------------


async def provisioned(box: Sandbox) -> None:
    settings = box.daemon_settings(KafkaSettings())
    await provision_sandbox(settings)


async def test_hubspot_creates_of_one_dataverse_record_make_one_record_once_provisioned(
    box: Sandbox, hubspot: HubSpotGateway
) -> None:
    """The same create applied twice (a batch retried, or applied by two replicas across a rebalance)
    upserts by ``cdc_d365id``: one record, both answers naming it, associations set on it."""
    await provisioned(box)
    [company] = await hubspot.write([create("co", "company", {"name": "Keyed Inc"})])
    origin = "6f1c0d1e-0000-4000-8000-000000000001"
    op = create(
        "p",
        "contact",
        {"email": "keyed@example.com"},
        origin_id=origin,
        associations={"company:1": company.object_id},
    )
    first, second = await hubspot.write([op]), await hubspot.write([op])
    assert (first[0].ok, second[0].ok) == (True, True)
    assert first[0].object_id == second[0].object_id
    contact_id = str(first[0].object_id)
    read = await hubspot.read(
        "contact", [contact_id], fields=["email", DATAVERSE_ID_PROPERTY], associations=["company:1"]
    )
    assert read[contact_id].values[DATAVERSE_ID_PROPERTY] == origin
    assert read[contact_id].associations["company:1"] == company.object_id
    emails = [r.properties.get("email") for r in box.hubspot.store.records["contacts"].values()]
    assert emails.count("keyed@example.com") == 1


async def test_hubspot_creates_without_the_property_stay_plain_creates_with_a_warning(
    hubspot: HubSpotGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cdc.hubspot.gateway"):
        [made] = await hubspot.write(
            [create("p", "contact", {"email": "plain@example.com"}, origin_id="x-1")]
        )
    assert made.ok
    assert "has no unique property cdc_d365id" in caplog.text


# -- batch answers in any order, without trace ids on what was written ---------------------------------


def _record_of(box: Sandbox, plural_type: str, object_id: str | None) -> dict[str, Any]:
    record = box.hubspot.store.records[plural_type][str(object_id)]
    return dict(record.properties)


@pytest.mark.parametrize("keyed", [False, True], ids=["plain-creates", "provisioned-upserts"])
async def test_hubspot_batch_creates_link_each_op_to_its_own_record(
    box: Sandbox, hubspot: HubSpotGateway, keyed: bool
) -> None:
    """HubSpot answers a batch in any order and names a written record's trace id nowhere (its documented
    207): every create must still come back with the id of the record made from it, not a neighbour's,
    or the link would tie one Dataverse row to another person's record."""
    if keyed:
        await provisioned(box)
    people = [
        create(f"p{i}", "contact", {"email": f"who{i}@example.com", "firstname": f"Who{i}"})
        for i in range(12)
    ]
    firms = [
        create(f"c{i}", "company", {"name": f"Firm {i}", "city": f"Town {i}"}, origin_id=f"dv-account-{i}")
        for i in range(12)
    ]
    deals = [create(f"d{i}", "deal", {"dealname": "Renewal", "amount": str(100 * i)}) for i in range(6)]
    ops = people + firms + deals
    outcomes = await hubspot.write(ops)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    for op, outcome in zip(ops, outcomes, strict=True):
        held = _record_of(box, plural_of[op.object_type], outcome.object_id)
        assert {k: held.get(k) for k in op.values} == op.values, op.ref
        if keyed and op.origin_id:
            assert held[DATAVERSE_ID_PROPERTY] == op.origin_id
    assert len({o.object_id for o in outcomes}) == len(ops)


plural_of = {"contact": "contacts", "company": "companies", "deal": "deals"}


async def test_hubspot_creates_nothing_tells_apart_go_in_separate_batches(
    box: Sandbox, hubspot: HubSpotGateway
) -> None:
    """Two deals with the same values and no unique property: no answer could say which record is whose,
    so they are sent in two batches, each answer naming one record."""
    ops = [create(f"d{i}", "deal", {"dealname": "Same"}) for i in range(2)] + [
        create("other", "deal", {"dealname": "Other"})
    ]
    async with hubspot_admin(box) as admin:
        await calls(admin, reset=True)
        outcomes = await hubspot.write(ops)
        assert (await calls(admin))[BATCH_CREATE] == 2
    assert all(o.ok for o in outcomes)
    assert len({o.object_id for o in outcomes}) == 3
    assert _record_of(box, "deals", outcomes[2].object_id)["dealname"] == "Other"


@contextlib.asynccontextmanager
async def answers_losing_a_result(box: Sandbox, lose: int) -> AsyncIterator[HubSpotGateway]:
    """A gateway talking to the sandbox through a proxy that drops result ``lose`` from every batch
    create answer (the record is made, the answer does not say so)."""
    upstream = httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=30)

    async def forward(request: Request) -> Response:
        answer = await upstream.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers={
                k: v for k, v in request.headers.items() if k.lower() in {"authorization", "content-type"}
            },
        )
        body = answer.content
        if request.url.path.endswith("/batch/create") and answer.status_code in (200, 201, 207):
            parsed = answer.json()
            del parsed["results"][lose]
            body = orjson.dumps(parsed)
        return Response(body, answer.status_code, media_type="application/json")

    proxy = Starlette(
        routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])]
    )
    settings = hubspot_settings(box)
    async with upstream, serve(proxy, name="lossy-hubspot") as served:
        settings = settings.model_copy(update={"base_url": served.base_url})
        async with open_hubspot_gateway(settings, Metrics(CollectorRegistry()), policy=FAST_HUBSPOT) as gw:
            yield gw


async def test_hubspot_create_missing_from_the_answer_is_read_back_not_created_again(box: Sandbox) -> None:
    """An answer without one input's record: the create is read back by its unique property (the email)
    and linked to what HubSpot made; it is not sent again."""
    ops = [
        create(f"r{i}", "contact", {"email": f"lost{i}@example.com", "firstname": f"L{i}"}) for i in range(4)
    ]
    async with hubspot_admin(box) as admin, answers_losing_a_result(box, lose=0) as gateway:
        await calls(admin, reset=True)
        outcomes = await gateway.write(ops)
        counted = await calls(admin)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for op, outcome in zip(ops, outcomes, strict=True):
        assert _record_of(box, "contacts", outcome.object_id)["email"] == op.values["email"]
    assert counted[BATCH_CREATE] == 1
    assert counted[BATCH_READ] == 1  # the read-back, by email
    assert len(box.hubspot.store.records["contacts"]) == 4


async def test_hubspot_create_missing_from_the_answer_without_a_unique_property_is_unresolved(
    box: Sandbox,
) -> None:
    """A lost answer for a create that carries nothing unique to read it back by: reported as an error
    (the record error is retried, and the retry's match lookup finds what HubSpot made), never linked by
    a guess."""
    ops = [create(f"d{i}", "deal", {"dealname": f"Deal {i}"}) for i in range(2)]
    async with answers_losing_a_result(box, lose=0) as gateway:
        outcomes = await gateway.write(ops)
    [lost] = [o for o in outcomes if not o.ok]
    assert "unresolved" in str(lost.error)
    [kept] = [(op, o) for op, o in zip(ops, outcomes, strict=True) if o.ok]
    assert _record_of(box, "deals", kept[1].object_id)["dealname"] == kept[0].values["dealname"]
    assert len(box.hubspot.store.records["deals"]) == 2


async def test_dataverse_creates_of_one_hubspot_record_make_one_row_once_provisioned(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    """The same create applied twice upserts by the alternate key on ``cdc_hubspotid``: one row."""
    await provisioned(box)
    op = create(
        "p", "contact", {"emailaddress1": "keyed@example.com", "lastname": "Keyed"}, origin_id="90210"
    )
    first, second = await dataverse.write([op]), await dataverse.write([op])
    assert (first[0].ok, second[0].ok) == (True, True)
    assert first[0].object_id == second[0].object_id
    rows = [
        r for r in box.dataverse.store.rows("contact") if r.values.get("emailaddress1") == "keyed@example.com"
    ]
    assert len(rows) == 1
    assert rows[0].values[HUBSPOT_ID_COLUMN] == "90210"


async def test_dataverse_creates_without_the_key_are_posts_with_a_warning(
    dataverse: DataverseGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cdc.dataverse.gateway"):
        [made] = await dataverse.write([create("p", "contact", {"lastname": "Plain"}, origin_id="77")])
    assert made.ok
    assert "has no alternate key on cdc_hubspotid" in caplog.text
    assert "until the key is Active creates are plain POSTs" in caplog.text


async def test_dataverse_a_key_still_being_built_is_asked_about_again_and_used_once_active(
    box: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Dataverse builds a new key's index in the background (Pending -> InProgress -> Active; Learn,
    define-alternate-keys-entity, "Monitor index creation for alternate keys"). A key still Pending at the
    table's first create must not mean plain POSTs for the process's whole life: once it is Active (and the
    last answer is older than ``key_recheck_s``), the same create sent twice makes one row."""
    settings = box.daemon_settings(KafkaSettings())
    async with dataverse_admin(box) as admin:
        assert (await admin.put("/keys", json={"index_delay_s": 600})).status_code == 200
        report = await provision(settings, default_config(), create_columns=True, key_wait_s=0)
        assert {i.object for i in report.dataverse.pending} == {"contact", "account", "opportunity"}
        now = [1000.0]
        metrics = Metrics(CollectorRegistry())
        async with open_dataverse_gateway(
            dataverse_settings(box), metrics, policy=FAST_DATAVERSE, key_recheck_s=60, clock=lambda: now[0]
        ) as gateway:
            with caplog.at_level(logging.INFO, logger="cdc.dataverse.gateway"):
                [early] = await gateway.write(
                    [create("a", "contact", {"lastname": "Early"}, origin_id="501")]
                )
                assert early.ok
                assert "has an alternate key on cdc_hubspotid that is Pending" in caplog.text
                assert "has no alternate key" not in caplog.text  # pending, not missing

                await admin.post("/clock/advance", json={"seconds": 600})  # the index is Active now
                await calls(admin, reset=True)
                now[0] += 30  # within key_recheck_s: the last answer still stands
                [soon] = await gateway.write([create("b", "contact", {"lastname": "Soon"}, origin_id="502")])
                assert soon.ok
                assert KEYS not in await calls(admin)

                now[0] += 31
                op = create("c", "contact", {"lastname": "Later"}, origin_id="503")
                first, second = await gateway.write([op]), await gateway.write([op])
                assert (await calls(admin))[KEYS] == 1  # asked once more, then trusted
                assert "the alternate key on cdc_hubspotid is Active: creates upsert by it" in caplog.text
    assert (first[0].ok, second[0].ok) == (True, True), (first[0].error, second[0].error)
    assert first[0].object_id == second[0].object_id
    rows = [r for r in box.dataverse.store.rows("contact") if r.values.get(HUBSPOT_ID_COLUMN) == "503"]
    assert len(rows) == 1


# -- full calls (issue 17) ------------------------------------------------------------------------------


async def kinds(api: httpx.AsyncClient) -> dict[str, int]:
    by_kind: dict[str, int] = (await api.get("/calls")).json()["by_kind"]
    return by_kind


async def test_a_backfills_lookups_and_reads_of_250_records_take_three_calls_per_kind(
    box: Sandbox, hubspot: HubSpotGateway, dataverse: DataverseGateway
) -> None:
    """First sync looks each record's counterpart up by its match key, then reads it: 100 records per call,
    as full as the APIs allow (a HubSpot search body's 3,000 characters, hubspot.md §3.5; a Dataverse URL's
    32 KB, dataverse.md §2.1), not 25 or 50 (a backfill made 0.296 calls per record, most of them reads and
    lookups in part-full calls). ``ceil(250 / 100)`` calls per kind and system, each value found once."""
    names = [f"Full Co {n:03d}" for n in range(250)]
    emails = [f"full{n:03d}@example.com" for n in range(250)]
    async with hubspot_admin(box) as hs_admin, dataverse_admin(box) as dv_admin:
        (await hs_admin.post("/seed", json={"companies": [{"name": n} for n in names]})).raise_for_status()
        rows = [{"emailaddress1": e, "lastname": "Full"} for e in emails]
        (await dv_admin.post("/tables/contact/rows", json={"rows": rows})).raise_for_status()
        await dataverse.read("contact", [], fields=["lastname"])  # metadata first: not what is counted
        await hs_admin.delete("/calls")
        await dv_admin.delete("/calls")
        companies = await hubspot.find("company", "name", [n.upper() for n in names], fields=["name"])
        contacts = await dataverse.find("contact", "emailaddress1", emails, fields=["lastname"])
        ids = [records[0].object_id for records in contacts.values() if records]
        read = await dataverse.read("contact", ids, fields=["lastname"])
        hs_kinds, dv_kinds = await kinds(hs_admin), await kinds(dv_admin)
    assert sorted(len(found) for found in companies.values()) == [1] * 250
    assert len(ids) == 250
    assert len(read) == 250
    assert hs_kinds["lookup"] == math.ceil(250 / 100), hs_kinds
    assert dv_kinds["lookup"] == math.ceil(250 / 100), dv_kinds
    assert dv_kinds["read"] == math.ceil(250 / 100), dv_kinds


async def test_dataverse_a_delta_row_answers_as_its_read_would_unless_a_customer_lookup_is_set(
    box: Sandbox, dataverse: DataverseGateway
) -> None:
    """A delta row holds the whole row, as a read does (dataverse.md §1.3), without annotations: the record
    built from it equals the read's; a customer lookup holding an id (its target table is an annotation the
    event does not keep) and a lookup read by name (its display name, likewise) are read instead."""
    await enable_change_tracking(box.daemon_settings(KafkaSettings()), ["contacts"])
    [account] = await dataverse.write([create("a", "account", {"name": "Acme"})])
    alone, child = await dataverse.write(
        [
            create("c", "contact", {"lastname": "Alone", "emailaddress1": "alone@example.com"}),
            create(
                "k",
                "contact",
                {"lastname": "Kid"},
                associations={"parentcustomerid:account": account.object_id},
            ),
        ]
    )
    async with await web_api(box) as api:
        url = f"{box.info.dataverse.base_url}/api/data/v9.2/contacts"
        feed = (await api.get(url, headers={"Prefer": "odata.track-changes"})).json()
    events = {
        e.object_id: e
        for e in (
            row_to_event(row, tenant="org", object_type="contact", received_at=datetime.now(UTC))
            for row in feed["value"]
        )
    }
    fields, assocs = ["emailaddress1", "firstname", "lastname"], ["parentcustomerid:account"]

    async def answer(object_id: str, *, names: list[str] = fields) -> Record | None:
        event = events[object_id]
        assert event.record is not None
        return await dataverse.answer(
            "contact", event.record, version=event.source_version, fields=names, associations=assocs
        )

    read = await dataverse.read("contact", [str(alone.object_id)], fields=fields, associations=assocs)
    assert await answer(str(alone.object_id)) == read[str(alone.object_id)]
    assert await answer(str(child.object_id)) is None
    assert await answer(str(alone.object_id), names=[*fields, "ownerid"]) is None
