"""Live option sets (`consumers.live_options`): which fields a live set reads, and what the configuration
becomes once their labels are read; values then meet by label, case-insensitively with spaces collapsed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.config import FieldMap, SyncConfig, ValueType
from consumers.live_options import OptionField, live_fields, with_labels
from consumers.values import Converted, Skipped, convert
from streams.keys import SourceSystem

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
T = ValueType
HS_TIER = OptionField(HS, "company", "cdc_tier")
DV_TIER = OptionField(DV, "account", "cdc_tier")


def config(*, live: bool = True) -> SyncConfig:
    field = {"source": "cdc_tier", "target": "cdc_tier", "source_type": "option", "target_type": "option"}
    return SyncConfig.model_validate(
        {
            "steps": [
                {
                    "name": "companies_to_accounts",
                    "source": {"system": "hubspot", "object": "company"},
                    "target": {"system": "dataverse", "object": "account"},
                    "fields": [{**field, "options": "tier"}],
                    "match": {"source": "name", "target": "name", "kind": "name"},
                },
                {
                    "name": "accounts_to_companies",
                    "source": {"system": "dataverse", "object": "account"},
                    "target": {"system": "hubspot", "object": "company"},
                    "fields": [{**field, "options": "tier"}],
                    "match": {"source": "name", "target": "name", "kind": "name"},
                },
            ],
            "option_sets": {"tier": {"hubspot": {"gold": "Gold"}, "dataverse": {"1": "Gold"}, "live": live}},
        }
    )


def to_dataverse(cfg: SyncConfig, value: str) -> Converted | Skipped:
    field = FieldMap(
        source="cdc_tier", target="cdc_tier", source_type=T.OPTION, target_type=T.OPTION, options="tier"
    )
    return convert(value, field, source_system=HS, option_sets=cfg.option_sets)


def test_a_live_set_reads_every_field_that_names_it_on_both_sides() -> None:
    assert live_fields(config()) == {"tier": (DV_TIER, HS_TIER)}
    assert live_fields(config(live=False)) == {}


def test_a_label_added_on_both_sides_maps_once_read() -> None:
    before = config()
    assert to_dataverse(before, "platinum") == Skipped("no_option_counterpart")
    after = with_labels(
        before,
        {HS_TIER: {"gold": "Gold", "platinum": "Platinum"}, DV_TIER: {"1": "Gold", "100000000": "platinum "}},
    )
    assert to_dataverse(after, "platinum") == Converted(100000000)
    assert to_dataverse(after, "gold") == Converted(1)


def test_a_label_on_one_side_only_still_skips_the_field() -> None:
    after = with_labels(config(), {HS_TIER: {"gold": "Gold", "platinum": "Platinum"}})
    assert to_dataverse(after, "platinum") == Skipped("no_option_counterpart")


def test_a_field_not_read_keeps_the_configured_labels() -> None:
    cfg = config()
    assert with_labels(cfg, {}) is cfg
    assert to_dataverse(with_labels(cfg, {HS_TIER: {}}), "gold") == Converted(1)


def test_a_set_that_is_not_live_is_left_alone() -> None:
    cfg = config(live=False)
    assert with_labels(cfg, {HS_TIER: {"gold": "Silver"}}) is cfg


def test_labels_read_override_the_configured_ones() -> None:
    after = with_labels(config(), {DV_TIER: {"1": "Bronze"}})
    assert after.option_sets["tier"].dataverse == {"1": "Bronze"}
    assert to_dataverse(after, "gold") == Skipped("no_option_counterpart")


def spaced(label: str, draw_case: list[bool], pad: str) -> str:
    """``label`` with its letters' case flipped where ``draw_case`` says and its spaces widened."""
    flips = [*draw_case, *[False] * len(label)][: len(label)]
    flipped = "".join(c.swapcase() if flip else c for c, flip in zip(label, flips, strict=True))
    return pad + flipped.replace(" ", pad + " ") + pad


words = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6), min_size=1, max_size=3
)


@given(
    words, st.lists(st.booleans(), max_size=20), st.sampled_from(["", " ", "  ", "\t"]), st.integers(0, 2**30)
)
def test_the_same_label_maps_whatever_its_case_and_spacing(
    parts: list[str], flips: list[bool], pad: str, value: int
) -> None:
    """Labels meet case-insensitively with runs of spaces as one: an admin's "Key  account " on one side is
    the "key account" of the other (the UIs show neither the doubled nor the trailing space)."""
    label = " ".join(parts)
    read = {HS_TIER: {"new": label}, DV_TIER: {str(value): spaced(label, flips, pad)}}
    assert to_dataverse(with_labels(config(), read), "new") == Converted(value)


@given(words, words, st.integers(2, 2**30))
def test_different_labels_never_map(one: list[str], other: list[str], value: int) -> None:
    if " ".join(one) == " ".join(other):
        return
    read = {HS_TIER: {"new": " ".join(one)}, DV_TIER: {str(value): " ".join(other)}}
    assert to_dataverse(with_labels(config(), read), "new") == Skipped("no_option_counterpart")
