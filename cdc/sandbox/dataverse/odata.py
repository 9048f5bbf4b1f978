"""Pure OData pieces: ``$select``, ``$filter`` (parse and evaluate), ``$orderby``, keys in URLs and the
``Prefer`` header. No I/O and no table knowledge: callers check the names an expression uses.

Filter grammar (the subset the daemon needs, fact sheet §1-2)::

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | '(' expr ')' | func '(' name ',' literal ')' | name op literal
    op      := eq | ne | gt | ge | lt | le          func := contains | startswith | endswith
    literal := 'text' ('' escapes a quote) | number | true | false | null | guid | date | datetime

String comparison is case-insensitive, as Dataverse's SQL collation is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "And",
    "Compare",
    "Expr",
    "FilterSyntaxError",
    "Func",
    "Not",
    "Or",
    "Prefer",
    "evaluate",
    "format_literal",
    "names_in",
    "parse_filter",
    "parse_key",
    "parse_orderby",
    "parse_prefer",
    "parse_select",
    "render",
    "sort_key",
]

OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
FUNCTIONS = ("contains", "startswith", "endswith")
Literal = str | int | float | bool | datetime | None


class FilterSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Compare:
    name: str
    op: str
    value: Literal


@dataclass(frozen=True)
class Func:
    func: str
    name: str
    value: str


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    inner: Expr


Expr = Compare | Func | And | Or | Not

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?)(?![\w-])"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])"
    r"|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise FilterSyntaxError(f"Syntax error at position {pos} in '{text}'.")
        out.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return out


def _literal(kind: str, raw: str) -> Literal:
    if kind == "str":
        return raw[1:-1].replace("''", "'")
    if kind == "num":
        return float(raw) if "." in raw else int(raw)
    if kind == "guid":
        return raw.lower()
    if kind == "dt":
        if "T" not in raw:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed.astimezone(UTC)
    if kind == "word" and raw in {"true", "false", "null"}:
        return {"true": True, "false": False, "null": None}[raw]
    raise FilterSyntaxError(f"Expected a literal, found '{raw}'.")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterSyntaxError("Unexpected end of the $filter expression.")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        _, raw = self.take()
        if raw != value:
            raise FilterSyntaxError(f"Expected '{value}', found '{raw}'.")

    def expr(self) -> Expr:
        left = self.conjunction()
        while self.peek() == ("word", "or"):
            self.take()
            left = Or(left, self.conjunction())
        return left

    def conjunction(self) -> Expr:
        left = self.unary()
        while self.peek() == ("word", "and"):
            self.take()
            left = And(left, self.unary())
        return left

    def unary(self) -> Expr:
        kind, raw = self.take()
        if (kind, raw) == ("word", "not"):
            return Not(self.unary())
        if raw == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if kind != "word":
            raise FilterSyntaxError(f"Expected a column name, found '{raw}'.")
        if raw in FUNCTIONS and self.peek() == ("punct", "("):
            self.take()
            name_kind, name = self.take()
            self.expect(",")
            value = _literal(*self.take())
            self.expect(")")
            if name_kind != "word" or not isinstance(value, str):
                raise FilterSyntaxError(f"{raw}() takes a column name and a text literal.")
            return Func(raw, name, value)
        op_kind, op = self.take()
        if op_kind != "word" or op not in OPERATORS:
            raise FilterSyntaxError(f"Expected a comparison operator after '{raw}', found '{op}'.")
        return Compare(raw, op, _literal(*self.take()))


def parse_filter(text: str) -> Expr:
    parser = _Parser(text)
    expr = parser.expr()
    if parser.peek() is not None:
        raise FilterSyntaxError(f"Unexpected '{parser.take()[1]}' in the $filter expression.")
    return expr


def names_in(expr: Expr) -> Iterator[str]:
    if isinstance(expr, Compare | Func):
        yield expr.name
    elif isinstance(expr, Not):
        yield from names_in(expr.inner)
    else:
        yield from names_in(expr.left)
        yield from names_in(expr.right)


def format_literal(value: Literal) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return repr(value)


def render(expr: Expr) -> str:
    """The canonical text of an expression (parse(render(e)) == e)."""
    if isinstance(expr, Compare):
        return f"{expr.name} {expr.op} {format_literal(expr.value)}"
    if isinstance(expr, Func):
        return f"{expr.func}({expr.name},{format_literal(expr.value)})"
    if isinstance(expr, Not):
        return f"not ({render(expr.inner)})"
    word = "and" if isinstance(expr, And) else "or"
    return f"({render(expr.left)}) {word} ({render(expr.right)})"


def _comparable(value: Any, like: Literal) -> Any:
    if isinstance(like, datetime) and isinstance(value, str):
        text = value if "T" in value else value + "T00:00:00Z"
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    if isinstance(value, str):
        return value.casefold()
    return value


def _compare(actual: Any, op: str, expected: Literal) -> bool:
    if expected is None or actual is None:
        same = actual is None and expected is None
        return {"eq": same, "ne": not same}.get(op, False)
    left = _comparable(actual, expected)
    right = expected.casefold() if isinstance(expected, str) else expected
    try:
        result: bool = {
            "eq": lambda: left == right,
            "ne": lambda: left != right,
            "gt": lambda: left > right,
            "ge": lambda: left >= right,
            "lt": lambda: left < right,
            "le": lambda: left <= right,
        }[op]()
    except TypeError:
        return False
    return result


def evaluate(expr: Expr, row: Mapping[str, Any]) -> bool:
    if isinstance(expr, Compare):
        return _compare(row.get(expr.name), expr.op, expr.value)
    if isinstance(expr, Func):
        actual = row.get(expr.name)
        if not isinstance(actual, str):
            return False
        text, part = actual.casefold(), expr.value.casefold()
        return {
            "contains": part in text,
            "startswith": text.startswith(part),
            "endswith": text.endswith(part),
        }[expr.func]
    if isinstance(expr, Not):
        return not evaluate(expr.inner, row)
    if isinstance(expr, And):
        return evaluate(expr.left, row) and evaluate(expr.right, row)
    return evaluate(expr.left, row) or evaluate(expr.right, row)


def parse_select(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_orderby(text: str | None) -> list[tuple[str, bool]]:
    """``"name asc,createdon desc"`` -> ``[("name", False), ("createdon", True)]`` (True = descending)."""
    order: list[tuple[str, bool]] = []
    for part in (text or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1] not in {"asc", "desc"}):  # noqa: PLR2004 -- "name dir"
            raise FilterSyntaxError(f"Invalid $orderby clause '{part.strip()}'.")
        order.append((words[0], len(words) == 2 and words[1] == "desc"))  # noqa: PLR2004 -- "name dir"
    return order


def sort_key(value: Any) -> tuple[int, Any]:
    """Nulls first (SQL ascending order), text case-insensitive."""
    if value is None:
        return (0, 0)
    return (1, value.casefold() if isinstance(value, str) else value)


_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_KEY_PART = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)\s*(?:,|$)")


def parse_key(text: str) -> str | dict[str, Literal]:
    """``<guid>`` -> the id; ``name='x',n2=5`` -> a dict of key values (alternate or primary key)."""
    text = text.strip()
    if _GUID.match(text):
        return text.lower()
    values: dict[str, Literal] = {}
    pos = 0
    while pos < len(text):
        match = _KEY_PART.match(text, pos)
        if match is None:
            raise FilterSyntaxError(f"Invalid key '{text}'.")
        raw = match.group(2).strip()
        kind = "str" if raw.startswith("'") else "guid" if _GUID.match(raw) else "num"
        if kind == "num" and not re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
            raise FilterSyntaxError(f"Invalid key value '{raw}'.")
        values[match.group(1)] = _literal(kind, raw)
        pos = match.end()
    if not values:
        raise FilterSyntaxError("Empty key.")
    return values


@dataclass(frozen=True)
class Prefer:
    track_changes: bool = False
    max_page_size: int | None = None
    return_representation: bool = False
    continue_on_error: bool = False
    annotations: tuple[str, ...] = ()

    def wants(self, annotation: str) -> bool:
        return any(a in {"*", annotation} for a in self.annotations)


def _split_preferences(header: str) -> Iterator[str]:
    part, quoted = "", False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield part.strip()
            part = ""
        else:
            part += char
    if part.strip():
        yield part.strip()


def parse_prefer(headers: list[str]) -> Prefer:
    """All ``Prefer`` headers of a request; unknown preferences are ignored, as HTTP says."""
    found: dict[str, Any] = {}
    for header in headers:
        for item in _split_preferences(header):
            name, _, value = item.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "odata.track-changes":
                found["track_changes"] = True
            elif name == "odata.maxpagesize" and value.isdigit():
                found["max_page_size"] = int(value)
            elif name == "return" and value == "representation":
                found["return_representation"] = True
            elif name == "odata.continue-on-error":
                found["continue_on_error"] = True
            elif name == "odata.include-annotations":
                found["annotations"] = tuple(a.strip() for a in value.split(",") if a.strip())
    return Prefer(**found)
