"""Sandbox time: the wall clock plus an offset the admin API can advance (token expiry, rate windows)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Every time the emulators read goes through one of these, so tests can jump ahead."""

    def __init__(self) -> None:
        self._offset = 0.0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time() + self._offset

    def epoch_ms(self) -> int:
        return int(self.time() * 1000)

    def monotonic(self) -> float:
        """For windows and durations: never jumps back, moves with :meth:`advance`."""
        return time.monotonic() + self._offset
