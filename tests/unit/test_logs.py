"""Log output: ``log.format: json`` is one parseable object a line, with the record's identity and any
traceback as one field; ``console`` stays one readable line; the level follows ``log.level``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson
import pytest

from cdc.logs import Level, setup_logging
from cdc.settings import LogSettings

pytestmark = pytest.mark.usefixtures("restore_root_logger")


def _json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_json_format_writes_one_object_a_line_with_the_record_identity(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(LogSettings(format="json"))
    log = logging.getLogger("cdc.sync")
    log.info(
        "applied %d writes", 3, extra={"system": "hubspot", "object": "contacts", "id": "101", "offset": 7}
    )
    try:
        raise ValueError("boom\non two lines")  # noqa: TRY301 -- the record needs a live exception
    except ValueError:
        log.exception("write failed", extra={"system": "dataverse", "object": "accounts", "id": "a-1"})
    log.debug("not at INFO")

    lines = _json_lines(capsys.readouterr().err)
    assert len(lines) == 2  # the traceback did not add lines; DEBUG was filtered
    first, second = lines
    assert first["level"] == "INFO"
    assert first["logger"] == "cdc.sync"
    assert first["message"] == "applied 3 writes"
    identity = (first["system"], first["object"], first["id"], first["offset"])
    assert identity == ("hubspot", "contacts", "101", 7)
    assert "exception" not in first
    stamp = datetime.fromisoformat(str(first["timestamp"]))
    assert stamp.utcoffset() is not None  # an absolute time, UTC
    assert second["level"] == "ERROR"
    assert second["id"] == "a-1"
    exception = str(second["exception"])
    assert exception.startswith("Traceback (most recent call last)")
    assert "ValueError: boom\non two lines" in exception


def test_json_keeps_an_extra_named_like_a_core_field_and_encodes_any_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(LogSettings(format="json"))
    logging.getLogger("cdc.poll").warning(
        "odd", extra={"level": "table", "when": datetime(2026, 1, 2, tzinfo=UTC), "tables": ("accounts",)}
    )
    (line,) = _json_lines(capsys.readouterr().err)
    assert line["level"] == "WARNING"
    assert line["extra_level"] == "table"
    assert line["when"] == "2026-01-02T00:00:00+00:00"
    assert line["tables"] == ["accounts"]


def test_console_format_is_one_line_with_the_extras(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(LogSettings(format="console", level="DEBUG"))
    logging.getLogger("cdc.ingest").debug("published %d", 2, extra={"topic": "crm.changes", "partition": 1})
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" DEBUG cdc.ingest: published 2 topic=crm.changes partition=1")


def test_setting_up_again_replaces_the_handler_instead_of_doubling_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(LogSettings(format="console"))
    setup_logging(LogSettings(format="json"))
    logging.getLogger("cdc").warning("once")
    (line,) = _json_lines(capsys.readouterr().err)
    assert line["message"] == "once"


@pytest.mark.parametrize(
    ("log", "default", "expected"),
    [
        (LogSettings(), None, logging.INFO),  # a role at the default level
        (LogSettings(), "WARNING", logging.WARNING),  # the demo and short commands unless told otherwise
        (LogSettings(level="DEBUG"), "WARNING", logging.DEBUG),  # log.level set: honoured everywhere
        (LogSettings(level="INFO"), "WARNING", logging.INFO),  # even when it names the default
        (LogSettings(level="ERROR"), None, logging.ERROR),
    ],
)
def test_the_level_is_log_level_when_set_else_the_commands_default(
    log: LogSettings, default: Level | None, expected: int
) -> None:
    setup_logging(log, default_level=default)
    assert logging.getLogger().level == expected
