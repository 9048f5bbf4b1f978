"""One request to HubSpot as the metrics and the retry policy see it, whoever sends it (the API client, the
token provider): counted by status and timed, a network error or timeout made a `RetriableError`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp

from cdc.hubspot.errors import RetriableError
from cdc.metrics import Metrics

__all__ = ["Sent", "sent"]

SYSTEM = "hubspot"


@dataclass
class Sent:
    status: str = "network_error"
    """The answer's status, once one came: the ``status`` label."""


@contextlib.contextmanager
def sent(metrics: Metrics, endpoint: str) -> Iterator[Sent]:
    """Around one request to ``endpoint`` (a label, never a URL): set ``status`` when the answer comes."""
    request, started = Sent(), time.perf_counter()
    try:
        yield request
    except (aiohttp.ClientError, TimeoutError) as error:
        raise RetriableError(
            f"HubSpot {endpoint}: {type(error).__name__}: {error}", endpoint=endpoint
        ) from error
    finally:
        metrics.api_answered(SYSTEM, endpoint, request.status, started)
