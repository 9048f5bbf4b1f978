"""End to end, a backfill's API calls: what the change feeds already say is not asked of the CRMs again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.sync_stack import eventually, quiet, running_stack, small_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 60


async def test_a_backfill_of_dataverse_rows_reads_none_of_them_again(kafka_settings: Any) -> None:
    """The delta feed holds each new row whole (reference/dataverse.md §1.3: "New and updated rows: full row
    objects, same shape as in 1.2"), so syncing N rows to HubSpot makes no read of them on the Dataverse
    side (it made one read per batch and table: the rows again, right after the feed gave them)."""
    emails = [f"row{n:03d}@example.com" for n in range(ROWS)]
    async with running_stack(kafka_settings, small_config()) as stack:
        await stack.dv.delete("/_admin/calls")
        rows = [{"emailaddress1": e, "firstname": f"F{n}", "lastname": "Row"} for n, e in enumerate(emails)]
        (await stack.dv.post("/_admin/tables/contact/rows", json={"rows": rows})).raise_for_status()

        async def landed() -> bool | None:
            found = {(r["properties"].get("email") or "").lower() for r in await stack.hs_all("contacts")}
            return True if found >= set(emails) else None

        await eventually(landed, within=60, what=f"the {ROWS} Dataverse rows in HubSpot")
        await quiet(stack)
        kinds = (await stack.calls())["dataverse"]["by_kind"]
    assert kinds["read"] == 0, kinds
    assert kinds["poll"] >= 1, kinds  # the feed was read: the rows came from it
