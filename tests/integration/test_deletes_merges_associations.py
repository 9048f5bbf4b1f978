"""End to end: deletes (propagated or not, by the step's policy), HubSpot merges and association changes,
made as a user in one sandbox CRM, reach the other one through the whole pipeline."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest

from streams.topics import TopicRole
from tests.integration.sync_stack import Stack, eventually, quiet, running_stack, small_config
from tests.kafka_reading import read_changes, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def dv_rows(stack: Stack, email: str) -> list[dict[str, Any]]:
    return [r for r in await stack.dv_all("contact") if (r.get("emailaddress1") or "").lower() == email]


async def hs_rows(stack: Stack, email: str) -> list[dict[str, Any]]:
    return [
        r for r in await stack.hs_all("contacts") if (r["properties"].get("email") or "").lower() == email
    ]


async def linked_contacts(stack: Stack, *emails: str) -> list[str]:
    """HubSpot contacts made as a user, once synced to Dataverse and quiet: their HubSpot ids."""
    ids = [await stack.hs_create("contacts", {"email": e, "firstname": e[0].upper()}) for e in emails]
    for email in emails:
        await eventually(partial(dv_rows, stack, email), what=f"{email} in Dataverse")
    await quiet(stack)
    return ids


def skipped(stack: Stack, reason: str) -> float:
    return sum(
        s.value
        for m in stack.metrics.sync_skipped.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("reason") == reason
    )


async def test_deletes_propagate_both_ways_when_the_steps_say_so(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config(deletes="propagate")) as stack:
        await stack.hs_create("contacts", {"email": "gone-hs@example.com", "firstname": "Hub"})
        dv_only = await stack.dv_create(
            "contact", {"emailaddress1": "gone-dv@example.com", "lastname": "Dyn"}
        )
        dv_of_hs = (
            await eventually(lambda: dv_rows(stack, "gone-hs@example.com"), what="the HubSpot contact")
        )[0]
        hs_of_dv = (
            await eventually(lambda: hs_rows(stack, "gone-dv@example.com"), what="the Dataverse one")
        )[0]

        # Deleted in HubSpot -> the Dataverse counterpart is deleted; and the other way round.
        await stack.hs_delete("contacts", (await hs_rows(stack, "gone-hs@example.com"))[0]["id"])
        await stack.dv_delete("contact", dv_only)

        async def both_gone() -> bool:
            return not await dv_rows(stack, "gone-hs@example.com") and not await hs_rows(
                stack, "gone-dv@example.com"
            )

        await eventually(both_gone, what="both counterparts deleted")
        await quiet(stack)
        deletes = [a for a in await read_topic(kafka_settings, TopicRole.AUDIT) if a["action"] == "delete"]
        assert sorted((a["target"]["object_id"], a["reason"]) for a in deletes) == sorted(
            [(dv_of_hs["contactid"], "source_deleted"), (hs_of_dv["id"], "source_deleted")]
        )
        # Our own deletes come back as change events for records no longer linked: nothing more is written.
        assert skipped(stack, "delete_of_unlinked") >= 1

        # The link was tombstoned: the same email created again is a new pair, made once on each side.
        await stack.hs_create("contacts", {"email": "gone-hs@example.com", "firstname": "Again"})
        again = await eventually(lambda: dv_rows(stack, "gone-hs@example.com"), what="the new contact")
        await quiet(stack)
        assert [r["firstname"] for r in await dv_rows(stack, "gone-hs@example.com")] == ["Again"]
        assert len(again) == 1


async def test_by_default_a_delete_stays_on_its_side_and_is_not_recreated(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        hs_id = await stack.hs_create("contacts", {"email": "keep@example.com", "firstname": "Kept"})
        row = (await eventually(lambda: dv_rows(stack, "keep@example.com"), what="the contact in Dataverse"))[
            0
        ]
        await stack.hs_delete("contacts", hs_id)
        await eventually(
            lambda: _positive(skipped(stack, "delete_not_propagated")), what="the delete seen and skipped"
        )
        # An edit on the surviving side does not bring the deleted record back.
        await stack.dv_update("contact", row["contactid"], {"firstname": "Still here"})
        await eventually(
            lambda: _positive(skipped(stack, "counterpart_deleted")), what="the edit seen and skipped"
        )
        await quiet(stack)
        assert await hs_rows(stack, "keep@example.com") == []
        assert [r["firstname"] for r in await dv_rows(stack, "keep@example.com")] == ["Still here"]


async def _positive(value: float) -> bool:
    return value > 0


async def test_a_hubspot_merge_repoints_the_link_to_the_surviving_record(kafka_settings: Any) -> None:
    async with running_stack(kafka_settings, small_config()) as stack:
        primary = await stack.hs_create("contacts", {"email": "m-primary@example.com", "firstname": "Prim"})
        other = await stack.hs_create("contacts", {"email": "m-other@example.com", "firstname": "Oth"})
        dv_primary = (await eventually(lambda: dv_rows(stack, "m-primary@example.com"), what="primary"))[0]
        await eventually(lambda: dv_rows(stack, "m-other@example.com"), what="the other contact")
        await quiet(stack)

        survivor = await stack.hs_merge("contacts", primary, other)
        assert survivor not in (primary, other)  # HubSpot merges into a new record
        # Edits to the survivor reach the primary's Dataverse contact, and edits there reach the survivor.
        await stack.hs_update("contacts", survivor, {"lastname": "Merged"})

        async def landed() -> bool:
            return [r.get("lastname") for r in await dv_rows(stack, "m-primary@example.com")] == ["Merged"]

        await eventually(landed, what="the survivor's edit in Dataverse")
        await stack.dv_update("contact", dv_primary["contactid"], {"firstname": "Back"})

        async def back() -> bool:
            rows = await hs_rows(stack, "m-primary@example.com")
            return [(r["id"], r["properties"].get("firstname")) for r in rows] == [(survivor, "Back")]

        await eventually(back, what="the Dataverse edit on the surviving HubSpot record")
        await quiet(stack)
        # No record was made for the survivor; the second link (the merged-away contact's) is kept for review.
        assert len(await dv_rows(stack, "m-primary@example.com")) == 1
        audit = await read_topic(kafka_settings, TopicRole.AUDIT)
        assert any((a.get("reason") or "").startswith("merge_conflict") for a in audit)


async def test_changing_a_contacts_company_moves_its_parent_account_and_back(kafka_settings: Any) -> None:
    """HubSpot's side comes from a project app (the sandbox's default), provisioned as `cdc provision
    --hubspot-project` writes its webhooks file: its association webhooks are generic
    (``object.associationChange``, types by id, no legacy ``associationType``). The receiver used to
    publish those as changes of no record, so a contact's new company never reached Dataverse (issue 15)."""
    async with running_stack(kafka_settings, small_config(), provision=True) as stack:
        first = await stack.hs_create("companies", {"name": "First Co"})
        second = await stack.hs_create("companies", {"name": "Second Co"})
        contact = await stack.hs_create("contacts", {"email": "mover@example.com", "firstname": "Mo"})
        await stack.hs_associate("contacts", contact, "companies", first)

        async def accounts() -> dict[str, str] | None:
            found = {a["name"]: a["accountid"] for a in await stack.dv_all("account")}
            return found if {"First Co", "Second Co"} <= found.keys() else None

        account = await eventually(accounts, what="both companies as accounts")

        async def parent_is(name: str) -> bool:
            rows = await dv_rows(stack, "mover@example.com")
            return bool(rows) and rows[0].get("_parentcustomerid_value") == account[name]

        await eventually(lambda: parent_is("First Co"), what="the first parent account")
        # HubSpot: the contact's primary company changes -> the Dataverse parent account follows.
        await stack.hs_associate("contacts", contact, "companies", second)
        await eventually(lambda: parent_is("Second Co"), what="the second parent account", within=45)
        moved = [
            c for c in await read_changes(stack.settings.kafka)
            if c.source_event_type == "object.associationChange" and c.object_id == contact
            and c.association is not None and c.association.to_object_id == second
        ]  # fmt: skip
        assert {(c.object_type, c.association.to_object_type) for c in moved if c.association} == {
            ("contact", "company")
        }
        await quiet(stack)

        # Dataverse: the parent account changes back -> HubSpot's primary company follows.
        row = (await dv_rows(stack, "mover@example.com"))[0]
        await stack.dv_update(
            "contact",
            row["contactid"],
            {"parentcustomerid_account@odata.bind": f"/accounts({account['First Co']})"},
        )

        async def primary_company() -> bool:
            answer = await stack.hs.get(f"/_admin/associations/contacts/{contact}")
            types = answer.json().get("companies", {})  # company id -> association type ids (1: primary)
            return 1 in types.get(first, []) and 1 not in types.get(second, [])

        await eventually(primary_company, what="HubSpot's primary company back to the first", within=45)
        await quiet(stack)


async def test_a_dataverse_delete_hidden_by_an_expired_delta_token_still_reaches_hubspot(
    kafka_settings: Any,
) -> None:
    """The poller is down while a linked row is deleted and its delta token expires: the full pass that
    follows lists rows, not deletes. At its end the poller asks about the linked rows it did not list and
    publishes the delete of the one that is gone; the HubSpot counterpart goes with it."""
    config = small_config(deletes="propagate")
    async with running_stack(kafka_settings, config, processes=True) as stack:
        kept = await stack.dv_create("contact", {"emailaddress1": "kept@example.com", "lastname": "Kept"})
        gone = await stack.dv_create("contact", {"emailaddress1": "expired@example.com", "lastname": "Gone"})
        for email in ("kept@example.com", "expired@example.com"):
            await eventually(partial(hs_rows, stack, email), what=f"{email} in HubSpot")
        await asyncio.sleep(3.0)  # the links of both pairs committed (the sync runs in its own process)

        await stack.dv.put("/_admin/change-tracking", json={"expiry_days": 7})
        await stack.kill_role("poll", restart=False)
        await stack.dv_delete("contact", gone)
        await stack.dv.post("/_admin/clock/advance", json={"seconds": 8 * 24 * 3600})  # tokens expire
        await stack.start_role("poll")

        async def hubspot_gone() -> bool:
            return not await hs_rows(stack, "expired@example.com")

        await eventually(hubspot_gone, within=60, what="the HubSpot counterpart of the deleted row to go")
        assert await hs_rows(stack, "kept@example.com")
        assert [r["contactid"] for r in await dv_rows(stack, "kept@example.com")] == [kept]


async def test_a_hubspot_delete_whose_webhook_is_lost_still_reaches_dataverse(kafka_settings: Any) -> None:
    """Every webhook dropped while a linked contact is deleted in HubSpot: the archived record leaves
    search, so only the reconciler's sweep of archived records (every 3 s here) finds the delete, and the
    Dataverse counterpart goes with it; the other linked contact stays."""
    config = small_config(deletes="propagate")
    async with running_stack(kafka_settings, config, reconcile=True) as stack:
        gone = await stack.hs_create("contacts", {"email": "lost-hook@example.com", "firstname": "Lost"})
        await stack.hs_create("contacts", {"email": "stays@example.com", "firstname": "Stays"})
        for email in ("lost-hook@example.com", "stays@example.com"):
            await eventually(partial(dv_rows, stack, email), what=f"{email} in Dataverse")
        await quiet(stack)

        faults = {"webhook_drop_rate": 1.0}
        assert (await stack.hs.put("/_admin/faults", json=faults)).status_code == 200
        await stack.hs_delete("contacts", gone)

        async def dataverse_gone() -> bool:
            return not await dv_rows(stack, "lost-hook@example.com")

        await eventually(dataverse_gone, within=60, what="the Dataverse counterpart of the deleted contact")
        assert await dv_rows(stack, "stays@example.com")
        assert not await hs_rows(stack, "lost-hook@example.com")


async def test_a_hubspot_merge_whose_webhook_is_lost_repoints_the_link_instead_of_a_new_contact(
    kafka_settings: Any,
) -> None:
    """Every webhook dropped while two linked contacts are merged: only the reconciler sees the survivor,
    a new record whose ``hs_merged_object_ids`` names them. The sync applies the merge from that (the link
    moves to the survivor) instead of taking it for a new contact and creating a second Dataverse one."""
    async with running_stack(kafka_settings, small_config(), reconcile=True) as stack:
        primary, other = await linked_contacts(stack, "lm-primary@example.com", "lm-other@example.com")

        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 1.0})).status_code == 200
        survivor = await stack.hs_merge("contacts", primary, other)
        await stack.hs_update("contacts", survivor, {"lastname": "Survivor"})

        async def landed() -> bool:
            return [r.get("lastname") for r in await dv_rows(stack, "lm-primary@example.com")] == ["Survivor"]

        await eventually(landed, within=60, what="the survivor's edit on the primary's Dataverse contact")
        await quiet(stack)
        assert len(await dv_rows(stack, "lm-primary@example.com")) == 1
        assert len(await dv_rows(stack, "lm-other@example.com")) == 1


async def test_a_survivor_deleted_half_a_second_after_a_merge_whose_webhook_was_lost_takes_its_pair_along(
    kafka_settings: Any,
) -> None:
    """The merge's webhooks are lost (no reconciler either); half a second later the user deletes the
    survivor, and that delete's webhook arrives. No link knows the survivor's new id: the sync reads its
    archived record, whose ``hs_merged_object_ids`` names the primary's pair, and deletes that pair's
    Dataverse contact (issue 13: it used to stay for ever)."""
    async with running_stack(kafka_settings, small_config(deletes="propagate")) as stack:
        primary, other = await linked_contacts(stack, "gone-p@example.com", "gone-o@example.com")

        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 1.0})).status_code == 200
        survivor = await stack.hs_merge("contacts", primary, other)
        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 0.0})).status_code == 200
        await asyncio.sleep(0.5)
        await stack.hs_delete("contacts", survivor)

        async def dataverse_gone() -> bool:
            return not await dv_rows(stack, "gone-p@example.com")

        await eventually(
            dataverse_gone, within=60, what="the Dataverse contact of the deleted survivor's pair"
        )
        await quiet(stack)
        assert len(await dv_rows(stack, "gone-o@example.com")) == 1  # the other pair is kept for review


async def test_a_merge_into_the_survivor_of_a_merge_whose_webhook_was_lost_keeps_the_primarys_pair(
    kafka_settings: Any,
) -> None:
    """Three linked contacts: the first merge's webhooks are all lost (no reconciler either), so its
    survivor is unknown to the sync when a second merge folds another linked contact into it. The second
    merge's event names that unknown survivor as primary: the sync reads the new survivor and continues the
    pair whose email it kept, rather than the other linked contact's pair (which would rename that
    Dataverse contact to the primary's email: two Dataverse contacts with one email)."""
    async with running_stack(kafka_settings, small_config()) as stack:
        emails = ("chain-p@example.com", "chain-a@example.com", "chain-b@example.com")
        ids = await linked_contacts(stack, *emails)

        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 1.0})).status_code == 200
        first = await stack.hs_merge("contacts", ids[0], ids[1])
        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 0.0})).status_code == 200
        survivor = await stack.hs_merge("contacts", first, ids[2])
        await stack.hs_update("contacts", survivor, {"lastname": "Chained"})

        async def landed() -> bool:
            return [r.get("lastname") for r in await dv_rows(stack, emails[0])] == ["Chained"]

        await eventually(landed, within=60, what="the survivor's edit on the primary's Dataverse contact")
        await quiet(stack)
        assert len(await dv_rows(stack, emails[0])) == 1
        assert [r.get("lastname") for r in await dv_rows(stack, emails[2])] == [None]


async def test_an_edit_of_a_pair_whose_hubspot_contact_was_merged_unseen_reaches_the_survivor(
    kafka_settings: Any,
) -> None:
    """Every webhook of a merge lost and no reconciler running: the sync learns of the merge only when a
    Dataverse edit makes it read the HubSpot id its link holds, which now answers with the survivor (a new
    id). The merge is applied then, and the edit lands on the survivor instead of being dropped."""
    async with running_stack(kafka_settings, small_config()) as stack:
        primary, other = await linked_contacts(stack, "unseen-p@example.com", "unseen-o@example.com")

        assert (await stack.hs.put("/_admin/faults", json={"webhook_drop_rate": 1.0})).status_code == 200
        survivor = await stack.hs_merge("contacts", primary, other)
        [row] = await dv_rows(stack, "unseen-p@example.com")
        await stack.dv_update("contact", row["contactid"], {"lastname": "FromDataverse"})

        async def landed() -> bool:
            rows = await hs_rows(stack, "unseen-p@example.com")
            return [(r["id"], r["properties"].get("lastname")) for r in rows] == [(survivor, "FromDataverse")]

        await eventually(landed, within=60, what="the Dataverse edit on the surviving HubSpot contact")
        await quiet(stack)
        assert len(await dv_rows(stack, "unseen-p@example.com")) == 1
