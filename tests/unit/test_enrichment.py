"""Before routing (`consumers.enrichment`): an unlinked record's match property is read from its CRM unless
the batch's changes of a record created in it carry it (an API create's webhooks: the creation and a
``propertyChange`` per property set, the email's among them)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from consumers.enrichment import answered, carried, enrich
from consumers.loader import standard_fields_config
from consumers.ports import CrmGateway, Record
from consumers.routing import Lookup
from streams.events import ChangeEvent, Operation
from streams.link_store import LinkIndex
from tests.unit.batch_world import HS, change

CONFIG = standard_fields_config()


class Reads:
    """HubSpot contacts by id, every read noted (ids asked)."""

    def __init__(self, emails: dict[str, str]) -> None:
        self.emails = emails
        self.asked: list[tuple[list[str], bool]] = []
        self.system, self.tenant = HS, "portal-1"

    async def read(
        self, object_type: str, ids: Sequence[str], *, archived: bool = False, **_: object
    ) -> dict[str, Record]:
        self.asked.append((list(ids), archived))
        return {i: Record(object_type, i, {"email": self.emails[i]}) for i in ids if i in self.emails}


def created(object_id: str, email: str) -> list[ChangeEvent]:
    """The webhooks of one API create: the creation, then one property change per property set."""
    return [
        change(HS, object_id, Operation.CREATE),
        change(HS, object_id, changed_properties={"firstname": "Ann"}),
        change(HS, object_id, changed_properties={"email": email}),
    ]


async def enriched(reads: Reads, events: list[ChangeEvent]) -> list[ChangeEvent]:
    gateways: dict[object, CrmGateway] = {HS: reads}  # type: ignore[dict-item]
    return await enrich(CONFIG, LinkIndex(), gateways, events)  # type: ignore[arg-type]


async def test_the_webhooks_of_records_created_in_the_batch_route_without_a_read() -> None:
    reads = Reads({})
    events = created("h1", "ann@example.com") + created("h2", "bo@example.com")
    out = await enriched(reads, events)
    assert reads.asked == []
    assert [e.changed_properties.get("email") for e in out] == ["ann@example.com"] * 3 + [
        "bo@example.com"
    ] * 3


async def test_a_change_of_a_record_not_created_in_the_batch_is_still_read() -> None:
    """Without its creation the record may be a merge's survivor: the read brings its merged ids too."""
    reads = Reads({"h1": "now@example.com"})
    events = [change(HS, "h1", changed_properties={"firstname": "Ann"}), *created("h2", "bo@example.com")[1:]]
    out = await enriched(reads, events)
    assert reads.asked == [(["h1", "h2"], False)]
    assert out[0].changed_properties["email"] == "now@example.com"


async def test_a_record_created_and_deleted_in_the_batch_is_read() -> None:
    reads = Reads({})
    events = [*created("h1", "ann@example.com"), change(HS, "h1", Operation.DELETE)]
    await enriched(reads, events)
    assert reads.asked == [(["h1"], False), (["h1"], True)]  # the live record, and the deleted one's merges


def test_the_latest_value_in_the_batch_answers_every_change_of_the_record() -> None:
    events = [*created("h1", "old@example.com"), change(HS, "h1", changed_properties={"email": "new@x.com"})]
    told = carried(events)
    for event in events:
        assert answered(told, event, Lookup(fields=("email",))) == {"email": "new@x.com"}
    assert answered(told, events[0], Lookup(fields=("email",), archived=True)) is None
    assert answered(told, events[0], Lookup(fields=("name",))) is None


@given(st.lists(st.sampled_from(["create", "email", "first", "delete"]), max_size=8))
def test_a_record_is_answered_only_if_created_in_the_batch_after_its_last_delete_and_its_email_told(
    kinds: list[str],
) -> None:
    make = {
        "create": lambda: change(HS, "h1", Operation.CREATE),
        "email": lambda: change(HS, "h1", changed_properties={"email": "a@x.com"}),
        "first": lambda: change(HS, "h1", changed_properties={"firstname": "A"}),
        "delete": lambda: change(HS, "h1", Operation.DELETE),
    }
    events = [make[k]() for k in kinds]
    after_delete = kinds[len(kinds) - kinds[::-1].index("delete") :] if "delete" in kinds else kinds
    expected = "create" in after_delete and "email" in after_delete
    probe = change(HS, "h1")
    assert (answered(carried(events), probe, Lookup(fields=("email",))) is not None) is expected
