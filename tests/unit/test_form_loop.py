"""The form-submissions loop's waiting list (`cdc.forms`): a contact whose conversion was seen before it
was linked waits, and is passed once, as soon as its link appears; other changes are not its business."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson

from cdc.forms import FormSubmissionLoop
from cdc.hubspot.errors import RequestError
from cdc.hubspot.paths import Endpoint, endpoints
from consumers.forms import FormSubmissions
from streams.codec import Position
from streams.events import CHANGE_CODEC
from streams.keys import RecordRef

WHERE = Position("changes.hubspot", 0, 1)
NOW = datetime(2026, 12, 6, tzinfo=UTC)


class Side:
    def __init__(self, object_type: str, object_id: str) -> None:
        self.object_type, self.object_id = object_type, object_id


class Link:
    def __init__(self, table: str, row_id: str) -> None:
        self.dataverse = Side(table, row_id)


class Index:
    def __init__(self) -> None:
        self.links: dict[str, Link] = {}

    def find(self, ref: RecordRef) -> Link | None:
        return self.links.get(ref.object_id)


def change(contact_id: str, **props: Any) -> bytes:
    """A contact update as `cdc ingest` publishes it: the bytes the loop reads from the topic."""
    event: dict[str, Any] = {"source": "hubspot", "tenant": "62515", "object_type": "contact"}
    event["object_id"] = contact_id
    event |= {"operation": "update", "origin": "webhook", "changed_properties": props}
    raw = orjson.dumps(event | {"occurred_at": NOW, "received_at": NOW})
    CHANGE_CODEC.decode(raw, WHERE)  # what the topic holds is a valid event
    return raw


def make_loop(index: Index) -> tuple[FormSubmissionLoop, list[tuple[str, tuple[str, str]]]]:
    none = cast(Any, None)
    loop = FormSubmissionLoop(
        none, none, FormSubmissions(), cast(Any, index), none, none, portal_id=62515, group="g"
    )
    passed: list[tuple[str, tuple[str, str]]] = []

    async def record(contact_id: str, customer: tuple[str, str]) -> int:
        passed.append((contact_id, customer))
        return 0

    loop.sync_contact = record  # type: ignore[method-assign]
    return loop, passed


async def test_an_unlinked_contact_waits_and_is_passed_once_its_link_appears() -> None:
    index = Index()
    loop, passed = make_loop(index)
    loop._note(change("7", recent_conversion_date="2026-12-06T10:00:00Z"), WHERE)
    await loop._pass_linked()
    assert passed == []
    assert list(loop.waiting) == ["7"]

    index.links["7"] = Link("contact", "dv-7")
    await loop._pass_linked()
    await loop._pass_linked()
    assert passed == [("7", ("contact", "dv-7"))]
    assert loop.waiting == {}


async def test_only_conversion_changes_of_contacts_are_noted_and_bad_bytes_are_ignored() -> None:
    index = Index()
    index.links["8"] = Link("lead", "dv-8")
    loop, passed = make_loop(index)
    loop._note(change("8", firstname="Ana"), WHERE)
    loop._note(b"not json", WHERE)
    loop._note(None, WHERE)
    await loop._pass_linked()
    assert passed == []
    loop._note(change("8", num_conversion_events="2"), WHERE)
    await loop._pass_linked()
    assert passed == [("8", ("lead", "dv-8"))]


class Forms404:
    """A HubSpot client whose portal has one of the two configured forms."""

    api = endpoints("2026-09")

    async def call(self, endpoint: Endpoint, *names: str, **_: Any) -> dict[str, Any]:
        assert endpoint == self.api.read_form
        if names == ("gone",):
            raise RequestError("HubSpot GET /marketing/v3/forms/{formId} answered 404", status=404)
        return {"id": names[0], "name": "Sign-Up Form"}


async def test_a_configured_form_that_does_not_exist_is_skipped_not_fatal() -> None:
    none = cast(Any, None)
    loop = FormSubmissionLoop(
        none,
        none,
        FormSubmissions(forms=("gone", "f-1")),
        none,
        cast(Any, Forms404()),
        none,
        portal_id=1,
        group="g",
    )
    assert await loop._forms() == (["f-1"], {"f-1": "Sign-Up Form"})
