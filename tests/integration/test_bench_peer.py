"""The peer baseline of `cdc bench sync` (`cdc.tools.bench.peer`) against the sandbox, so the bench cannot
rot."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.tools.bench.peer import PeerCredentials, PeerSync


@pytest.fixture
async def box() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as sandbox:
        yield sandbox


async def _admin(box: Sandbox) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    info = box.info.as_json()
    hs = httpx.AsyncClient(base_url=info["hubspot"]["base_url"], timeout=30)
    dv = httpx.AsyncClient(
        base_url=info["dataverse"]["base_url"],
        verify=ssl.create_default_context(cafile=info["dataverse"]["ca_bundle"]),
        timeout=30,
    )
    return hs, dv


async def _hs_contacts(hs: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = await hs.get("/_admin/objects/contacts")
    return {(r["properties"].get("email") or "").lower(): r for r in answer.json()["results"]}


async def _dv_contacts(dv: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = await dv.get("/_admin/tables/contact/rows")
    return {(r.get("emailaddress1") or "").lower(): r for r in answer.json()["value"]}


async def test_one_peer_cycle_upserts_changed_contacts_both_ways_by_email(box: Sandbox) -> None:
    hs, dv = await _admin(box)
    peer = PeerSync(PeerCredentials.from_sandbox(box.info.as_json()), since=time.time() - 60)
    try:
        made = await hs.post(
            "/_admin/objects/contacts",
            json={"properties": {"email": "ann@example.com", "firstname": "Ann", "jobtitle": "CTO"}},
        )
        made.raise_for_status()
        # The same person in Dataverse, the email in capitals: one contact, matched case-insensitively.
        await dv.post(
            "/_admin/tables/contact/rows", json={"emailaddress1": "ANN@EXAMPLE.COM", "firstname": "A"}
        )
        await dv.post(
            "/_admin/tables/contact/rows",
            json={"emailaddress1": "bob@example.com", "firstname": "Bob", "telephone1": "+44 1"},
        )
        cycle = await peer.cycle()
        assert cycle.hubspot_changes == 1
        assert cycle.dataverse_changes == 2
        dv_rows, hs_records = await _dv_contacts(dv), await _hs_contacts(hs)
        assert len(dv_rows) == 2  # no duplicate for Ann
        # Ann changed on both sides within one second: the newer change wins, by modification times of
        # which Dataverse's has one-second resolution; either way both sides agree afterwards.
        assert (
            hs_records["ann@example.com"]["properties"]["firstname"]
            == dv_rows["ann@example.com"]["firstname"]
        )
        assert hs_records["bob@example.com"]["properties"]["phone"] == "+44 1"  # created in HubSpot

        # A later edit in HubSpot reaches Dataverse at the next cycle; nothing else is written.
        ann = made.json()["id"]
        (
            await hs.patch(f"/_admin/objects/contacts/{ann}", json={"properties": {"jobtitle": "CEO"}})
        ).raise_for_status()
        cycle = await peer.cycle()
        assert (await _dv_contacts(dv))["ann@example.com"]["jobtitle"] == "CEO"
        assert [(w.target, w.operation, w.values) for w in cycle.writes] == [
            ("dataverse", "update", {"jobtitle": "CEO"})
        ]
    finally:
        await peer.aclose()
        await hs.aclose()
        await dv.aclose()
