"""Form submissions end to end (issue 19 part 1): a HubSpot contact submits forms; each submission becomes
one row of the provisioned Dataverse table, related to the contact's linked Dataverse contact, once, even
when the change events are read again from the start (a replay)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.config import SyncConfig
from consumers.forms import FormSubmissions
from tests.integration.sync_stack import Stack, eventually, running_stack, small_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TABLE = "cdc_formsubmission"


def forms_config() -> SyncConfig:
    return small_config().model_copy(
        update={"form_submissions": FormSubmissions(fields={"company": "cdc_company"})}
    )


async def submit(stack: Stack, form_id: str, values: dict[str, str]) -> dict[str, Any]:
    answer = await stack.hs.post(
        f"/_admin/forms/{form_id}/submit", json={"values": values, "pageUrl": "https://example.com/signup"}
    )
    assert answer.status_code == 201, answer.text
    sent: dict[str, Any] = answer.json()
    return sent


async def dv_contact_id(stack: Stack, email: str) -> str | None:
    rows = [r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").lower() == email]
    return str(rows[0]["contactid"]) if rows else None


async def test_two_submissions_become_two_rows_of_the_linked_contact_once_even_after_a_replay(
    kafka_settings: Any,
) -> None:
    async with running_stack(kafka_settings, forms_config(), provision=True) as stack:
        made = await stack.hs.post(
            "/_admin/forms", json={"name": "Sign-Up Form", "fields": ["email", "company"]}
        )
        form = made.json()["id"]
        # A visitor's first submission creates the contact: the form loop sees the conversion before the
        # contact is linked, waits, and writes the row once the link appears.
        first = await submit(stack, form, {"email": "grayson@toplineresults.com", "company": "TopLine"})
        contact = await eventually(lambda: dv_contact_id(stack, "grayson@toplineresults.com"), what="contact")

        async def rows(n: int) -> list[dict[str, Any]] | None:
            found = await stack.dv_all(TABLE)
            return found if len(found) >= n else None

        await eventually(lambda: rows(1), what="the first submission's row")
        second = await submit(
            stack, form, {"email": "grayson@toplineresults.com", "company": "TopLine Results"}
        )
        written = await eventually(lambda: rows(2), what="the second submission's row")

        assert len(written) == 2
        assert {r["_cdc_customer_value"] for r in written} == {contact}
        assert {r["cdc_submittedat"][:19] for r in written} == {
            _iso(first["submittedAt"]),
            _iso(second["submittedAt"]),
        }
        assert sorted(r["cdc_company"] for r in written) == ["TopLine", "TopLine Results"]
        assert {(r["cdc_name"], r["cdc_formid"], r["cdc_pageurl"]) for r in written} == {
            ("Sign-Up Form", form, "https://example.com/signup")
        }

        # A replay: a new group reads every change again from the start; no row is added or written.
        await stack.stop_sync()
        await stack.hs.delete("/_admin/calls")
        await stack.dv.delete("/_admin/calls")
        await stack.start_sync(group_prefix=f"{stack.settings.sync.group_prefix}replay-")
        await eventually(lambda: _form_reads(stack), what="the replayed form pass")
        await _still(stack)
        assert len(await stack.dv_all(TABLE)) == 2
        assert await stack.write_calls() == 0


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def _still(stack: Stack, for_s: float = 3.0) -> None:
    """Until HubSpot has answered no call for ``for_s`` seconds (the replayed passes are done; Dataverse
    is polled all the time)."""
    last, since = (await stack.calls())["hubspot"], time.monotonic()
    while time.monotonic() - since < for_s:
        await asyncio.sleep(0.3)
        now = (await stack.calls())["hubspot"]
        if now != last:
            last, since = now, time.monotonic()


async def _form_reads(stack: Stack) -> bool:
    calls = (await stack.hs.get("/_admin/calls")).json()["by_endpoint"]
    return any("/form-integrations/" in endpoint for endpoint in calls)
