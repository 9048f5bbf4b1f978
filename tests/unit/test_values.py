"""Values convert between HubSpot's strings and Dataverse's typed JSON, and compare by one canonical form."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from consumers.config import FieldMap, OptionSet, ValueType
from consumers.values import (
    HUBSPOT_MAX_LENGTH,
    Converted,
    Skipped,
    SkipReason,
    canonical,
    convert,
    is_empty,
    same,
)
from streams.codec import Scalar
from streams.keys import SourceSystem
from tests.unit import strategies

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
T = ValueType
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

LIFECYCLE = OptionSet(
    hubspot={"lead": "Lead", "marketingqualifiedlead": "Marketing Qualified Lead", "customer": "Customer"},
    dataverse={"1": "lead", "2": "  MARKETING qualified lead ", "3": "Customer"},
)
RATING = OptionSet(dataverse={"1": "Hot", "2": "Warm", "3": "Cold"})
STATUS_REASON = OptionSet(
    hubspot={"closedwon": "Closed Won", "closedlost": "Closed Lost", "inprogress": "In Progress"},
    dataverse={"1": "In Progress", "2": "On Hold", "3": "Won", "4": "Canceled", "5": "Out-Sold"},
    overrides={"3": "closedwon", "4": "closedlost", "5": "closedlost"},
)
OPT_OUT = OptionSet(
    hubspot={"true": "Do Not Allow", "false": "Allow"}, dataverse={"1": "Do Not Allow", "0": "Allow"}
)
SETS = {"lifecycle": LIFECYCLE, "rating": RATING, "status_reason": STATUS_REASON, "opt_out": OPT_OUT}


def fmap(
    source_type: ValueType = T.STRING,
    target_type: ValueType = T.STRING,
    *,
    options: str | None = None,
    max_length: int | None = None,
    lookup: Literal["owner_email", "formatted_value"] | None = None,
) -> FieldMap:
    return FieldMap(
        source="src",
        target="dst",
        source_type=source_type,
        target_type=target_type,
        options=options,
        max_length=max_length,
        lookup=lookup,
    )


def hs_to_dv(value: Scalar, field: FieldMap) -> Converted | Skipped:
    return convert(value, field, source_system=HS, option_sets=SETS)


def dv_to_hs(value: Scalar, field: FieldMap) -> Converted | Skipped:
    return convert(value, field, source_system=DV, option_sets=SETS)


# -- examples


@pytest.mark.parametrize(
    ("value", "empty"),
    [(None, True), ("", True), ("  \t\n", True), ("\u3000", True), ("x", False), (" x ", False),
     (0, False), (0.0, False), (False, False)],
)  # fmt: skip
def test_empty_is_none_or_blank_text(value: Scalar, empty: bool) -> None:
    assert is_empty(value) is empty


@pytest.mark.parametrize(
    ("source_type", "target_type", "value", "expected"),
    [
        (T.STRING, T.STRING, "Acme", "Acme"),
        (T.STRING, T.STRING, " Acme  Ltd ", " Acme  Ltd "),  # a user's whitespace is data
        (T.NUMBER, T.NUMBER, "12.50", 12.5),
        (T.NUMBER, T.NUMBER, "100", 100),
        (T.NUMBER, T.NUMBER, "100.00", 100),
        (T.NUMBER, T.NUMBER, "1e3", 1000),
        (T.NUMBER, T.NUMBER, "-0", 0),
        (T.NUMBER, T.NUMBER, " 0.1 ", 0.1),
        (T.NUMBER, T.NUMBER, "12345678901234567890", 1.2345678901234567e19),
        (T.INTEGER, T.INTEGER, "42", 42),
        (T.INTEGER, T.INTEGER, "42.0", 42),
        (T.INTEGER, T.INTEGER, str(2**63 - 1), 2**63 - 1),
        (T.BOOL, T.BOOL, "true", True),
        (T.BOOL, T.BOOL, "FALSE", False),
        (T.BOOL, T.BOOL, " Yes ", True),
        (T.DATE, T.DATE, "2024-01-31", "2024-01-31"),
        (T.DATE, T.DATE, "1706659200000", "2024-01-31"),  # midnight UTC in epoch ms
        (T.DATETIME, T.DATETIME, "2024-01-31T10:00:00.000Z", "2024-01-31T10:00:00Z"),
        (T.DATETIME, T.DATETIME, "2024-01-31T10:00:00.999Z", "2024-01-31T10:00:00Z"),  # whole seconds
        (T.DATETIME, T.DATETIME, "1706695200000", "2024-01-31T10:00:00Z"),
        (T.DATETIME, T.DATETIME, "2024-01-31T11:00:00+01:00", "2024-01-31T10:00:00Z"),
        (T.DATETIME, T.DATETIME, "2024-01-31T10:00:00", "2024-01-31T10:00:00Z"),  # naive means UTC
        (T.DATETIME, T.DATE, "2024-01-31T23:30:00Z", "2024-01-31"),
        (T.DATE, T.DATETIME, "2024-01-31", "2024-01-31T00:00:00Z"),
        (T.NUMBER, T.INTEGER, "12.0", 12),
        (T.INTEGER, T.NUMBER, "12", 12),
        (T.NUMBER, T.STRING, "12.50", "12.5"),
        (T.BOOL, T.STRING, "TRUE", "true"),
        (T.DATETIME, T.STRING, "1706695200000", "2024-01-31T10:00:00Z"),
        (T.BOOL, T.INTEGER, "true", 1),
        (T.INTEGER, T.BOOL, "0", False),
        (T.STRING, T.NUMBER, "12.5", 12.5),
        (T.STRING, T.DATE, "2024-01-31", "2024-01-31"),
        (T.OPTION, T.BOOL, "true", True),  # hs_marketable_status, an enumeration of "true"/"false"
        (T.OPTION, T.OPTION, "7", 7),  # no option set: both sides share values
        (T.OPTION, T.STRING, "b;a", "a;b"),
    ],
)
def test_hubspot_values_become_dataverse_json(
    source_type: ValueType, target_type: ValueType, value: str, expected: Scalar
) -> None:
    result = hs_to_dv(value, fmap(source_type, target_type))
    assert result == Converted(expected)
    assert type(result.value) is type(expected)  # 100, not 100.0; True, not 1


@pytest.mark.parametrize(
    ("source_type", "target_type", "value", "expected"),
    [
        (T.STRING, T.STRING, "Acme", "Acme"),
        (T.NUMBER, T.NUMBER, 12.5, "12.5"),
        (T.NUMBER, T.NUMBER, 100, "100"),
        (T.NUMBER, T.NUMBER, 100.0, "100"),
        (T.NUMBER, T.NUMBER, 1e16, "10000000000000000"),
        (T.NUMBER, T.NUMBER, 1e-7, "0.0000001"),
        (T.NUMBER, T.NUMBER, "12.50", "12.5"),
        (T.INTEGER, T.INTEGER, 42, "42"),
        (T.BOOL, T.BOOL, True, "true"),
        (T.BOOL, T.BOOL, 0, "false"),
        (T.DATE, T.DATE, "2024-01-31", "2024-01-31"),
        (T.DATE, T.DATETIME, "2024-01-31", "2024-01-31T00:00:00.000Z"),  # DateOnly close date: midnight UTC
        (T.DATETIME, T.DATETIME, "2024-01-31T10:00:00Z", "2024-01-31T10:00:00.000Z"),
        (T.DATETIME, T.DATE, "2024-01-31T10:00:00Z", "2024-01-31"),
        (T.INTEGER, T.STRING, 42, "42"),
        (T.OPTION, T.OPTION, 3, "3"),
        (T.OPTION, T.OPTION, "2,1", "1;2"),
        (T.BOOL, T.OPTION, True, "1"),
    ],
)
def test_dataverse_values_become_hubspot_strings(
    source_type: ValueType, target_type: ValueType, value: Scalar, expected: str
) -> None:
    assert dv_to_hs(value, fmap(source_type, target_type)) == Converted(expected)


@pytest.mark.parametrize(
    ("source_type", "value"),
    [
        (T.NUMBER, "abc"),
        (T.NUMBER, "NaN"),
        (T.NUMBER, "Infinity"),
        (T.NUMBER, "1_000"),  # Decimal() would take it
        (T.NUMBER, "١٢"),  # and these Arabic-Indic digits
        (T.NUMBER, "1e400"),  # beyond a double
        (T.NUMBER, True),
        (T.INTEGER, "12.5"),
        (T.INTEGER, str(2**63)),
        (T.INTEGER, "1e999999999"),
        (T.BOOL, "maybe"),
        (T.BOOL, 2),
        (T.DATE, "2024-02-30"),
        (T.DATE, "31/01/2024"),
        (T.DATETIME, "yesterday"),
        (T.DATETIME, "9" * 15),  # epoch ms past year 9999
        (T.DATETIME, 1.5),
        (T.OPTION, ";"),
        (T.OPTION, 2.5),
    ],
)
def test_values_that_do_not_parse_are_skipped(source_type: ValueType, value: Scalar) -> None:
    target = T.STRING if source_type is T.OPTION else source_type
    assert hs_to_dv(value, fmap(source_type, target)) == Skipped("unparseable")


def test_epoch_milliseconds_are_hubspot_only() -> None:
    field = fmap(T.DATETIME, T.DATETIME)
    assert hs_to_dv(1706695200000, field) == Converted("2024-01-31T10:00:00Z")
    assert dv_to_hs("1706695200000", field) == Skipped("unparseable")
    assert dv_to_hs(1706695200000, field) == Skipped("unparseable")


@pytest.mark.parametrize(
    ("source_type", "target_type", "value"),
    [
        (T.NUMBER, T.INTEGER, "12.5"),
        (T.NUMBER, T.BOOL, "2"),
        (T.DATE, T.NUMBER, "2024-01-31"),
        (T.BOOL, T.DATE, "true"),
        (T.STRING, T.INTEGER, "twelve"),
        (T.OPTION, T.OPTION, "lead"),  # a Dataverse choice is an integer
        (T.OPTION, T.BOOL, "a;b"),
    ],
)
def test_values_the_target_type_cannot_hold_are_skipped(
    source_type: ValueType, target_type: ValueType, value: str
) -> None:
    assert hs_to_dv(value, fmap(source_type, target_type)) == Skipped("incompatible")


def test_empty_converts_to_none_whatever_the_types() -> None:
    for source_type in T:
        for target_type in T:
            for value in (None, "", "   "):
                field = fmap(source_type, target_type, lookup="owner_email")
                assert hs_to_dv(value, field) == Converted(None)
                assert dv_to_hs(value, field) == Converted(None)


def test_an_owner_id_is_written_as_the_owners_email_from_the_lookup_table() -> None:
    owners = {"51": "ann@example.com"}
    field = fmap(T.STRING, T.STRING, lookup="owner_email", max_length=20)
    assert convert(" 51 ", field, source_system=HS, option_sets=SETS, lookup=owners) == Converted(
        "ann@example.com"
    )
    assert convert(51, field, source_system=HS, option_sets=SETS, lookup=owners) == Converted(
        "ann@example.com"
    )
    assert convert("52", field, source_system=HS, option_sets=SETS, lookup=owners) == Skipped(
        "lookup_not_found"
    )
    assert hs_to_dv("51", field) == Skipped("lookup_not_found")  # no table read
    assert convert(None, field, source_system=HS, option_sets=SETS, lookup=owners) == Converted(None)
    long = {"51": "a-very-long-owner-address@example.com"}
    assert convert("51", field, source_system=HS, option_sets=SETS, lookup=long) == Skipped("too_long")


def test_length_is_checked_after_rendering() -> None:
    assert hs_to_dv("abcde", fmap(max_length=5)) == Converted("abcde")
    assert hs_to_dv("abcdef", fmap(max_length=5)) == Skipped("too_long")
    assert hs_to_dv("12.50", fmap(T.NUMBER, T.STRING, max_length=4)) == Converted("12.5")
    assert dv_to_hs(123456, fmap(T.INTEGER, T.INTEGER, max_length=5)) == Skipped("too_long")


def test_dataverse_lengths_count_utf16_units_hubspot_lengths_characters() -> None:
    emoji = "\N{GRINNING FACE}" * 3
    assert hs_to_dv(emoji, fmap(max_length=5)) == Skipped("too_long")
    assert hs_to_dv(emoji, fmap(max_length=6)) == Converted(emoji)
    assert dv_to_hs(emoji, fmap(max_length=3)) == Converted(emoji)


def test_hubspot_refuses_strings_longer_than_its_limit_whatever_the_map_says() -> None:
    longest = "x" * HUBSPOT_MAX_LENGTH
    assert dv_to_hs(longest, fmap()) == Converted(longest)
    assert dv_to_hs(longest + "x", fmap()) == Skipped("too_long")
    assert dv_to_hs(longest + "x", fmap(max_length=10**6)) == Skipped("too_long")
    assert hs_to_dv(longest + "x", fmap()) == Converted(longest + "x")


# -- options


def test_options_translate_by_label_trimmed_and_case_insensitive() -> None:
    field = fmap(T.OPTION, T.OPTION, options="lifecycle")
    assert hs_to_dv("marketingqualifiedlead", field) == Converted(2)
    assert hs_to_dv("lead", field) == Converted(1)
    assert dv_to_hs(3, field) == Converted("customer")
    assert dv_to_hs("2", field) == Converted("marketingqualifiedlead")


def test_a_value_without_counterpart_skips_the_field() -> None:
    field = fmap(T.OPTION, T.OPTION, options="lifecycle")
    assert hs_to_dv("evangelist", field) == Skipped("no_option_counterpart")  # not in the set
    assert dv_to_hs(9, field) == Skipped("no_option_counterpart")
    assert hs_to_dv("lead;evangelist", field) == Skipped("no_option_counterpart")  # all or nothing


def test_overrides_come_before_labels() -> None:
    field = fmap(T.OPTION, T.OPTION, options="status_reason")
    assert dv_to_hs(3, field) == Converted("closedwon")  # label "Won" matches nothing
    assert dv_to_hs(5, field) == Converted("closedlost")
    assert dv_to_hs(1, field) == Converted("inprogress")  # no override: by label
    assert dv_to_hs(2, field) == Skipped("no_option_counterpart")


def test_a_string_target_gets_the_option_label() -> None:
    assert dv_to_hs(2, fmap(T.OPTION, T.STRING, options="rating")) == Converted("Warm")
    assert dv_to_hs("1,3", fmap(T.OPTION, T.STRING, options="rating")) == Converted("Hot; Cold")
    assert dv_to_hs(3, fmap(T.OPTION, T.STRING, options="status_reason")) == Converted("closedwon")


def test_text_finds_an_option_by_label() -> None:
    assert hs_to_dv(" warm ", fmap(T.STRING, T.OPTION, options="rating")) == Converted(2)
    assert hs_to_dv("Lukewarm", fmap(T.STRING, T.OPTION, options="rating")) == Skipped(
        "no_option_counterpart"
    )


def test_multi_select_values_translate_one_by_one_in_a_stable_order() -> None:
    field = fmap(T.OPTION, T.OPTION, options="lifecycle")
    assert hs_to_dv("customer;lead", field) == Converted("1,3")
    assert hs_to_dv(";lead;;customer;lead", field) == Converted("1,3")
    assert dv_to_hs("3,1", field) == Converted("customer;lead")


def test_a_bool_through_an_option_set() -> None:
    assert hs_to_dv("true", fmap(T.BOOL, T.OPTION, options="opt_out")) == Converted(1)
    assert hs_to_dv("false", fmap(T.BOOL, T.BOOL, options="opt_out")) == Converted(False)
    assert dv_to_hs(True, fmap(T.BOOL, T.BOOL, options="opt_out")) == Converted("true")


def test_a_missing_option_set_skips_rather_than_crashes() -> None:
    assert hs_to_dv("lead", fmap(T.OPTION, T.OPTION, options="nope")) == Skipped("no_option_set")


def test_skip_reasons_are_stable_metric_labels() -> None:
    assert all(re.fullmatch(r"[a-z][a-z_]*[a-z]", reason) for reason in SkipReason)
    assert str(SkipReason.TOO_LONG) == "too_long"
    assert Skipped(SkipReason.TOO_LONG) == Skipped("too_long")


# -- canonical form


@pytest.mark.parametrize(
    ("value_type", "a", "a_system", "b", "b_system"),
    [
        (T.NUMBER, "12.50", HS, 12.5, DV),
        (T.NUMBER, "100", HS, 100.0, DV),
        (T.NUMBER, "1e2", HS, 100, DV),
        (T.INTEGER, "7", HS, 7, DV),
        (T.DATETIME, "2024-01-31T10:00:00.000Z", HS, "2024-01-31T10:00:00Z", DV),
        (T.DATETIME, "1706695200000", HS, "2024-01-31T10:00:00Z", DV),
        (T.DATETIME, "2024-01-31T11:00:00+01:00", HS, "2024-01-31T10:00:00Z", DV),
        (T.DATE, "1706659200000", HS, "2024-01-31", DV),
        (T.BOOL, "TRUE", HS, True, DV),
        (T.BOOL, "true", HS, True, DV),
        (T.STRING, "", HS, None, DV),
        (T.NUMBER, "", HS, None, DV),
        (T.OPTION, "3", DV, 3, DV),
        (T.OPTION, "b;a", HS, "a;b", HS),
        (T.OPTION, "2,1", DV, "1;2", DV),
    ],
)
def test_one_canonical_form_whatever_the_writing(
    value_type: ValueType, a: Scalar, a_system: SourceSystem, b: Scalar, b_system: SourceSystem
) -> None:
    assert canonical(a, value_type, a_system) == canonical(b, value_type, b_system)


def test_canonical_forms_are_documented() -> None:
    assert canonical("12.50", T.NUMBER, HS) == "12.5"
    assert canonical(True, T.BOOL, DV) == "true"
    assert canonical(7, T.INTEGER, DV) == "7"
    assert canonical("1706695200000", T.DATETIME, HS) == "2024-01-31T10:00:00Z"
    assert canonical("   ", T.STRING, HS) is None


def test_strings_compare_exactly() -> None:
    assert not same("Acme", "Acme ", T.STRING, HS)
    assert not same("Acme", "acme", T.STRING, HS)
    assert same("Acme", "Acme", T.STRING, HS)
    assert same("", None, T.STRING, DV)


def test_unparseable_values_compare_as_written() -> None:
    assert same("n/a", "n/a", T.NUMBER, HS)
    assert not same("n/a", "N/A", T.NUMBER, HS)
    assert not same(True, 1, T.DATE, DV)  # neither parses; True == 1 in Python, not here
    assert not same("12.5", "12.5x", T.NUMBER, HS)


# -- properties

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
odd_text = st.sampled_from(
    ["NaN", "-inf", "1e999999", "1_000", "١٢", "2024-02-30", ";", ",", ";;a", "-", ".", "e5", "9" * 40,
     "1e-999999999", "\x00", "\ud800", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
     "-99999999999999", "99999999999999", " true ", "0x1F", "+.5", "1.", "03", "-0,7"]
)  # fmt: skip
any_scalar = st.one_of(
    strategies.scalars, odd_text, st.text(st.characters(exclude_categories=()), max_size=20)
)
types = st.sampled_from(ValueType)
systems = st.sampled_from(SourceSystem)
ALL_REASONS = {str(reason) for reason in SkipReason}


def renders_as(value: Scalar, value_type: ValueType, system: SourceSystem) -> bool:
    """Whether a converted value has the wire shape of its system and type."""
    if value is None:
        return True
    if system is SourceSystem.HUBSPOT:
        return isinstance(value, str) and bool(value)
    expected: dict[ValueType, tuple[type, ...]] = {
        T.STRING: (str,),
        T.NUMBER: (int, float),
        T.INTEGER: (int,),
        T.BOOL: (bool,),
        T.DATE: (str,),
        T.DATETIME: (str,),
        T.OPTION: (int, str),
    }
    if isinstance(value, bool) and value_type is not T.BOOL:
        return False
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return False
    return isinstance(value, expected[value_type])


field_maps = st.builds(
    fmap,
    types,
    types,
    options=st.sampled_from([None, *SETS, "missing"]),
    max_length=st.none() | st.integers(1, 40),
)


@given(any_scalar, field_maps, systems)
def test_convert_never_raises_and_renders_the_target_shape(
    value: Scalar, field: FieldMap, system: SourceSystem
) -> None:
    result = convert(value, field, source_system=system, option_sets=SETS)
    if isinstance(result, Skipped):
        assert result.reason in ALL_REASONS
    else:
        assert renders_as(result.value, field.target_type, system.other)
        assert canonical(result.value, field.target_type, system.other) is not None or result.value is None


@given(any_scalar, types, systems)
def test_canonical_is_idempotent_and_total(
    value: Scalar, value_type: ValueType, system: SourceSystem
) -> None:
    once = canonical(value, value_type, system)
    assert canonical(once, value_type, system) == once
    assert same(value, value, value_type, system)


@given(any_scalar, types, types, systems, st.sampled_from([None, *SETS]))
def test_converting_the_canonical_form_gives_the_same_result(
    value: Scalar, source_type: ValueType, target_type: ValueType, system: SourceSystem, options: str | None
) -> None:
    field = fmap(source_type, target_type, options=options)
    direct = convert(value, field, source_system=system, option_sets=SETS)
    via_canonical = convert(
        canonical(value, source_type, system), field, source_system=system, option_sets=SETS
    )
    assert via_canonical == direct


# Generated wire values, as each system writes them.

moments = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 -- hypothesis wants naive bounds; timezones= makes them aware
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
)
days = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1))


def epoch_ms(moment: datetime) -> str:
    return str((moment - EPOCH) // timedelta(milliseconds=1))


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def iso_ms_z(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


hubspot_values: dict[ValueType, st.SearchStrategy[str]] = {
    T.STRING: st.text(max_size=40),
    T.NUMBER: st.one_of(
        FLOATS.map(lambda f: format(Decimal(repr(f)), "f")),
        FLOATS.map(repr),
        st.integers(-(10**20), 10**20).map(str),
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    ),
    T.INTEGER: INT64.map(str),
    T.BOOL: st.sampled_from(["true", "false", "TRUE", "False", " yes ", "no"]),
    T.DATE: days.flatmap(lambda d: st.sampled_from([d.isoformat(), epoch_ms(midnight(d))])),
    T.DATETIME: moments.flatmap(lambda m: st.sampled_from([iso_ms_z(m), epoch_ms(m), m.isoformat()])),
}
dataverse_values: dict[ValueType, st.SearchStrategy[Scalar]] = {
    T.STRING: st.text(max_size=40),
    T.NUMBER: st.one_of(FLOATS, INT64),
    T.INTEGER: INT64,
    T.BOOL: st.booleans(),
    T.DATE: days.map(date.isoformat),
    T.DATETIME: moments.map(lambda m: m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
}


def label_key(label: str) -> str:
    return label.strip().casefold()


@st.composite
def option_sets(draw: st.DrawFn) -> OptionSet:
    """A set whose HubSpot and Dataverse options pair up one to one by label."""
    labels = draw(
        st.lists(
            st.text(min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=6, unique_by=label_key
        )
    )
    keys = draw(st.lists(st.from_regex(r"[a-z_0-9]{1,12}", fullmatch=True), min_size=len(labels),
                         max_size=len(labels), unique=True))  # fmt: skip
    ints = draw(st.lists(st.integers(0, 10**9), min_size=len(labels), max_size=len(labels), unique=True))
    # The Dataverse side spells the same labels differently: case and padding do not matter.
    respelled = [
        draw(st.sampled_from([label, label.upper(), label.lower(), f"  {label} "])) for label in labels
    ]
    return OptionSet(
        hubspot=dict(zip(keys, labels, strict=True)),
        dataverse={str(i): label for i, label in zip(ints, respelled, strict=True)},
    )


def round_trip(
    value: Scalar, value_type: ValueType, first: SourceSystem, sets: dict[str, OptionSet]
) -> Scalar:
    options = "set" if value_type is T.OPTION else None
    there = convert(
        value, fmap(value_type, value_type, options=options), source_system=first, option_sets=sets
    )
    assert isinstance(there, Converted), there
    back = convert(
        there.value,
        fmap(value_type, value_type, options=options),
        source_system=first.other,
        option_sets=sets,
    )
    assert isinstance(back, Converted), back
    return back.value


@given(
    st.sampled_from([t for t in T if t is not T.OPTION]).flatmap(
        lambda t: st.tuples(st.just(t), hubspot_values[t])
    )
)
def test_hubspot_to_dataverse_to_hubspot_keeps_the_canonical_value(case: tuple[ValueType, str]) -> None:
    value_type, value = case
    back = round_trip(value, value_type, HS, {})
    assert canonical(back, value_type, HS) == canonical(value, value_type, HS)


@given(
    st.sampled_from([t for t in T if t is not T.OPTION]).flatmap(
        lambda t: st.tuples(st.just(t), dataverse_values[t])
    )
)
def test_dataverse_to_hubspot_to_dataverse_keeps_the_canonical_value(case: tuple[ValueType, Scalar]) -> None:
    value_type, value = case
    back = round_trip(value, value_type, DV, {})
    assert canonical(back, value_type, DV) == canonical(value, value_type, DV)


@given(
    st.sampled_from([t for t in T if t is not T.OPTION]).flatmap(
        lambda t: st.tuples(st.just(t), hubspot_values[t])
    )
)
def test_the_canonical_form_is_the_same_on_both_sides(case: tuple[ValueType, str]) -> None:
    value_type, value = case
    there = hs_to_dv(value, fmap(value_type, value_type))
    assert isinstance(there, Converted)
    assert canonical(there.value, value_type, DV) == canonical(value, value_type, HS)


@given(
    option_sets().flatmap(
        lambda s: st.tuples(st.just(s), st.lists(st.sampled_from(sorted(s.hubspot)), min_size=1))
    )
)
def test_options_round_trip_both_ways(case: tuple[OptionSet, list[str]]) -> None:
    option_set, chosen = case
    value = ";".join(chosen)
    back = round_trip(value, T.OPTION, HS, {"set": option_set})
    assert canonical(back, T.OPTION, HS) == canonical(value, T.OPTION, HS)
    dv_converted = convert(value, fmap(T.OPTION, T.OPTION, options="set"), source_system=HS,
                           option_sets={"set": option_set})  # fmt: skip
    assert isinstance(dv_converted, Converted)
    again = round_trip(dv_converted.value, T.OPTION, DV, {"set": option_set})
    assert canonical(again, T.OPTION, DV) == canonical(dv_converted.value, T.OPTION, DV)


@given(option_sets().flatmap(lambda s: st.tuples(st.just(s), st.sampled_from(sorted(s.hubspot)))))
def test_option_translation_is_by_label(case: tuple[OptionSet, str]) -> None:
    option_set, key = case
    sets = {"set": option_set}
    label = option_set.hubspot[key]
    (expected,) = [
        int(v) for v, other in option_set.dataverse.items() if label_key(other) == label_key(label)
    ]
    to_choice = convert(key, fmap(T.OPTION, T.OPTION, options="set"), source_system=HS, option_sets=sets)
    assert to_choice == Converted(expected)
    to_text = convert(key, fmap(T.OPTION, T.STRING, options="set"), source_system=HS, option_sets=sets)
    assert to_text == Converted(label)
    back = convert(expected, fmap(T.OPTION, T.OPTION, options="set"), source_system=DV, option_sets=sets)
    assert back == Converted(key)


@given(option_sets(), st.text(min_size=1, max_size=12))
def test_values_outside_the_set_have_no_counterpart(option_set: OptionSet, key: str) -> None:
    assume(key.strip() and key.strip() not in option_set.hubspot and ";" not in key)
    result = convert(
        key, fmap(T.OPTION, T.OPTION, options="set"), source_system=HS, option_sets={"set": option_set}
    )
    assert result == Skipped("no_option_counterpart")


def test_options_equal_as_integers_still_have_one_order() -> None:
    """Found by hypothesis: HubSpot option values "0" and "00" are both 0 as integers; their order (and
    so the canonical form) must not depend on the order a set hands them out."""
    assert canonical("00;0", T.OPTION, HS) == canonical("0;00", T.OPTION, HS) == "0;00"
