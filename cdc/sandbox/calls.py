"""API call accounting per endpoint, for tests and benchmarks ("API calls per synced change")."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class CallCounter:
    """Counts calls by ``"<METHOD> <route template>"`` and answers by status class."""

    def __init__(self) -> None:
        self._calls: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._calls[endpoint] += 1
            self._statuses[str(status)] += 1

    def count(self, endpoint: str | None = None) -> int:
        with self._lock:
            return self._calls[endpoint] if endpoint else sum(self._calls.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._calls.values()),
                "by_endpoint": dict(sorted(self._calls.items())),
                "by_status": dict(sorted(self._statuses.items())),
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._statuses.clear()
