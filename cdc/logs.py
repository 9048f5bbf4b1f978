"""Log output of every command: one handler on the root logger, in the format ``log.format`` names.

``console`` is for people: ``time level logger: message key=value ...``. ``json`` is for log shippers:
one JSON object a line with ``timestamp`` (ISO-8601, UTC), ``level``, ``logger``, ``message``, every
``extra`` field the call passed (``system``, ``object``, ``id``, ``topic``, ...) and, when the record
carries one, the whole traceback as one ``exception`` string, so a line never splits a record.

`setup_logging` may run more than once (a command reconfigures after it read its settings): it replaces
the handler it installed before and leaves any other handler alone (pytest's, an embedding program's).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from cdc.settings import LogSettings

__all__ = ["ConsoleFormatter", "JsonFormatter", "Level", "setup_logging"]

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_CORE: Final = ("timestamp", "level", "logger", "message", "exception", "stack")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module docstring); values orjson cannot encode are written as str."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            # An extra named like a core field keeps its value under another name rather than replace it.
            line[f"extra_{key}" if key in _CORE else key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class ConsoleFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678+00:00 INFO cdc.sync: message system=hubspot id=1``, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


class _StderrHandler(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment, so a replaced stderr (tests, daemons) is followed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 -- logging's contract: a failing handler reports, never raises
            self.handleError(record)


def setup_logging(log: LogSettings, *, default_level: Level | None = None) -> logging.Handler:
    """Send every logger's records to stderr in ``log.format`` at ``log.level``; returns the handler.

    ``default_level`` is the level a command uses when the settings do not name one: `cdc demo` and the
    short commands print their own progress and show only warnings unless ``log.level`` is set.
    """
    explicit = "level" in log.model_fields_set
    level = log.level if explicit or default_level is None else default_level
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log.format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
