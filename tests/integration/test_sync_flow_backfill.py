"""End to end, a backfill's API calls: the Dataverse rows no link knows are read again, in batches."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.sync_stack import eventually, quiet, running_stack, small_config

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 60


async def test_a_backfill_of_dataverse_rows_reads_them_in_batches_not_one_by_one(kafka_settings: Any) -> None:
    """The delta feed holds each new row whole (reference/dataverse.md §1.3: "New and updated rows: full row
    objects, same shape as in 1.2"), but a row no link knows is read again before it is copied: it may be
    late, its record deleted since its poll (`consumers/answered.py`, `test_late_rows.py`; taking the row
    for the read, as the daemon did until 2026-12-07, re-created deleted contacts). The read is one call per
    apply batch and table, not one per row: 60 rows here, at least ten rows a read. Once linked, an edit's row
    newer than what the link saw is taken for the read: editing the 60 rows reads none of them."""
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
        assert 1 <= kinds["read"] <= ROWS // 10, kinds
        assert kinds["poll"] >= 1, kinds  # the feed was read: the rows came from it

        await stack.dv.delete("/_admin/calls")
        ids = {r["emailaddress1"]: r["contactid"] for r in await stack.dv_all("contact")}
        for email in emails:
            await stack.dv_update("contact", ids[email], {"lastname": "Edited"})

        async def edited() -> bool | None:
            names = {
                (r["properties"].get("email") or "").lower(): r["properties"].get("lastname")
                for r in await stack.hs_all("contacts")
            }
            return True if all(names.get(e) == "Edited" for e in emails) else None

        await eventually(edited, within=60, what=f"the {ROWS} edits in HubSpot")
        await quiet(stack)
        kinds = (await stack.calls())["dataverse"]["by_kind"]
    assert kinds["read"] == 0, kinds
