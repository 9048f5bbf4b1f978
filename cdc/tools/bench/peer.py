"""The peer baseline of `cdc bench sync`: a scheduled poll-and-upsert sync, as users write one instead of us.

A tool, never imported by the product. It is written the way the popular open-source examples do it, and
competently, not as a straw man. Modelled on (found with the `search` tool):

- TYPO3GmbH/ext-hubspot (``HowSynchronizationWorks``): a scheduled job that remembers the last sync time,
  asks HubSpot for contacts changed since, matches them by email and creates or updates the other side;
- the Integration.app "ContactsSync" HubSpot template: search on ``lastmodifieddate GTE <last run>``;
- Dataverse-to-Mailchimp's ``SyncEngine(since=...)`` and Airbyte's Dataverse source (cursor
  ``modifiedon``): an incremental read by ``$filter=modifiedon ge <last run>``.

Every ``interval_s`` one cycle:

1. read both sides' contacts modified since the last cycle started (HubSpot search on ``lastmodifieddate``,
   200 a page; Dataverse ``$filter=modifiedon ge ...``, 5,000 a page), with a 2 s overlap, since
   Dataverse's ``modifiedon`` has one-second resolution (fact sheet dataverse.md, "createdon, modifiedon":
   ``2023-04-07T21:59:01Z``) and HubSpot's search sees a change only "a few moments" later (hubspot.md
   §3.5, freshness);
2. a record changed on both sides since then (same email) goes one way only: the newer modification wins;
3. each changed record is looked up in the other CRM by email, one call per record as the examples do
   (HubSpot search ``EQ``, case-insensitive; Dataverse ``$filter=emailaddress1 eq``, case-insensitive as
   its SQL collation), then created, or updated when a mapped value differs (compare before write: the
   peer's own writes come back as changes in the next cycle and must not bounce).

It keeps no state but the cursor, like the examples: no link table, no last-synced values.
The field map is the standard configuration's contact step (`consumers/standard_fields.yaml`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from cdc.hubspot.paths import endpoints

# HubSpot -> Dataverse and Dataverse -> HubSpot, as in consumers/standard_fields.yaml (contacts).
TO_DATAVERSE = {
    "email": "emailaddress1",
    "firstname": "firstname",
    "lastname": "lastname",
    "city": "address1_city",
    "jobtitle": "jobtitle",
}
TO_HUBSPOT = {
    "emailaddress1": "email",
    "firstname": "firstname",
    "lastname": "lastname",
    "address1_city": "city",
    "telephone1": "phone",
}
HS_PROPERTIES = sorted({*TO_DATAVERSE, *TO_HUBSPOT.values(), "lastmodifieddate"})
DV_COLUMNS = sorted({*TO_HUBSPOT, *TO_DATAVERSE.values(), "contactid", "modifiedon"})
OVERLAP_S = 2.0
HS_CONTACTS = endpoints("legacy").list_objects.path("contacts")
"""The v3 objects API the open-source examples call (the sandbox serves it beside the dated versions)."""
DV_CONTACTS = "/api/data/v9.2/contacts"


@dataclass(frozen=True)
class Write:
    """One write the peer made: when (wall clock, after the target answered), where, and what."""

    at: float
    target: str
    operation: str
    values: dict[str, Any]


@dataclass
class Cycle:
    started: float
    hubspot_changes: int = 0
    dataverse_changes: int = 0
    both_changed: int = 0
    writes: list[Write] = field(default_factory=list)


@dataclass(frozen=True)
class PeerCredentials:
    hubspot_base_url: str
    hubspot_token: str
    dataverse_base_url: str
    dataverse_authority: str
    dataverse_client_id: str
    dataverse_client_secret: str
    dataverse_scope: str
    dataverse_ca: str

    @classmethod
    def from_sandbox(cls, info: Mapping[str, Any]) -> PeerCredentials:
        """From `cdc sandbox --json`'s first line (the bench stack's ``info``)."""
        hub, dv = info["hubspot"], info["dataverse"]
        return cls(
            hub["base_url"], hub["token"], dv["base_url"], dv["authority"], dv["client_id"],
            dv["client_secret"], dv["scope"], dv["ca_bundle"],
        )  # fmt: skip


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _norm(value: Any) -> str:
    return "" if value is None else str(value)


def _differs(target: Mapping[str, Any], values: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The values that differ from the target's (the email compared case-insensitively); an empty source
    value never blanks a target's value (the examples' "only overwrite where the source has data")."""
    out = {}
    for name, value in values.items():
        have, want = _norm(target.get(name)), _norm(value)
        if want and (have.lower() if name == key else have) != (want.lower() if name == key else want):
            out[name] = value
    return out


def _odata_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PeerSync:
    """A poll-and-upsert sync of contacts between HubSpot and Dataverse; :meth:`cycle` is one run of it."""

    def __init__(self, credentials: PeerCredentials, *, since: float | None = None) -> None:
        self.credentials = credentials
        self.cursor = time.time() if since is None else since
        self.cycles: list[Cycle] = []
        self._hs = httpx.AsyncClient(
            base_url=credentials.hubspot_base_url,
            headers={"Authorization": f"Bearer {credentials.hubspot_token}"},
            timeout=60,
        )
        self._dv = httpx.AsyncClient(
            base_url=credentials.dataverse_base_url,
            verify=ssl.create_default_context(cafile=credentials.dataverse_ca),
            timeout=60,
        )
        self._dv_token = ""

    async def aclose(self) -> None:
        await self._hs.aclose()
        await self._dv.aclose()

    # -- the schedule -----------------------------------------------------------------------------------
    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """A cycle every ``interval_s`` (from each cycle's start) until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            await self.cycle()
            remaining = interval_s - (time.monotonic() - started)
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), remaining)

    async def cycle(self) -> Cycle:
        started = time.time()
        since = self.cursor - OVERLAP_S
        cycle = Cycle(started)
        hs_changed = await self._hubspot_changed(since)
        dv_changed = await self._dataverse_changed(since)
        cycle.hubspot_changes, cycle.dataverse_changes = len(hs_changed), len(dv_changed)
        hs_by_email = {_norm(r["email"]).lower(): r for r in hs_changed if r.get("email")}
        dv_by_email = {_norm(r["emailaddress1"]).lower(): r for r in dv_changed if r.get("emailaddress1")}
        for email in hs_by_email.keys() & dv_by_email.keys():
            cycle.both_changed += 1
            # Changed on both sides: the newer modification wins, the other goes nowhere.
            if _ms(hs_by_email[email]["lastmodifieddate"]) >= _ms(dv_by_email[email]["modifiedon"]):
                del dv_by_email[email]
            else:
                del hs_by_email[email]
        for email, record in hs_by_email.items():
            values = {TO_DATAVERSE[k]: record.get(k) for k in TO_DATAVERSE}
            await self._upsert_dataverse(email, values, cycle)
        for email, row in dv_by_email.items():
            values = {TO_HUBSPOT[k]: row.get(k) for k in TO_HUBSPOT}
            await self._upsert_hubspot(email, values, cycle)
        self.cursor = started
        self.cycles.append(cycle)
        return cycle

    # -- HubSpot ------------------------------------------------------------------------------------------
    async def _hs_search(self, filters: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "filterGroups": [{"filters": filters}],
            "properties": HS_PROPERTIES,
            "limit": 200,
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        }
        if after:
            body["after"] = after
        answer = await self._hs.post(f"{HS_CONTACTS}/search", json=body)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def _hubspot_changed(self, since: float) -> list[dict[str, Any]]:
        flt = [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(int(since * 1000))}]
        records, after = [], None
        while True:
            page = await self._hs_search(flt, after)
            records += [{"id": r["id"], **r["properties"]} for r in page["results"]]
            after = page.get("paging", {}).get("next", {}).get("after")
            if not after:
                return records

    async def _upsert_hubspot(self, email: str, values: dict[str, Any], cycle: Cycle) -> None:
        page = await self._hs_search([{"propertyName": "email", "operator": "EQ", "value": email}])
        if page["results"]:
            found = page["results"][0]
            changed = _differs(found["properties"], values, "email")
            if not changed:
                return
            answer = await self._hs.patch(f"{HS_CONTACTS}/{found['id']}", json={"properties": changed})
            operation = "update"
        else:
            changed = {k: v for k, v in values.items() if v not in (None, "")}
            answer = await self._hs.post(HS_CONTACTS, json={"properties": changed})
            operation = "create"
        answer.raise_for_status()
        cycle.writes.append(Write(time.time(), "hubspot", operation, changed))

    # -- Dataverse -----------------------------------------------------------------------------------------
    async def _dv_get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        answer = await self._dv_call("GET", url, params=params, headers={"Prefer": "odata.maxpagesize=5000"})
        result: dict[str, Any] = answer.json()
        return result

    async def _dv_call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One Web API call, with a new token first when there is none or the last one expired (401)."""
        for attempt in range(2):
            if not self._dv_token:
                await self._renew_token()
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self._dv_token}"}
            answer = await self._dv.request(method, url, headers=headers, **kwargs)
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if answer.status_code == httpx.codes.UNAUTHORIZED and attempt == 0:
                self._dv_token = ""
                continue
            answer.raise_for_status()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _renew_token(self) -> None:
        c = self.credentials
        answer = await self._dv.post(
            f"{c.dataverse_authority}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": c.dataverse_client_id,
                "client_secret": c.dataverse_client_secret,
                "scope": c.dataverse_scope,
            },
        )
        answer.raise_for_status()
        self._dv_token = answer.json()["access_token"]

    async def _dataverse_changed(self, since: float) -> list[dict[str, Any]]:
        stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {
            "$select": ",".join(DV_COLUMNS),
            "$filter": f"modifiedon ge {stamp}",
            "$orderby": "modifiedon asc",
        }
        page = await self._dv_get(DV_CONTACTS, params)
        rows = list(page["value"])
        while page.get("@odata.nextLink"):
            page = await self._dv_get(page["@odata.nextLink"])
            rows += page["value"]
        return rows

    async def _upsert_dataverse(self, email: str, values: dict[str, Any], cycle: Cycle) -> None:
        params = {"$select": ",".join(DV_COLUMNS), "$filter": f"emailaddress1 eq {_odata_text(email)}"}
        found = (await self._dv_get(DV_CONTACTS, params))["value"]
        if found:
            changed = _differs(found[0], values, "emailaddress1")
            if not changed:
                return
            await self._dv_call("PATCH", f"{DV_CONTACTS}({found[0]['contactid']})", json=changed)
            operation = "update"
        else:
            changed = {k: v for k, v in values.items() if v not in (None, "")}
            await self._dv_call("POST", DV_CONTACTS, json=changed)
            operation = "create"
        cycle.writes.append(Write(time.time(), "dataverse", operation, changed))
