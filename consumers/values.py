"""Field values between HubSpot's strings and Dataverse's typed JSON: one conversion, one comparison form.

`convert` is what a field map does to a value, in this order, each step able to stop with a `Skipped`
reason (a short snake_case string, fit for a metric label):

1. an empty value converts to ``Converted(None)``; a field with ``lookup: owner_email`` is the owner's
   email from the ``lookup`` table the caller read (``lookup_not_found`` when the owner is not in it),
   delivered as text;
2. parse the wire value by ``field.source_type`` as the source system writes it (``unparseable``);
3. translate options by label when the field names an option set or either side is an option: overrides
   first, then the label, case-insensitive, spaces collapsed (``no_option_counterpart``); a string target gets
   the option's label;
4. coerce to ``field.target_type`` (integer <-> number, date <-> datetime at midnight UTC, anything -> text,
   text -> anything that parses; otherwise ``incompatible``);
5. render as the target system writes it and check the length (``too_long``).

`canonical` is the one form fingerprints and conflict checks compare: it does not depend on the system or
on how a value was written, so "12.50" read from HubSpot and 12.5 read from Dataverse are one value.

Precision is chosen so that a value can survive a trip through both systems unchanged: a datetime keeps
whole seconds (Dataverse stores no fractions of a second, so a finer difference would never converge), a
number is its nearest IEEE double (Dataverse's JSON carries doubles), a date is a calendar date in UTC
(HubSpot stores dates as midnight UTC).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType

from consumers.config import OWNER, OWNER_EMAIL, FieldMap, OptionSet, ValueType
from consumers.owners import OwnerReason
from streams.codec import Scalar
from streams.keys import SourceSystem

__all__ = [
    "HUBSPOT_MAX_LENGTH",
    "Converted",
    "SkipReason",
    "Skipped",
    "canonical",
    "convert",
    "convert_time",
    "is_empty",
    "same",
]

HUBSPOT_MAX_LENGTH = 65_536
"""HubSpot refuses longer string values (and with them the whole write), whatever the field map says."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EXACT_DOUBLE_INT = 2**53  # integers below this render as JSON integers without losing a digit
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EPOCH_MS = re.compile(r"-?[0-9]{1,15}")  # 15 digits reach far past year 9999
_CHOICE = re.compile(r"-?[0-9]{1,18}")  # a Dataverse choice value (an integer)
_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_HUBSPOT_SEPARATOR = re.compile(";")
_DATAVERSE_SEPARATOR = re.compile("[,;]")  # Dataverse writes multi-select choices as "1,2"

_Raw = str | bool | int | float
_Parsed = str | Decimal | int | bool | date | datetime | tuple[str, ...]
"""A parsed value: its Python type says its value type (bool before int, datetime before date)."""


class SkipReason(StrEnum):
    """Why a field was not written. Stable: these are metric label values."""

    LOOKUP_NOT_FOUND = "lookup_not_found"
    NO_OPTION_COUNTERPART = "no_option_counterpart"
    NO_OPTION_SET = "no_option_set"
    UNPARSEABLE = "unparseable"
    INCOMPATIBLE = "incompatible"
    TOO_LONG = "too_long"


@dataclass(frozen=True)
class Converted:
    value: Scalar


@dataclass(frozen=True)
class Skipped:
    reason: str


def is_empty(value: Scalar) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def convert(
    value: Scalar,
    field: FieldMap,
    *,
    source_system: SourceSystem,
    option_sets: Mapping[str, OptionSet],
    creating: bool = False,
    lookup: Mapping[str, str] = MappingProxyType({}),
) -> Converted | Skipped:
    """The value to write for one field map, in the other system's representation, or why there is none.

    ``creating``: the target record is being created, so an option set's ``create_overrides`` apply.
    ``lookup``: for a field with ``lookup: owner_email``, owner id -> email; ``lookup: owner``, owner id
    -> the other side's owner id or an `OwnerReason` (`consumers.owners.owner_table`)."""
    if value is None or is_empty(value):
        return Converted(None)
    if field.lookup in {OWNER_EMAIL, OWNER}:
        found = lookup.get(str(value).strip())
        if isinstance(found, OwnerReason):  # `lookup: owner`: why the other side has no such user
            return Skipped(found.value)
        return (
            Skipped(SkipReason.LOOKUP_NOT_FOUND)
            if found is None
            else _deliver(found, field, source_system.other)
        )
    parsed = _PARSERS[field.source_type](value, source_system)
    if parsed is None:
        return Skipped(SkipReason.UNPARSEABLE)
    translated = _through_options(parsed, field, source_system, option_sets, creating=creating)
    if isinstance(translated, Skipped):
        return translated
    return _deliver(translated, field, source_system.other)


def convert_time(moment: datetime, field: FieldMap, *, target_system: SourceSystem) -> Converted | Skipped:
    """A time the daemon makes (`consumers.config.SourceKind.SYNC_TIME`) as ``field`` writes it to the
    target: whole seconds, as every datetime here (module docstring), in the target's representation."""
    return _deliver(moment.astimezone(UTC).replace(microsecond=0), field, target_system)


def _deliver(parsed: _Parsed, field: FieldMap, target_system: SourceSystem) -> Converted | Skipped:
    coerced = _coerce(parsed, field.target_type)
    rendered = None if coerced is None else _render(coerced, target_system)
    if rendered is None:
        return Skipped(SkipReason.INCOMPATIBLE)
    if _too_long(rendered, field.max_length, target_system):
        return Skipped(SkipReason.TOO_LONG)
    return Converted(rendered)


def canonical(value: Scalar, value_type: ValueType, system: SourceSystem) -> Scalar:
    """One form per value, whatever the system or the writing: None for empty, else a string.

    Strings compare exactly (a user's whitespace edit is a change), but a whitespace-only string is empty,
    as `convert` treats it. A value that does not parse is its own canonical form, so two equal unparseable
    values still compare equal. Options stay in their system's values (sorted, ``;``-joined): comparing
    them across systems needs the option set, which is `convert`'s job.
    """
    if value is None or is_empty(value):
        return None
    parsed = _PARSERS[value_type](value, system)
    return value if parsed is None else _text(parsed)


def same(a: Scalar, b: Scalar, value_type: ValueType, system: SourceSystem) -> bool:
    ca, cb = canonical(a, value_type, system), canonical(b, value_type, system)
    return type(ca) is type(cb) and ca == cb  # an unparseable True is not an unparseable 1


# -- parsing: the source system's wire value -> a plain Python value, or None when it does not parse


def _parse_string(value: _Raw, _system: SourceSystem) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return _text(value)
    number = _double(value)
    return None if number is None else _text(number)


def _parse_number(value: _Raw, _system: SourceSystem) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _double(value)
    decimal = _decimal(value)
    return None if decimal is None else _double(decimal)


def _parse_integer(value: _Raw, _system: SourceSystem) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float):
        return _integral(Decimal(value)) if math.isfinite(value) else None
    decimal = _decimal(value)
    return None if decimal is None else _integral(decimal)


def _parse_bool(value: _Raw, _system: SourceSystem) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _BOOLS.get(str(value))
    return _BOOLS.get(value.strip().casefold()) if isinstance(value, str) else None


def _parse_date(value: _Raw, system: SourceSystem) -> date | None:
    epoch = system is SourceSystem.HUBSPOT and isinstance(value, str) and _EPOCH_MS.fullmatch(value.strip())
    if isinstance(value, str) and not epoch:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    moment = _parse_datetime(value, system)
    return None if moment is None else moment.date()


def _parse_datetime(value: _Raw, system: SourceSystem) -> datetime | None:
    """ISO-8601 (naive means UTC) on both sides; HubSpot also writes epoch milliseconds."""
    hubspot = system is SourceSystem.HUBSPOT
    if isinstance(value, bool | float):
        return None
    if isinstance(value, int):
        return _from_epoch_ms(value) if hubspot else None
    text = value.strip()
    if hubspot and _EPOCH_MS.fullmatch(text):
        return _from_epoch_ms(int(text))
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment.replace(microsecond=0)


def _parse_option(value: _Raw, system: SourceSystem) -> tuple[str, ...] | None:
    """Option values as strings: HubSpot's internal values (``a;b`` if multi-select), Dataverse's integers."""
    hubspot = system is SourceSystem.HUBSPOT
    if isinstance(value, bool):
        return (_text(value) if hubspot else str(int(value)),)
    if isinstance(value, int | float):
        number = _parse_integer(value, system)
        return None if number is None else (str(number),)
    separator = _HUBSPOT_SEPARATOR if hubspot else _DATAVERSE_SEPARATOR
    keys = [key.strip() for key in separator.split(value)]
    if not hubspot:
        keys = [str(int(key)) if _CHOICE.fullmatch(key) else key for key in keys]
    return _options_in_order(keys) or None


_PARSERS: dict[ValueType, Callable[[_Raw, SourceSystem], _Parsed | None]] = {
    ValueType.STRING: _parse_string,
    ValueType.NUMBER: _parse_number,
    ValueType.INTEGER: _parse_integer,
    ValueType.BOOL: _parse_bool,
    ValueType.DATE: _parse_date,
    ValueType.DATETIME: _parse_datetime,
    ValueType.OPTION: _parse_option,
}


def _decimal(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUMBER.fullmatch(text):  # Decimal() alone takes "NaN", "1_000" and non-ASCII digits
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal can hold
        return None


def _double(number: Decimal | int | float) -> Decimal | None:
    """The nearest double, as the shortest Decimal that reads back as it; None when not finite."""
    try:
        as_float = float(number)
    except OverflowError:  # an int too large for a double
        return None
    if not math.isfinite(as_float):
        return None
    return Decimal(0) if as_float == 0 else Decimal(repr(as_float)).normalize()


def _integral(number: Decimal) -> int | None:
    if not _INT64_MIN <= number <= _INT64_MAX or number != number.to_integral_value():
        return None
    return int(number)


def _from_epoch_ms(ms: int) -> datetime | None:
    try:
        return (_EPOCH + timedelta(milliseconds=ms)).replace(microsecond=0)
    except OverflowError:
        return None


def _options_in_order(keys: Iterable[str]) -> tuple[str, ...]:
    """Distinct, non-empty, sorted (integers by value): neither side gives a multi-select an order."""
    return tuple(sorted({key for key in keys if key}, key=_option_order))


def _option_order(key: str) -> tuple[int, int, str]:
    """Integers by value, then as written ("0" before "00": a total order, whatever the set's order)."""
    return (0, int(key), key) if _CHOICE.fullmatch(key) else (1, 0, key)


# -- options: source option values -> target option values (or labels, for a string target)


def _through_options(
    parsed: _Parsed,
    field: FieldMap,
    source_system: SourceSystem,
    option_sets: Mapping[str, OptionSet],
    *,
    creating: bool = False,
) -> _Parsed | Skipped:
    if field.options is None and ValueType.OPTION not in (field.source_type, field.target_type):
        return parsed
    keys = parsed if isinstance(parsed, tuple) else (_option_key(parsed, source_system),)
    if field.options is None:
        return keys  # both sides share option values (e.g. HubSpot options created from Dataverse choices)
    option_set = option_sets.get(field.options)
    if option_set is None:  # `SyncConfig` refuses this at load; a planner given other sets must not crash
        return Skipped(SkipReason.NO_OPTION_SET)
    translated = [_translate(key, option_set, field, source_system, creating=creating) for key in keys]
    found = [value for value in translated if value is not None]
    if len(found) < len(translated):
        return Skipped(SkipReason.NO_OPTION_COUNTERPART)
    if field.target_type is ValueType.STRING:
        return "; ".join(dict.fromkeys(found))  # labels, as Dataverse formats a multi-select
    return _options_in_order(found)


def _option_key(value: _Parsed, system: SourceSystem) -> str:
    """A value of another type as an option value: its text, but Dataverse's yes/no options are 1 and 0."""
    if isinstance(value, bool) and system is SourceSystem.DATAVERSE:
        return str(int(value))
    return _text(value)


def _translate(
    key: str, option_set: OptionSet, field: FieldMap, source_system: SourceSystem, *, creating: bool = False
) -> str | None:
    found = _translate_always(key, option_set, field, source_system)
    if found is None and creating:
        return option_set.create_overrides.get(key)
    return found


def _translate_always(
    key: str, option_set: OptionSet, field: FieldMap, source_system: SourceSystem
) -> str | None:
    if key in option_set.overrides:
        return option_set.overrides[key]
    hubspot = source_system is SourceSystem.HUBSPOT
    label = (option_set.hubspot if hubspot else option_set.dataverse).get(key)
    if label is None and field.source_type is not ValueType.OPTION:
        label = key  # free text (or a bool, a number) on the source side is its own label
    if label is None or field.target_type is ValueType.STRING:
        return label
    wanted = _label_key(label)
    counterparts = option_set.dataverse if hubspot else option_set.hubspot
    return next((str(value) for value, other in counterparts.items() if _label_key(other) == wanted), None)


def _label_key(label: str) -> str:
    """Labels meet case-insensitively (casefold) with runs of spaces as one and none at the ends: the two
    CRMs' admins type them, and neither UI shows a doubled or trailing space or agrees on capitals."""
    return " ".join(label.split()).casefold()


# -- coercion between value types, and rendering in a system's representation


def _coerce(parsed: _Parsed, target_type: ValueType) -> _Parsed | None:
    if target_type is ValueType.STRING:
        return _text(parsed)
    if target_type is ValueType.OPTION:
        return parsed if isinstance(parsed, tuple) else (_text(parsed),)
    if isinstance(parsed, tuple):
        return _coerce(parsed[0], target_type) if len(parsed) == 1 else None
    if isinstance(parsed, str):  # free text, or one option value: read as the target would write it
        return _PARSERS[target_type](parsed, SourceSystem.DATAVERSE)
    return _CONVERTERS[target_type](parsed)


def _to_number(value: Decimal | int | date) -> Decimal | None:
    return None if isinstance(value, date) else _double(value)


def _to_integer(value: Decimal | int | date) -> int | None:
    if isinstance(value, date):
        return None
    return int(value) if isinstance(value, int) else _integral(value)


def _to_bool(value: Decimal | int | date) -> bool | None:
    if isinstance(value, bool):
        return value
    return None if isinstance(value, date) else _BOOLS.get(_text(value))  # 1 and 0


def _to_date(value: Decimal | int | date) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _to_datetime(value: Decimal | int | date) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


_CONVERTERS: dict[ValueType, Callable[[Decimal | int | date], _Parsed | None]] = {
    ValueType.NUMBER: _to_number,
    ValueType.INTEGER: _to_integer,
    ValueType.BOOL: _to_bool,
    ValueType.DATE: _to_date,
    ValueType.DATETIME: _to_datetime,
}


def _text(value: _Parsed) -> str:
    """The value as text: the canonical form, HubSpot's wire form (but for datetimes) and string targets'."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return format(value, "f") if isinstance(value, Decimal) else str(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return ";".join(value)


def _render(value: _Parsed, system: SourceSystem) -> Scalar:
    """The target's wire value; None when the target cannot hold it (a Dataverse choice that isn't an int)."""
    if system is SourceSystem.DATAVERSE:
        return _render_dataverse(value)
    if isinstance(value, datetime):  # as HubSpot itself writes datetimes
        return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return _text(value)


def _render_dataverse(value: _Parsed) -> Scalar:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Decimal):
        exact_int = value == value.to_integral_value() and abs(value) < _EXACT_DOUBLE_INT
        return int(value) if exact_int else float(value)
    if isinstance(value, tuple):
        if not all(_CHOICE.fullmatch(key) for key in value):
            return None
        return int(value[0]) if len(value) == 1 else ",".join(value)
    return _text(value)


def _too_long(rendered: Scalar, max_length: int | None, system: SourceSystem) -> bool:
    if not isinstance(rendered, str):
        return False
    if system is SourceSystem.HUBSPOT:
        return len(rendered) > min(max_length or HUBSPOT_MAX_LENGTH, HUBSPOT_MAX_LENGTH)
    # Dataverse counts a column's length in UTF-16 code units (an emoji takes two).
    return max_length is not None and len(rendered.encode("utf-16-le", "surrogatepass")) // 2 > max_length
