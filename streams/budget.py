"""The `budget` topic's schema: each process's use of each API window, reported about once a second.

Compacted and keyed by process: the newest report of each process is the deployment's state; a clean stop
writes a tombstone, and a report older than ``budget.stale_after_s`` is a process gone (killed, or cut off
from Kafka). ``at`` is the reporter's wall clock, so readers compare it with theirs: the clocks of one
deployment are assumed to agree within a second or so (NTP).
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["BudgetReport", "decode_report", "encode_report", "report_key"]


class BudgetReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    process: str
    role: str
    at: float
    """Seconds since the epoch when the report was made."""
    systems: dict[str, dict[str, tuple[float, float]]]
    """system -> window -> (used, demand)."""


def report_key(process: str) -> bytes:
    return process.encode()


def encode_report(report: BudgetReport) -> bytes:
    return orjson.dumps(report.model_dump())


def decode_report(raw: bytes) -> BudgetReport | None:
    """The report, or None for anything unreadable (another version's, a stray record): ignored, since the
    next report of its process replaces it."""
    try:
        return BudgetReport.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None
