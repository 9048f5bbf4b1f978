"""Routing: every change of a pair lands on one route, linked or not (guarantee 4), with no I/O.

A linked record routes by its link; before linking, a HubSpot contact and a Dataverse contact with the same
email (whatever its case or surrounding whitespace) meet on one match route; a record with no match key
gets a route of its own; an object no enabled step syncs makes no work at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.config import Pair, SyncConfig
from consumers.loader import default_config, load_config
from consumers.routing import Lookup, match_field, needs_lookup, route, routes
from streams.codec import Scalar
from streams.events import ChangeEvent, Operation, Origin
from streams.keys import RecordRef, SourceSystem
from streams.link_store import LinkIndex
from streams.links import Link, LinkSide, link_id_for
from streams.work import link_route, match_route, record_route

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
TENANTS = {HS: "portal-1", DV: "org.crm.dynamics.com"}
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTACTS = Pair(hubspot="contact", dataverse="contact")
ACCOUNTS = Pair(hubspot="company", dataverse="account")
DEALS = Pair(hubspot="deal", dataverse="opportunity")


@pytest.fixture(scope="module")
def config() -> SyncConfig:
    return load_config()


def event(
    system: SourceSystem,
    object_type: str,
    object_id: str,
    *,
    changed: dict[str, Scalar] | None = None,
    record: dict[str, Scalar] | None = None,
    operation: Operation = Operation.UPDATE,
    merged_ids: tuple[str, ...] = (),
) -> ChangeEvent:
    return ChangeEvent(
        merged_ids=merged_ids,
        source=system,
        tenant=TENANTS[system],
        object_type=object_type,
        object_id=object_id,
        operation=operation,
        origin=Origin.WEBHOOK,
        changed_properties=changed or {},
        record=record,
        occurred_at=AT,
        received_at=AT,
    )


def ids(index: LinkIndex) -> dict[str, str]:
    """Record key -> link id, every key the index holds (the router asks the store for a batch's keys in
    one lookup: `consumers.routing.linked`)."""
    keys = [key for link in index for side in (link.hubspot, link.dataverse) for key in side.alias_keys()]
    return index.link_ids(keys)


def ref(system: SourceSystem, object_type: str, object_id: str) -> RecordRef:
    return RecordRef(system=system, tenant=TENANTS[system], object_type=object_type, object_id=object_id)


def linked(index: LinkIndex, hubspot: RecordRef, dataverse: RecordRef, merged: tuple[str, ...] = ()) -> Link:
    link = Link(
        link_id=link_id_for(hubspot, dataverse),
        hubspot=LinkSide(**hubspot.model_dump(), merged_ids=merged),
        dataverse=LinkSide(**dataverse.model_dump()),
        created_at=AT,
        updated_at=AT,
    )
    index.apply(link.link_id, link)
    return link


def test_a_linked_record_routes_by_its_link_from_either_side(config: SyncConfig) -> None:
    index = LinkIndex()
    link = linked(index, ref(HS, "contact", "51"), ref(DV, "contact", "guid-1"))
    from_hubspot = event(HS, "contact", "51", changed={"email": "someone@else.org"})
    from_dynamics = event(DV, "contact", "guid-1", changed={"emailaddress1": "other@else.org"})
    assert route(config, ids(index), from_hubspot, CONTACTS) == link_route(link.link_id)
    assert route(config, ids(index), from_dynamics, CONTACTS) == link_route(link.link_id)
    assert [w.route for w in routes(config, ids(index), from_hubspot)] == [link_route(link.link_id)]


def test_a_record_merged_into_a_linked_one_routes_by_that_link(config: SyncConfig) -> None:
    index = LinkIndex()
    link = linked(index, ref(HS, "contact", "51"), ref(DV, "contact", "guid-1"), merged=("40",))
    assert route(config, ids(index), event(HS, "contact", "40"), CONTACTS) == link_route(link.link_id)


@pytest.mark.parametrize(
    ("hubspot_email", "dataverse_email"),
    [
        ("Ann@Example.com", "ann@example.com"),
        ("  ann@example.com\t", "ANN@EXAMPLE.COM"),
        ("\uff41\uff4e\uff4e@example.com", "ann@example.com"),  # fullwidth "ann", which NFKC folds
    ],
)
def test_unlinked_contacts_with_the_same_email_share_a_route(
    config: SyncConfig, hubspot_email: str, dataverse_email: str
) -> None:
    index = LinkIndex()
    hubspot = event(HS, "contact", "51", changed={"email": hubspot_email})
    dynamics = event(DV, "contact", "guid-1", record={"emailaddress1": dataverse_email, "firstname": "Ann"})
    assert route(config, ids(index), hubspot, CONTACTS) == route(config, ids(index), dynamics, CONTACTS)
    assert route(config, ids(index), hubspot, CONTACTS) == match_route(str(CONTACTS), "ann@example.com")


def test_different_emails_get_different_routes(config: SyncConfig) -> None:
    index = LinkIndex()
    a = event(HS, "contact", "51", changed={"email": "ann@example.com"})
    b = event(DV, "contact", "guid-1", changed={"emailaddress1": "bob@example.com"})
    assert route(config, ids(index), a, CONTACTS) != route(config, ids(index), b, CONTACTS)


def test_the_whole_record_is_read_before_the_changed_properties(config: SyncConfig) -> None:
    index = LinkIndex()
    e = event(
        DV, "contact", "guid-1", changed={"firstname": "Ann"}, record={"emailaddress1": "ann@example.com"}
    )
    assert route(config, ids(index), e, CONTACTS) == match_route(str(CONTACTS), "ann@example.com")


@pytest.mark.parametrize("values", [{}, {"email": None}, {"email": "  "}, {"email": "no address"}])
def test_a_record_without_a_match_key_gets_its_own_route(
    config: SyncConfig, values: dict[str, Scalar]
) -> None:
    index = LinkIndex()
    e = event(HS, "contact", "51", changed=values)
    assert route(config, ids(index), e, CONTACTS) == record_route(str(CONTACTS), e.ref.key)
    other = event(HS, "contact", "52", changed=values)
    assert route(config, ids(index), other, CONTACTS) != route(config, ids(index), e, CONTACTS)


def test_companies_and_accounts_meet_by_normalized_name(config: SyncConfig) -> None:
    index = LinkIndex()
    company = event(HS, "company", "7", changed={"name": "  Acme   Widgets "})
    account = event(DV, "account", "guid-7", changed={"name": "ACME WIDGETS"})
    assert route(config, ids(index), company, ACCOUNTS) == route(config, ids(index), account, ACCOUNTS)
    assert route(config, ids(index), company, ACCOUNTS) == match_route(str(ACCOUNTS), "acme widgets")


def test_deals_and_opportunities_meet_by_name(config: SyncConfig) -> None:
    index = LinkIndex()
    deal = event(HS, "deal", "9", changed={"dealname": "Big Deal"})
    opportunity = event(DV, "opportunity", "guid-9", changed={"name": "big deal"})
    assert [w.route for w in routes(config, ids(index), deal)] == [
        w.route for w in routes(config, ids(index), opportunity)
    ]


@pytest.mark.parametrize(
    ("system", "object_type"),
    [(HS, "ticket"), (DV, "lead"), (DV, "incident"), (HS, "line_item")],  # lead steps are off by default
)
def test_an_object_no_enabled_step_syncs_makes_no_work(
    config: SyncConfig, system: SourceSystem, object_type: str
) -> None:
    e = event(
        system, object_type, "1", changed={"email": "ann@example.com", "emailaddress1": "ann@example.com"}
    )
    assert routes(config, {}, e) == []
    assert needs_lookup(config, {}, e) is None


def test_a_change_becomes_one_work_item_per_pair(config: SyncConfig) -> None:
    e = event(HS, "contact", "51", changed={"email": "ann@example.com"})
    items = routes(config, {}, e)
    assert [(w.pair, w.route) for w in items] == [
        ("contact~contact", match_route("contact~contact", "ann@example.com"))
    ]
    assert items[0].change == e


def test_a_contact_in_a_lead_pair_and_a_contact_pair_makes_two_items(config: SyncConfig) -> None:
    steps = tuple(s.model_copy(update={"enabled": True}) for s in config.steps)
    both = config.model_copy(update={"steps": steps, "allow_leads_with_contacts": True})
    e = event(HS, "contact", "51", changed={"email": "Ann@example.com"})
    items = routes(both, {}, e)
    assert sorted(w.pair for w in items) == ["contact~contact", "contact~lead"]
    assert {w.route.rsplit("/", 1)[1] for w in items} == {"ann%40example.com"}


def test_match_fields_name_each_systems_side_of_the_rule(config: SyncConfig) -> None:
    assert match_field(config, CONTACTS, HS) == "email"
    assert match_field(config, CONTACTS, DV) == "emailaddress1"
    assert match_field(config, DEALS, HS) == "dealname"
    assert match_field(config, DEALS, DV) == "name"
    assert match_field(config, Pair(hubspot="contact", dataverse="lead"), HS) is None


def test_an_unlinked_change_without_its_match_property_needs_a_lookup(config: SyncConfig) -> None:
    index = LinkIndex()
    assert needs_lookup(
        config, ids(index), event(HS, "contact", "51", changed={"firstname": "Ann"})
    ) == Lookup(fields=("email",))
    assert needs_lookup(config, ids(index), event(HS, "contact", "51", changed={"email": None})) is None
    assert needs_lookup(config, ids(index), event(DV, "account", "g", record={"name": "Acme"})) is None
    linked(index, ref(HS, "contact", "51"), ref(DV, "contact", "guid-1"))
    assert needs_lookup(config, ids(index), event(HS, "contact", "51", changed={"firstname": "Ann"})) is None


emails = st.emails().filter(lambda e: len(e) < 80)
noise = st.sampled_from(["", " ", "\t", "  \n"])


@settings(max_examples=100, deadline=None)
@given(email=emails, before=noise, after=noise, upper=st.booleans(), data=st.data())
def test_any_spelling_of_one_email_routes_both_sides_together(
    email: str, before: str, after: str, upper: bool, data: st.DataObject
) -> None:
    config = default_config()  # read once: load_config() parses the YAML on every call
    spelled = before + (email.upper() if upper else email) + after
    hubspot = event(
        HS, "contact", data.draw(st.from_regex(r"[0-9]{1,12}", fullmatch=True)), changed={"email": spelled}
    )
    dynamics = event(DV, "contact", data.draw(st.uuids()).hex, changed={"emailaddress1": email})
    assert route(config, {}, hubspot, CONTACTS) == route(config, {}, dynamics, CONTACTS)


def test_the_delete_of_an_unknown_hubspot_record_reads_its_archived_merged_ids(config: SyncConfig) -> None:
    """It may be the survivor of a merge whose webhook was lost: its archived record names the merged ids
    a link holds. A deleted Dataverse row cannot be read at all, so its delete asks for nothing."""
    index = LinkIndex()
    deleted = event(HS, "contact", "77", operation=Operation.DELETE)
    assert needs_lookup(config, ids(index), deleted) == Lookup(fields=("email",), archived=True)
    assert needs_lookup(config, ids(index), event(DV, "contact", "g", operation=Operation.DELETE)) is None
    assert needs_lookup(config, ids(index), event(HS, "ticket", "9", operation=Operation.DELETE)) is None
    linked(index, ref(HS, "contact", "77"), ref(DV, "contact", "guid-7"))
    assert needs_lookup(config, ids(index), deleted) is None


def test_a_merges_survivor_routes_with_the_pair_of_an_id_it_names(config: SyncConfig) -> None:
    """Before the merge reaches the links, the survivor's record (read before routing) names the merged
    ids: its changes go where the pair of the merged record goes, so one consumer owns that pair."""
    index = LinkIndex()
    link = linked(index, ref(HS, "contact", "51"), ref(DV, "contact", "guid-1"))
    survivor = event(HS, "contact", "90", changed={"email": "x@example.com"}, merged_ids=("12", "51"))
    assert route(config, ids(index), survivor, CONTACTS) == link_route(link.link_id)
    assert needs_lookup(config, ids(index), survivor) is None
    stranger = event(HS, "contact", "91", changed={"email": "x@example.com"}, merged_ids=("12", "13"))
    assert route(config, ids(index), stranger, CONTACTS) == match_route(str(CONTACTS), "x@example.com")
