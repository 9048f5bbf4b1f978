"""Parking: which work items wait while a step is paused, and which of the parked ones may go again.

Pure. The planner plans all the steps of a pair together, over both records (`consumers.planner`), so a
step cannot be held while another step of the same pair goes on with the same records: pausing a step
holds its *pair* (HubSpot contacts -> D365 contacts holds D365 contacts -> HubSpot contacts too, for the
same records; `held_pairs`). Items of other pairs keep flowing.

Per-pair order (guarantee 4) is kept by one rule: an item parks when its pair is held **or its route
already has items in the parked topic** (`sort`). So once a pair has parked items, every newer item of it
parks behind them, while its step is paused and after, until the replay has applied them all; the
replay reads the parked topic in order and stops at the first item of a pair still held (`replayable`),
since its offsets can only be committed in order. The parked topic is keyed and partitioned as the work
topic, so the replica owning a work partition owns the matching parked partition and knows every parked
route of it (`Waiting`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from consumers.config import SyncConfig
from streams.control import EVERYTHING
from streams.work import WorkItem

__all__ = ["Sorted", "Waiting", "check_target", "held_pairs", "replayable", "sort"]


def held_pairs(config: SyncConfig, steps: Iterable[str]) -> frozenset[str]:
    """The pairs whose items wait: those with a paused step among the configuration's enabled ones."""
    paused = set(steps)
    return frozenset(str(step.pair) for step in config.enabled_steps() if step.name in paused)


def check_target(config: SyncConfig, target: str | None) -> str:
    """What ``cdc pause TARGET`` pauses: ``*`` when none is named, else a step of the configuration.
    Raises ValueError naming the known steps for anything else."""
    if target is None or target == EVERYTHING:
        return EVERYTHING
    names = [step.name for step in config.steps]
    if target in names:
        return target
    raise ValueError(f"unknown step {target!r}: the configuration's steps are {', '.join(names)}")


@dataclass
class Waiting:
    """Per route, how many of its items wait in the parked topic (on the partitions this replica owns)."""

    routes: Counter[str] = field(default_factory=Counter)

    def __contains__(self, route: object) -> bool:
        return isinstance(route, str) and self.routes[route] > 0

    def add(self, routes: Iterable[str]) -> None:
        self.routes.update(routes)

    def remove(self, routes: Iterable[str]) -> None:
        self.routes.subtract(routes)
        self.routes = +self.routes  # drop the routes down to nothing

    def __len__(self) -> int:
        return sum(self.routes.values())


@dataclass(frozen=True, slots=True)
class Sorted:
    apply: list[WorkItem]
    park: list[WorkItem]


def sort(items: Sequence[WorkItem], held: frozenset[str], waiting: Waiting) -> Sorted:
    """Split a batch read from the work topic, in order, into what is applied now and what parks: an item
    of a held pair, and any item of a route with parked items (earlier ones of this batch count)."""
    apply: list[WorkItem] = []
    park: list[WorkItem] = []
    parked_now: set[str] = set()
    for item in items:
        if item.pair in held or item.route in waiting or item.route in parked_now:
            park.append(item)
            parked_now.add(item.route)
        else:
            apply.append(item)
    return Sorted(apply, park)


def replayable(parked: Sequence[WorkItem], held: frozenset[str]) -> int:
    """How many of one parked partition's items, read in order, may be applied now: all up to the first
    of a pair still held (the ones after it wait too: the partition's offset moves only in order)."""
    for n, item in enumerate(parked):
        if item.pair in held:
            return n
    return len(parked)
