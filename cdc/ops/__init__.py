"""Operator commands over Kafka: `cdc status`, `cdc replay`, `cdc deadletter`, `cdc explain`; and
`cdc resync` (``resync``), which reads the CRMs too and is not re-exported here, so the others load no CRM
client.

Each module gathers with I/O and returns a report that knows how to print itself as lines or JSON; the
CLI's commands (`cdc.commands`) only parse options and pick the exit code.
"""

from cdc.ops._kafka import quiet_kafka_logs
from cdc.ops._times import parse_when
from cdc.ops.deadletters import DeadLetterBook, Letter, RedriveReport, load_book, parse_letter_id, redrive
from cdc.ops.explain import Explanation, RecordQuery, explain
from cdc.ops.replay import GroupBusyError, PartitionReset, ReplayPlan, read_offsets_file, replay
from cdc.ops.status import StatusReport, Thresholds, gather_status, problems, render

__all__ = [
    "DeadLetterBook",
    "Explanation",
    "GroupBusyError",
    "Letter",
    "PartitionReset",
    "RecordQuery",
    "RedriveReport",
    "ReplayPlan",
    "StatusReport",
    "Thresholds",
    "explain",
    "gather_status",
    "load_book",
    "parse_letter_id",
    "parse_when",
    "problems",
    "quiet_kafka_logs",
    "read_offsets_file",
    "redrive",
    "render",
    "replay",
]
