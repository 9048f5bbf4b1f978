"""Pure OData logic: $filter parse/render round trip, evaluation against a reference, keys, Prefer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.sandbox.dataverse.odata import (
    And,
    Compare,
    Expr,
    FilterSyntaxError,
    Func,
    Not,
    Or,
    evaluate,
    parse_filter,
    parse_key,
    parse_orderby,
    parse_prefer,
    render,
)

NAMES = st.sampled_from(["name", "numberofemployees", "emailaddress1", "_parentcustomerid_value"])
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
LITERALS = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), TEXT)
LEAVES = st.one_of(
    st.builds(Compare, NAMES, st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), LITERALS),
    st.builds(Func, st.sampled_from(["contains", "startswith", "endswith"]), NAMES, TEXT),
)
EXPRESSIONS: st.SearchStrategy[Expr] = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)),
    max_leaves=8,
)
ROWS = st.fixed_dictionaries(
    {"name": st.one_of(st.none(), TEXT), "numberofemployees": st.one_of(st.none(), st.integers(-1000, 1000))}
)


@given(EXPRESSIONS)
def test_render_then_parse_is_identity(expression: Expr) -> None:
    assert parse_filter(render(expression)) == expression


def _reference(expression: Expr, row: dict[str, Any]) -> bool:  # noqa: PLR0911 -- one case per node type
    """Written from OData's rules: null equals only null, ordering with null is false, text ignores case."""
    if isinstance(expression, And):
        return _reference(expression.left, row) and _reference(expression.right, row)
    if isinstance(expression, Or):
        return _reference(expression.left, row) or _reference(expression.right, row)
    if isinstance(expression, Not):
        return not _reference(expression.inner, row)
    actual: Any = row.get(expression.name)
    if isinstance(expression, Func):
        if not isinstance(actual, str):
            return False
        a, b = actual.lower(), expression.value.lower()
        return {"contains": b in a, "startswith": a.startswith(b), "endswith": a.endswith(b)}[expression.func]
    expected: Any = expression.value
    if actual is None or expected is None:
        return (
            (actual is None and expected is None) == (expression.op == "eq")
            if expression.op in {"eq", "ne"}
            else False
        )
    if isinstance(actual, str) != isinstance(expected, str):
        return expression.op == "ne"
    if isinstance(actual, str) and isinstance(expected, str):
        actual, expected = actual.casefold(), expected.casefold()
    ops: dict[str, bool] = {"eq": actual == expected, "ne": actual != expected}
    if expression.op in ops:
        return ops[expression.op]
    ordered: dict[str, bool] = {
        "gt": actual > expected,
        "ge": actual >= expected,
        "lt": actual < expected,
        "le": actual <= expected,
    }
    return ordered[expression.op]


@given(EXPRESSIONS, ROWS)
def test_evaluation_matches_the_reference(expression: Expr, row: dict[str, Any]) -> None:
    assert evaluate(expression, row) == _reference(expression, row)


def test_precedence_and_literals() -> None:
    assert parse_filter("a eq 1 or b eq 2 and c eq 3") == Or(
        Compare("a", "eq", 1), And(Compare("b", "eq", 2), Compare("c", "eq", 3))
    )
    assert parse_filter("name eq 'O''Brien'") == Compare("name", "eq", "O'Brien")
    assert parse_filter("x eq 1.5") == Compare("x", "eq", 1.5)
    assert parse_filter("x eq -3") == Compare("x", "eq", -3)
    guid = "5DAF3B6E-0000-4000-8000-000000000001"
    assert parse_filter(f"_x_value eq {guid}") == Compare("_x_value", "eq", guid.lower())
    stamp = parse_filter("modifiedon gt 2024-01-02T03:04:05Z")
    assert isinstance(stamp, Compare)
    assert evaluate(stamp, {"modifiedon": "2024-01-02T03:04:06Z"})
    assert not evaluate(stamp, {"modifiedon": "2024-01-02T03:04:05Z"})
    assert evaluate(parse_filter("d ge 2024-01-02"), {"d": "2024-01-02"})


@pytest.mark.parametrize(
    "text", ["", "name", "name eq", "name eq 'x' and", "(name eq 1", "name xx 1", "name eq 1 1"]
)
def test_malformed_filters_raise(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(text)


def test_keys_orderby_and_prefer() -> None:
    assert parse_key("5DAF3B6E-0000-4000-8000-000000000001") == "5daf3b6e-0000-4000-8000-000000000001"
    assert parse_key("firstname='Joe',emailaddress1='abc@example.com'") == {
        "firstname": "Joe",
        "emailaddress1": "abc@example.com",
    }
    assert parse_key("accountnumber='A,B'") == {"accountnumber": "A,B"}
    assert parse_orderby("name asc, createdon desc") == [("name", False), ("createdon", True)]
    prefer = parse_prefer(["odata.track-changes,odata.maxpagesize=10", 'odata.include-annotations="A,B"'])
    assert prefer.track_changes
    assert prefer.max_page_size == 10
    assert prefer.annotations == ("A", "B")
    assert parse_prefer(["return=representation"]).return_representation
