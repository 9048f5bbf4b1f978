"""Points in time as an operator types them: ISO-8601, or relative to now (``-2h``, ``-30m``, ``-1d``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

__all__ = ["age_s", "parse_time", "parse_when"]

_RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(text: str, now: datetime) -> datetime:
    """``now``, ``-<n><s|m|h|d|w>`` before ``now``, or an ISO-8601 time (without a zone: UTC).

    Raises ValueError with the accepted forms.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(seconds=float(amount) * _UNITS[unit])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r}; use ISO-8601 (2024-05-01T10:00:00Z; no zone means UTC) "
            "or a relative time such as -30m, -2h, -1d"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def age_s(then: datetime, now: datetime) -> float:
    return max(0.0, (now - then).total_seconds())


def parse_when(value: str | None, option: str, now: datetime | None = None) -> datetime | None:
    """A command-line time option: None stays None; a bad value is a usage error naming the option."""
    if value is None:
        return None
    try:
        return parse_time(value, now or datetime.now(UTC))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
