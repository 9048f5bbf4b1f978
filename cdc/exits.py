"""Named exit codes, so scripts and orchestrators can tell a typo from an outage (sysexits.h values)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    DRIFT = 3
    """The cluster differs from the topic catalog; a person must decide."""
    UNHEALTHY = 4
    """`cdc status` found a problem (lag, a stale checkpoint, dead letters); the output says which."""
    NOT_FOUND = 5
    """The record, dead letter or group asked for is not there."""
    UNAVAILABLE = 69
    """A dependency (Kafka, a CRM) did not answer; retrying later may work."""
    SOFTWARE = 70
    """An unexpected error; `cdc sync` gives up with it once a loop keeps failing (`cdc.supervision`)."""
    BUSY = 75
    """Refused for now (a consumer group still has live members); stop them and retry."""
    CONFIG = 78
    """The settings are wrong; fix them, retrying will not help."""


class CliError(Exception):
    """Ends a command with one line on stderr and a named exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = code
