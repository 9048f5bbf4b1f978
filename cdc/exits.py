"""Named exit codes, so scripts and orchestrators can tell a typo from an outage (sysexits.h values)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    DRIFT = 3
    """The cluster differs from the topic catalog; a person must decide."""
    UNAVAILABLE = 69
    """A dependency (Kafka, a CRM) did not answer; retrying later may work."""
    SOFTWARE = 70
    CONFIG = 78
    """The settings are wrong; fix them, retrying will not help."""


class CliError(Exception):
    """Ends a command with one line on stderr and a named exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = code
