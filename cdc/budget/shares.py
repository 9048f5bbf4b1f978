"""How much of one API window this process may use: pure arithmetic over what every process reported.

Every process that calls an API reports, per window, what it ``used`` (calls, or seconds of execution, in
the window) and its ``demand`` (its use, plus the whole limit while calls of it wait for that window). Its
allowance is then, in order:

1. the *effective* limit: the window's limit less what other integrations use (``external``: what the
   server counts beyond what the deployment reported, when the server says so, e.g. HubSpot's
   ``X-HubSpot-RateLimit-Remaining``);
2. less what the others hold: a process that waits for budget holds its *share* (in proportion to its
   demand among the live processes' demands, each at least a small floor) or its use if that is more; one
   that wants no more than it uses holds its use, and the rest of its share is free to take. So a process
   whose share grew waits until the calls of the one whose share shrank leave the window, and shares move
   without overshooting, while a share another leaves unused is not lost;
3. never more than its last report plus an equal share of the effective limit: the others may not know
   yet that it got busy (two idle processes that start at once would each take the whole window).

Two saturated processes converge on half each; a saturated one beside an idle poller gets nearly all of
it. Without reports (Kafka unreachable) a process takes an equal share: the limit over the processes it
saw last (:func:`equal_share`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FLOOR", "Use", "allowance", "equal_share", "external_use", "share"]

FLOOR = 0.01
"""An idle process's weight, as a fraction of the limit."""
SLACK = 0.005
"""What a waiting process may have sent since its report, as a fraction of the limit (a call in 190)."""


@dataclass(frozen=True)
class Use:
    """One process's report for one window."""

    used: float
    demand: float


def share(limit: float, own_demand: float, others_demand: Sequence[float], floor: float = FLOOR) -> float:
    """This process's part of ``limit``, in proportion to its demand (step 2)."""
    least = max(limit * floor, 1e-9)
    mine = max(own_demand, least)
    total = mine + sum(max(demand, least) for demand in others_demand)
    return limit * mine / total


def allowance(
    limit: float, own: Use, others: Sequence[Use], *, external: float = 0.0, reported: float | None = None
) -> float:
    """What this process may have used in the window, its own calls included (steps 1-3; ``reported``:
    the use it last reported, None when it reports to nobody)."""
    effective = max(limit - external, 0.0)
    demands = [other.demand for other in others]
    held = 0.0
    for i, other in enumerate(others):
        if other.demand > other.used:  # it waits for more: it holds its share, or its use if that is more
            theirs = share(effective, other.demand, [own.demand, *demands[:i], *demands[i + 1 :]])
            held += max(other.used, theirs) + effective * SLACK
        else:  # it wants no more than it uses: the rest of its share is free to take
            held += other.used
    mine = effective - held
    if reported is not None:
        mine = min(mine, reported + effective / (1 + len(others)))
    return max(mine, 0.0)


def equal_share(limit: float, live: int, *, external: float = 0.0) -> float:
    """The fallback without reports: the effective limit over the ``live`` processes last seen."""
    return max(limit - external, 0.0) / max(live, 1)


def external_use(server_max: float, remaining: float, known_used: float, tolerance: float) -> float:
    """What the server counts in the window beyond the deployment's own calls (``known_used``): other
    integrations of the same app or account. Up to ``tolerance`` is taken for the others' calls not yet
    reported (their next report is at most a report interval away), not for a stranger."""
    extra = (server_max - remaining) - known_used
    return extra if extra > tolerance else 0.0
