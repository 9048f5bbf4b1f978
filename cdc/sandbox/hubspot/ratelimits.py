"""Rate limits per app (the key `check` is given): a rolling 10-second burst bucket, a daily counter, and
search's 5 per second. The burst limit is per app and the daily one per account (fact sheet
hubspot_2026.md §6), so the app's static token and every OAuth access token it is issued share them.

Numbers and headers from fact sheet §5. Defaults are a Professional/Enterprise private app (190 per 10 s,
1,000,000 a day) and search at 5 requests per second; any limit can be set to None (unlimited) through
the admin API, e.g. for a benchmark that wants to measure the daemon rather than HubSpot's limits.
Search does not count toward the burst bucket and answers without rate-limit headers, but counts toward
the daily total. The day turns at midnight UTC (the sandbox portal's time zone).
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cdc.sandbox.clock import Clock
from cdc.sandbox.hubspot import errors

__all__ = ["RateLimiter", "RateSettings"]


class RateSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    burst: int | None = Field(default=190, ge=1, description="Requests per rolling window; None: unlimited.")
    window_ms: int = Field(default=10_000, ge=1)
    daily: int | None = Field(default=1_000_000, ge=1, description="Requests per day; None: unlimited.")
    search_per_second: int | None = Field(default=5, ge=1, description="Search requests per second.")


class RateLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.settings = RateSettings()
        self._lock = threading.Lock()
        self._burst: dict[str, deque[float]] = defaultdict(deque)
        self._search: dict[str, deque[float]] = defaultdict(deque)
        self._daily: dict[str, tuple[str, int]] = {}

    def update(self, changes: dict[str, Any]) -> RateSettings:
        with self._lock:
            self.settings = RateSettings.model_validate({**self.settings.model_dump(), **changes})
            return self.settings

    def reset(self) -> None:
        with self._lock:
            self._burst.clear()
            self._search.clear()
            self._daily.clear()

    def consume(self, key: str, calls: int) -> None:
        """``calls`` made now by another integration of the same app and account: they count in the burst
        window and the day (and so in the headers the daemon's next answer carries) but answer nobody."""
        now = self._clock.monotonic()
        day = self._clock.now().date().isoformat()
        with self._lock:
            seen_day, used_today = self._daily.get(key, (day, 0))
            self._daily[key] = (day, (used_today if seen_day == day else 0) + calls)
            self._burst[key].extend([now] * calls)

    def check(self, key: str, *, search: bool = False) -> dict[str, str]:
        """Counts one request, returning its headers, or raises the documented 429."""
        settings = self.settings
        now = self._clock.monotonic()
        day = self._clock.now().date().isoformat()
        with self._lock:
            seen_day, used_today = self._daily.get(key, (day, 0))
            if seen_day != day:
                used_today = 0
            if settings.daily is not None and used_today >= settings.daily:
                raise errors.rate_limited("DAILY")
            if search:
                window = _trim(self._search[key], now - 1.0)
                if settings.search_per_second is not None and len(window) >= settings.search_per_second:
                    raise errors.rate_limited("SECONDLY")
                window.append(now)
                self._daily[key] = (day, used_today + 1)
                return {}
            bucket = _trim(self._burst[key], now - settings.window_ms / 1000)
            if settings.burst is not None and len(bucket) >= settings.burst:
                raise errors.rate_limited("TEN_SECONDLY_ROLLING")
            bucket.append(now)
            self._daily[key] = (day, used_today + 1)
            return _headers(settings, len(bucket), used_today + 1)


def _trim(window: deque[float], oldest: float) -> deque[float]:
    while window and window[0] <= oldest:
        window.popleft()
    return window


def _headers(settings: RateSettings, used_in_window: int, used_today: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    if settings.daily is not None:
        headers["X-HubSpot-RateLimit-Daily"] = str(settings.daily)
        headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(settings.daily - used_today, 0))
    if settings.burst is not None:
        per_second = max(settings.burst * 1000 // settings.window_ms, 1)
        headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(settings.window_ms)
        headers["X-HubSpot-RateLimit-Max"] = str(settings.burst)
        headers["X-HubSpot-RateLimit-Remaining"] = str(max(settings.burst - used_in_window, 0))
        headers["X-HubSpot-RateLimit-Secondly"] = str(per_second)
        headers["X-HubSpot-RateLimit-Secondly-Remaining"] = str(
            max(per_second - min(used_in_window, per_second), 0)
        )
    return headers
