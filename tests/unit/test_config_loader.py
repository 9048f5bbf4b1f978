"""The loader turns any file into a `SyncConfig` or a `ConfigError` naming the file, step and field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.config import SyncConfig
from consumers.loader import ConfigError, default_config, load_config, parse_config, validate_config

DEFAULT_DATA: dict[str, Any] = default_config().model_dump(mode="json")
DEFAULT_LINES = (
    Path(__file__).resolve().parents[2].joinpath("consumers", "default_steps.yaml").read_text().splitlines()
)


def defaults() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_DATA)


def problems_of(data: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        validate_config(data, source="sync.yaml")
    assert str(caught.value).startswith("sync.yaml: ")
    return caught.value.problems


# --- reading ---------------------------------------------------------------------------------------------


def test_no_path_reads_the_packaged_defaults_once() -> None:
    assert load_config() == default_config()
    assert default_config() is default_config()


def test_a_dumped_configuration_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(DEFAULT_DATA, sort_keys=False), encoding="utf-8")
    assert load_config(path) == default_config()


def test_integer_option_values_may_be_written_unquoted() -> None:
    data = defaults()
    data["option_sets"]["lead_rating"]["dataverse"] = {1: "Hot", 2: "Warm", 3: "Cold"}
    assert validate_config(data).option_sets["lead_rating"].dataverse == {
        "1": "Hot",
        "2": "Warm",
        "3": "Cold",
    }


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(str(path))


def test_a_directory_or_binary_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"steps: \xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps:\n  - name: a\n    source: {system: hubspot\n", "line 4, column 1: YAML syntax error"),
        ("steps: [1, 2\n", "line 2, column 1: YAML syntax error"),
        ("a: b: c\n", "line 1, column 5: YAML syntax error: mapping values are not allowed here"),
        ("steps: 2024-13-01\n", "YAML value error: month must be in 1..12"),
        ("", "the document is empty"),
        ("# only a comment\n", "the document is empty"),
        ("- name: a\n", "found a list"),
        ("just text\n", "found a string"),
        ("steps: []\nsteps: []\n", None),  # PyYAML keeps the last key; the model then accepts no steps
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, expected: str | None) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(text, encoding="utf-8")
    if expected is None:
        assert load_config(path).steps == ()
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


# --- error messages ----------------------------------------------------------------------------------------


def test_a_field_error_names_the_step_the_row_and_the_field() -> None:
    data = defaults()
    data["steps"][5]["fields"][0]["target"] = ""
    data["steps"][3]["fields"][7]["target_type"] = "strng"
    assert problems_of(data) == (
        "step 's2_contacts_to_contacts' field 7 ('hs_lifecyclestage_other_date' -> "
        "'cdc_becameanotherlifecycledate'): target_type: Input should be 'string', 'number', 'integer', "
        "'bool', 'date', 'datetime' or 'option' (got 'strng')",
        "step 's4_contacts_to_hubspot_contacts' field 0 ('address1_city' -> ''): target: "
        "String should have at least 1 character (got '')",
    )


def test_several_errors_are_listed_one_a_line() -> None:
    data = defaults()
    del data["steps"][2]["match"]
    data["steps"][2]["colour"] = "blue"
    data["steps"][6]["associations"][0]["hubspot"] = "contact"
    data["option_sets"]["lead_rating"]["hubspot"]["1"] = ["Hot"]
    with pytest.raises(ConfigError) as caught:
        validate_config(data, source="sync.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "sync.yaml: 4 problems in the sync configuration:"
    assert sorted(lines[1:]) == [
        "  option set 'lead_rating': hubspot.1: Input should be a valid string",
        "  step 's1_companies_to_accounts': colour: Extra inputs are not permitted (got 'blue')",
        "  step 's1_companies_to_accounts': match: Field required",
        "  step 's5_opportunities_to_deals' association 0 ('contact' <-> 'parentcontactid:contact'): "
        "hubspot: String should match pattern '^[a-z_0-9]+:\\d+$' (got 'contact')",
    ]


def test_step_level_and_config_level_errors() -> None:
    data = defaults()
    data["steps"][4]["target"]["system"] = "dataverse"
    (problem,) = problems_of(data)
    assert problem.startswith("step 's3_accounts_to_companies': source and target are both dataverse")

    data = defaults()
    data["steps"][3]["name"] = data["steps"][2]["name"]
    assert problems_of(data) == ("step names must be unique; repeated: s1_companies_to_accounts",)

    data = defaults()
    data["steps"][6]["fields"][11]["options"] = "deal_stages"
    (problem,) = problems_of(data)
    assert "step 's5_opportunities_to_deals'" in problem
    assert "'statuscode' -> 'dealstage'" in problem
    assert "option set 'deal_stages' is not defined" in problem


def test_a_step_without_a_usable_name_is_named_by_position() -> None:
    data = defaults()
    del data["steps"][1]["name"]
    data["steps"][2]["name"] = 7
    data["steps"][2]["fields"][1]["source"] = None
    assert sorted(problems_of(data)) == [
        "step #1 (unnamed): name: Field required",
        "step #2 (unnamed) field 1 (? -> 'name'): source: Input should be a valid string",
        "step #2 (unnamed): name: Input should be a valid string (got 7)",
    ]


def test_a_long_bad_value_is_shortened() -> None:
    data = defaults()
    data["steps"][0]["fields"][0]["source_type"] = "x" * 200
    (problem,) = problems_of(data)
    assert problem.endswith("(got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)")


# --- fuzzing: any input gives a SyncConfig or a ConfigError ---------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "hubspot", "dataverse", "lead", "contact", "option", "company:1", "a:b", "email"]),
)
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["steps", "name", "fields", "source", "target", "options", "system", "object", "match"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def mutated_defaults(draw: st.DrawFn) -> dict[str, Any]:
    """The defaults with a few values replaced or deleted anywhere in the tree (deep errors, real names)."""
    data = defaults()
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        while True:
            if isinstance(node, dict) and node:
                key: Any = draw(st.sampled_from(sorted(node, key=str)))
            elif isinstance(node, list) and node:
                key = draw(st.integers(0, len(node) - 1))
            else:
                break
            child = node[key]
            if isinstance(child, dict | list) and draw(st.integers(0, 3)):
                node = child
                continue
            if draw(st.booleans()):
                del node[key]
            else:
                node[key] = draw(values)
            break
    return data


FRAGMENTS = [
    "steps:",
    "- name: a",
    "  - {source: a, target: b}",
    "option_sets: {x: {hubspot: {1: a}}}",
    "&anchor [*anchor]",
    "a: &x {b: *x}",
    "!!binary zz",
    "!!int x",
    "!!set {a, b}",
    "!!python/name:os.system",
    "2001-13-01",
    "2001-12-14t21:59:43.10-99:99",
    "? [a]",
    ": b",
    "'unterminated",
    '"\\xq"',
    "\t",
    "---",
    "...",
    "%YAML 1.1",
    "{{{[[[",
    "\x00",
]
yamlish = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(DEFAULT_LINES), st.text(max_size=20)), max_size=12
).map("\n".join)


def outcome(run: Any, *args: Any) -> SyncConfig | ConfigError:
    """The config, or the ConfigError; any other exception fails the test."""
    try:
        result: SyncConfig = run(*args)
    except ConfigError as exc:
        error = exc
    else:
        return result
    assert str(error).strip()
    assert error.problems
    return error


@given(values)
def test_fuzz_any_data(data: object) -> None:
    assert isinstance(outcome(validate_config, data), SyncConfig | ConfigError)


@given(mutated_defaults())
def test_fuzz_mutated_defaults(data: dict[str, Any]) -> None:
    result = outcome(validate_config, data)
    if isinstance(result, ConfigError):
        assert all(p and "\n" not in p for p in result.problems)


@given(st.one_of(st.text(), yamlish))
def test_fuzz_yaml_text(text: str) -> None:
    assert isinstance(outcome(parse_config, text), SyncConfig | ConfigError)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yamlish)
def test_fuzz_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = outcome(load_config, path)
    if isinstance(result, ConfigError):
        assert str(result).startswith(str(path))


def test_a_lookup_must_read_from_the_system_it_knows_and_be_a_known_kind() -> None:
    data = defaults()
    data["steps"][5]["fields"][0]["lookup"] = "owner_email"  # s4 reads Dataverse: no HubSpot owner id
    assert problems_of(data) == (
        "step 's4_contacts_to_hubspot_contacts', field 'address1_city' -> 'city': lookup owner_email reads "
        "a HubSpot owner id; the source is dataverse",
    )
    data = defaults()
    data["steps"][3]["fields"][0]["lookup"] = "formatted_value"  # s2 reads HubSpot
    assert "lookup formatted_value reads a Dataverse lookup column" in problems_of(data)[0]
    data = defaults()
    data["steps"][3]["fields"][0]["lookup"] = "owner_name"
    [problem] = problems_of(data)
    assert problem.startswith("step 's2_contacts_to_contacts' field 0 (")
    assert "lookup: Input should be 'owner_email', 'formatted_value' or 'owner' (got 'owner_name')" in problem
