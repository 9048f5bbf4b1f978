"""`lookup: owner`: the owner mapping by email (`consumers.owners`), its conversion and its configuration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cdc.owner_lists import OwnerList
from cdc.provisioning.privileges import privilege_needs
from consumers.config import FieldMap, SyncConfig
from consumers.loader import default_config
from consumers.owners import Owner, OwnerReason, owner_table
from consumers.values import Converted, Skipped, convert
from streams.keys import SourceSystem

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
ANN = "0b9a3c1e-0000-4000-8000-00000000000a"
BOB = "0b9a3c1e-0000-4000-8000-00000000000b"
GONE = "0b9a3c1e-0000-4000-8000-00000000000c"
DIRECTORIES = {
    HS: [Owner("101", "Ann@Example.com"), Owner("102", "bob@example.com"), Owner("103", "cy@example.com")],
    DV: [Owner(ANN, " ann@example.COM "), Owner(BOB, "bob@example.com", active=False), Owner(GONE, "")],
}


def test_hubspot_owner_becomes_the_dataverse_user_with_the_same_email_case_insensitively() -> None:
    table = owner_table(["101", "102", "103", "999"], HS, DIRECTORIES)
    assert table == {
        "101": ANN,
        "102": OwnerReason.DISABLED,  # bob is a disabled user: Dataverse refuses him as an owner
        "103": OwnerReason.NO_COUNTERPART,
        "999": OwnerReason.UNKNOWN,
    }


def test_dataverse_user_becomes_the_hubspot_owner_and_a_team_or_blank_email_is_unknown() -> None:
    table = owner_table([ANN.upper(), BOB, GONE, "team-id"], DV, DIRECTORIES)
    # A disabled Dataverse user still owns records: the active HubSpot owner with his email takes them.
    assert table == {
        ANN.upper(): "101",
        BOB: "102",
        GONE: OwnerReason.UNKNOWN,
        "team-id": OwnerReason.UNKNOWN,
    }


def test_an_archived_hubspot_owner_is_not_assigned_but_an_active_one_with_the_email_is() -> None:
    hubspot = [Owner("7", "ann@example.com", active=False), Owner("8", "ann@example.com")]
    assert owner_table([ANN], DV, {HS: hubspot[:1], DV: DIRECTORIES[DV]}) == {ANN: OwnerReason.DISABLED}
    assert owner_table([ANN], DV, {HS: hubspot, DV: DIRECTORIES[DV]}) == {ANN: "8"}


emails = st.sampled_from(["a@x.io", "A@X.io", "b@x.io", " c@x.io", ""])
owners = st.lists(st.builds(Owner, st.sampled_from(["1", "2", "3", "4"]), emails, st.booleans()), max_size=6)


@given(owners, owners, st.sampled_from([HS, DV]))
def test_every_answer_is_an_active_counterpart_with_the_same_email_or_a_reason(
    hubspot: list[Owner], dataverse: list[Owner], source: SourceSystem
) -> None:
    directories = {HS: hubspot, DV: dataverse}
    values = [o.id for o in directories[source]] + ["404"]
    table = owner_table(values, source, directories)
    assert set(table) == set(values)
    for value, answer in table.items():
        if isinstance(answer, OwnerReason):
            continue
        mine = {o.email.strip().casefold() for o in directories[source] if o.id == value}
        theirs = [o for o in directories[source.other] if o.id == answer]
        assert any(o.active and o.email.strip().casefold() in mine for o in theirs)
    assert table["404"] is OwnerReason.UNKNOWN or "404" in {o.id for o in directories[source]}


def owner_field(source: str, target: str) -> FieldMap:
    return FieldMap(source=source, target=target, lookup="owner")


def test_convert_writes_the_counterpart_id_or_skips_with_the_reason() -> None:
    field = owner_field("hubspot_owner_id", "_ownerid_value")
    table = owner_table(["101", "102"], HS, DIRECTORIES)
    assert convert("101", field, source_system=HS, option_sets={}, lookup=table) == Converted(ANN)
    assert convert("102", field, source_system=HS, option_sets={}, lookup=table) == Skipped("owner_disabled")
    assert convert("", field, source_system=HS, option_sets={}, lookup=table) == Converted(None)


def config(source: str, target: str, **field: object) -> SyncConfig:
    step = {
        "name": "contacts",
        "source": {"system": "hubspot", "object": "contact"},
        "target": {"system": "dataverse", "object": "contact"},
        "match": {"source": "email", "target": "emailaddress1", "kind": "email"},
        "fields": [{"source": source, "target": target, "lookup": "owner", **field}],
    }
    return SyncConfig.model_validate({"steps": [step]})


def test_config_takes_an_owner_row_naming_the_dataverse_user_id() -> None:
    assert config("hubspot_owner_id", "_ownerid_value").steps[0].fields[0].lookup == "owner"


@pytest.mark.parametrize(
    ("target", "extra", "says"),
    [
        ("ownerid", {}, "names the Dataverse owner as '_ownerid_value'"),
        ("_ownerid_value", {"target_type": "option"}, "takes no option set; both types are string"),
    ],
)
def test_config_refuses_an_owner_row_that_cannot_carry_a_user_id(
    target: str, extra: dict[str, object], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        config("hubspot_owner_id", target, **extra)


async def test_owner_list_is_read_once_then_on_the_interval_and_at_most_once_per_miss_bound() -> None:
    now = [0.0]
    lists = [[Owner("1", "a@x.io")], [Owner("1", "a@x.io"), Owner("2", "b@x.io")]]

    async def read() -> list[Owner]:
        return lists[min(cached.reads - 1, 1)]

    cached = OwnerList(read, refresh_s=600, miss_s=30, clock=lambda: now[0])
    assert await cached.get() == lists[0]
    assert await cached.get(refresh=True) == lists[0]  # a miss right after a read: not again yet
    now[0] = 31
    assert await cached.get(refresh=True) == lists[1]
    now[0] = 500
    assert await cached.get() == lists[1]
    assert cached.reads == 2
    now[0] = 632
    await cached.get()
    assert cached.reads == 3  # the interval


def test_an_owner_row_needs_users_read_and_assign_on_the_table_it_writes() -> None:
    needs = {(n.verb, n.table) for n in privilege_needs(config("hubspot_owner_id", "_ownerid_value"), [])}
    assert {("Read", "systemuser"), ("Assign", "contact"), ("AppendTo", "systemuser")} <= needs
    plain = {(n.verb, n.table) for n in privilege_needs(default_config(), [])}
    assert not {v for v, _ in plain} & {"Assign"}
