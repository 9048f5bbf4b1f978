"""Service protection limits per caller (fact sheet §4): requests per sliding window and concurrent
requests. Execution-time limits are not modelled.

Windows run on the sandbox clock's monotonic time, so advancing the clock empties them.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from cdc.sandbox.clock import Clock
from cdc.sandbox.dataverse import errors

__all__ = ["ProtectionSettings", "ServiceProtection"]


class ProtectionSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    requests_per_window: int = Field(default=6000, ge=1)
    window_seconds: int = Field(default=300, ge=1)
    concurrent_requests: int = Field(default=52, ge=1)
    concurrency_retry_after_seconds: int = Field(default=1, ge=1)


class ServiceProtection:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.settings = ProtectionSettings()
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def configure(self, changes: dict[str, object]) -> ProtectionSettings:
        self.settings = ProtectionSettings.model_validate({**self.settings.model_dump(), **changes})
        return self.settings

    def enter(self, caller: str) -> None:
        """Admit one request of ``caller`` or raise the documented 429; pair with :meth:`leave`."""
        settings = self.settings
        if not settings.enabled:
            return
        now = self.clock.monotonic()
        with self._lock:
            in_flight = self._in_flight.get(caller, 0)
            if in_flight >= settings.concurrent_requests:
                raise errors.concurrency_limit(
                    settings.concurrent_requests, settings.concurrency_retry_after_seconds
                )
            window = self._windows.setdefault(caller, deque())
            while window and window[0] <= now - settings.window_seconds:
                window.popleft()
            if len(window) >= settings.requests_per_window:
                retry = max(1, math.ceil(window[0] + settings.window_seconds - now))
                raise errors.request_limit(settings.requests_per_window, settings.window_seconds, retry)
            window.append(now)
            self._in_flight[caller] = in_flight + 1

    def leave(self, caller: str) -> None:
        if not self.settings.enabled and caller not in self._in_flight:
            return
        with self._lock:
            left = self._in_flight.get(caller, 0) - 1
            if left > 0:
                self._in_flight[caller] = left
            else:
                self._in_flight.pop(caller, None)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._in_flight.clear()
