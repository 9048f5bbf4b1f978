"""Fault knobs shared by both emulators: added latency, 5xx and 429 rates, webhook mischief.

Randomness comes from one seeded generator per emulator, so a run with the same seed and the same
request order makes the same decisions.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FaultKnobs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, description="Added to every API response.")
    latency_jitter_ms: float = Field(default=0.0, ge=0, description="Uniform extra latency in [0, jitter].")
    answer_delay_ms: float = Field(
        default=0.0,
        ge=0,
        description="Added after a call's work is done, before its answer: a write that lands while its "
        "caller waits (a caller killed meanwhile never learns of it).",
    )
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of API calls answered 503.")
    throttle_rate: float = Field(default=0.0, ge=0, le=1, description="Share of API calls answered 429.")
    webhook_duplicate_rate: float = Field(default=0.0, ge=0, le=1, description="Share of batches sent twice.")
    webhook_drop_rate: float = Field(default=0.0, ge=0, le=1, description="Share of events never sent.")
    webhook_reorder: bool = Field(
        default=True,
        # On by default: HubSpot does not guarantee webhook order (fact sheet §1.4, D-WH), so neither does
        # the sandbox unless a test turns it off to check something else.
        description="Shuffle events within a webhook batch (HubSpot guarantees no order).",
    )
    # The Webhooks Journal's delay and completeness are not documented (hubspot_2026.md §5: UNVERIFIED).
    journal_delay_ms: float = Field(
        default=0.0, ge=0, description="How long after a change its journal entry appears (sandbox clock)."
    )
    journal_gap_rate: float = Field(default=0.0, ge=0, le=1, description="Share of journal entries lost.")


class Faults:
    """The current knobs and the seeded dice; safe to use from several tasks and threads."""

    def __init__(self, seed: int = 0) -> None:
        self._knobs = FaultKnobs()
        self._random = random.Random(seed)  # noqa: S311 -- fault injection, not cryptography
        self._lock = threading.Lock()

    @property
    def knobs(self) -> FaultKnobs:
        return self._knobs

    def update(self, changes: dict[str, Any]) -> FaultKnobs:
        """Apply a partial update (unknown knobs or out-of-range values raise ``ValidationError``)."""
        self._knobs = FaultKnobs.model_validate({**self._knobs.model_dump(), **changes})
        return self._knobs

    def reset(self) -> None:
        self._knobs = FaultKnobs()

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._random.shuffle(items)

    def random(self) -> random.Random:
        """The shared generator, for emulator decisions that must be reproducible (hold no lock long)."""
        return self._random

    async def answer_delay(self) -> None:
        if (delay_ms := self._knobs.answer_delay_ms) > 0:
            await asyncio.sleep(delay_ms / 1000)

    async def delay(self) -> None:
        knobs = self._knobs
        if knobs.latency_ms <= 0 and knobs.latency_jitter_ms <= 0:
            return
        with self._lock:
            jitter = self._random.uniform(0, knobs.latency_jitter_ms) if knobs.latency_jitter_ms else 0.0
        await asyncio.sleep((knobs.latency_ms + jitter) / 1000)
