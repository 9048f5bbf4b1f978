"""Loading the sync configuration: a YAML file in, a validated `SyncConfig` or one `ConfigError` out.

Owns the packaged defaults (``default_steps.yaml``, the seeds' standard set-up), the translation of pydantic's
error locations into words an operator can act on (the step by name, the field row by its source and target),
and `describe`, the summary of what syncs where.

Reading goes in three stages, each failing with a `ConfigError` that names the file:

1. read the text (missing or unreadable file);
2. parse the YAML (syntax errors with line and column);
3. validate against `consumers.config` (every pydantic error, located by step name and field row).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from consumers.config import Endpoint, SyncConfig

__all__ = [
    "ConfigError",
    "ConfigSummary",
    "EndpointSummary",
    "FieldSummary",
    "StepSummary",
    "default_config",
    "describe",
    "field_lines",
    "load_config",
    "parse_config",
    "standard_fields_config",
    "validate_config",
]

DEFAULTS_RESOURCE = "default_steps.yaml"
STANDARD_FIELDS_RESOURCE = "standard_fields.yaml"
_DEFAULTS_SOURCE = f"consumers/{DEFAULTS_RESOURCE} (packaged defaults)"
_MAX_SHOWN_INPUT = 40


class ConfigError(Exception):
    """The configuration cannot be read or is not valid. ``problems`` holds one line per problem, each
    naming where it is (step, field, option set) and why; the message adds the file."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {p}" for p in self.problems)
            message = f"{source}: {len(self.problems)} problems in the sync configuration:\n{lines}"
        super().__init__(message)


def load_config(path: Path | None = None) -> SyncConfig:
    """Read and validate a configuration file; ``None`` reads the packaged defaults."""
    if path is None:
        text = resources.files("consumers").joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8")
        return parse_config(text, source=_DEFAULTS_SOURCE)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["no such file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]) from exc
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str = "<string>") -> SyncConfig:
    """Parse YAML text and validate it; ``source`` names the text in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = "; ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ConfigError(source, [f"{where}YAML syntax error: {what}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"YAML error: {exc}"]) from exc
    except ValueError as exc:
        # PyYAML resolves `2024-13-01` as a timestamp, then datetime() refuses it.
        raise ConfigError(source, [f"YAML value error: {exc}"]) from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise ConfigError(source, ["the YAML document is nested too deeply"]) from exc
    return validate_config(data, source=source)


def validate_config(data: object, *, source: str = "<data>") -> SyncConfig:
    """Validate already-parsed data (a mapping with a ``steps`` list)."""
    if data is None:
        raise ConfigError(source, ["the document is empty; expected a mapping with a 'steps' list"])
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"expected a mapping with a 'steps' list at the top, found {_kind(data)}"])
    try:
        return SyncConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(data, error) for error in exc.errors(include_url=False)]
        raise ConfigError(source, problems) from exc


def standard_fields_config() -> SyncConfig:
    """The packaged example ``standard_fields.yaml``: two-way companies/accounts and contacts on standard
    properties and columns only (no provisioning needed); the end-to-end tests and benchmarks use it."""
    text = resources.files("consumers").joinpath(STANDARD_FIELDS_RESOURCE).read_text(encoding="utf-8")
    return parse_config(text, source=f"consumers/{STANDARD_FIELDS_RESOURCE} (packaged example)")


@functools.cache
def default_config() -> SyncConfig:
    """The packaged defaults, read once (the model is frozen, so one instance serves every caller)."""
    return load_config()


class EndpointSummary(TypedDict):
    system: str
    object: str


class FieldSummary(TypedDict):
    source: str
    target: str
    direction: str


class StepSummary(TypedDict):
    name: str
    enabled: bool
    source: EndpointSummary
    target: EndpointSummary
    fields: list[FieldSummary]


class ConfigSummary(TypedDict):
    steps: list[StepSummary]


def describe(config: SyncConfig) -> ConfigSummary:
    """What syncs where, in execution order, as plain JSON-able data (for ``cdc config --json`` and people).

    Every step is listed, with its ``enabled`` flag; a step's ``fields`` are the field maps that are enabled.
    """

    def endpoint(end: Endpoint) -> EndpointSummary:
        return {"system": str(end.system), "object": end.object}

    steps: list[StepSummary] = []
    for step in config.steps:
        direction = f"{step.source.system}->{step.target.system}"
        steps.append(
            {
                "name": step.name,
                "enabled": step.enabled,
                "source": endpoint(step.source),
                "target": endpoint(step.target),
                "fields": [
                    {"source": f.source, "target": f.target, "direction": direction}
                    for f in step.active_fields()
                ],
            }
        )
    return {"steps": steps}


# --- error locations -------------------------------------------------------------------------------------


def _problem(data: Mapping[Any, Any], error: ErrorDetails) -> str:
    """One pydantic error as ``<where>: <field path>: <reason>``, with the raw data naming steps and rows."""
    where, rest = _locate(data, tuple(error["loc"]))
    message = error["msg"].removeprefix("Value error, ")
    shown = _shown_input(error)
    parts = [p for p in (where, ".".join(_segment(p) for p in rest)) if p]
    return ": ".join([*parts, message + shown])


def _locate(data: Mapping[Any, Any], loc: tuple[int | str, ...]) -> tuple[str, tuple[int | str, ...]]:
    """Split a loc into words for the part we can name (step, field row, association, option set) and the
    remaining path: ``('steps', 3, 'fields', 7, 'target')`` becomes
    ``("step 's4_...' field 7 ('address1_city' -> 'city')", ('target',))``.
    """
    if len(loc) >= 2 and loc[0] == "option_sets":  # noqa: PLR2004 -- ('option_sets', <name>, ...)
        return f"option set {str(loc[1])!r}", loc[2:]
    if len(loc) < 2 or loc[0] != "steps" or not isinstance(loc[1], int):  # noqa: PLR2004
        return "", loc
    step = _item(data.get("steps"), loc[1])
    where = f"step {_step_name(step, loc[1])}"
    rest = loc[2:]
    if len(rest) >= 2 and isinstance(rest[1], int) and rest[0] in ("fields", "associations"):  # noqa: PLR2004
        row = _item(step.get(rest[0]) if isinstance(step, Mapping) else None, rest[1])
        if rest[0] == "fields":
            where += f" field {rest[1]} ({_text(row, 'source')} -> {_text(row, 'target')})"
        else:
            where += f" association {rest[1]} ({_text(row, 'hubspot')} <-> {_text(row, 'dataverse')})"
        rest = rest[2:]
    return where, rest


def _segment(part: int | str) -> str:
    """One step of a field path; a key with spaces or control characters is quoted (a stray key may hold a
    newline)."""
    if isinstance(part, int) or (part.isprintable() and part.strip() == part and " " not in part and part):
        return str(part)
    return repr(part)


def _item(items: object, index: int) -> object:
    if (
        isinstance(items, Sequence)
        and not isinstance(items, str | bytes)
        and -len(items) <= index < len(items)
    ):
        return items[index]
    return None


def _step_name(step: object, index: int) -> str:
    name = step.get("name") if isinstance(step, Mapping) else None
    return repr(name) if isinstance(name, str) and name else f"#{index} (unnamed)"


def _text(row: object, key: str) -> str:
    value = row.get(key) if isinstance(row, Mapping) else None
    return repr(value) if isinstance(value, str | int | float) else "?"


def _shown_input(error: ErrorDetails) -> str:
    """The offending value, when it is a short scalar (a typo is easier to spot when it is shown)."""
    value = error.get("input")
    if error["type"] == "missing" or not isinstance(value, str | int | float | bool):
        return ""
    shown = repr(value)
    if len(shown) > _MAX_SHOWN_INPUT:
        shown = shown[: _MAX_SHOWN_INPUT - 3] + "..."
    return f" (got {shown})"


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def field_lines(path: Path | None = None) -> dict[tuple[str, int], int]:
    """(step name, field row from 1) -> the row's line in the YAML (``None``: the packaged defaults), for
    problems found after loading (`consumers.crm_check`); empty when the text cannot be read again."""
    try:
        if path is None:
            text = resources.files("consumers").joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    lines: dict[tuple[str, int], int] = {}
    steps = _child(root, "steps")
    for step in steps.value if isinstance(steps, yaml.SequenceNode) else []:
        name, fields = _child(step, "name"), _child(step, "fields")
        if isinstance(name, yaml.ScalarNode) and isinstance(fields, yaml.SequenceNode):
            for n, row in enumerate(fields.value, start=1):
                lines[(str(name.value), n)] = row.start_mark.line + 1
    return lines


def _child(node: object, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
