"""The windows of each API's budget, from the settings: which limits a call counts against.

HubSpot (fact sheet hubspot_2026.md §6): a burst limit per app in a rolling 10 s (privately distributed
apps, service keys and legacy private apps, whether their tokens are static or OAuth: 100 on Free/Starter,
190 on Professional/Enterprise, 250 with the API Limit Increase; OAuth apps distributed on the Marketplace,
``hubspot.limits.marketplace``: 110), a daily limit per account (250,000 /
625,000 / 1,000,000, +1,000,000 per Limit Increase pack), and search at 5 per second per account, exempt
from the burst limit but counted daily. Calls marked ``x-hubspot-rate-limit-exemptions`` (the Webhooks
Journal: daily and ten-secondly) count against nothing (`EXEMPT`).

Dataverse (fact sheet dataverse.md §4): per user and web server, 6,000 requests and 1,200 s of execution
time in a sliding 300 s, 52 concurrent requests. The deployment calls as one application user, and an org
with several web servers only has more: one server's limits are the safe budget.

Our windows are a little longer than the server's (``skew_s``): a call sent just as a slot frees may reach
the server a little sooner after its predecessor than it left us.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from cdc.settings import DataverseSettings, HubSpotSettings

__all__ = ["EXEMPT", "CallKind", "Limits", "Window", "dataverse_limits", "hubspot_kind", "hubspot_limits"]

DAY_S = 86_400.0


class CallKind(StrEnum):
    """What a call counts against (`Limits.kinds`)."""

    API = "api"
    SEARCH = "search"
    EXEMPT = "exempt"


EXEMPT = CallKind.EXEMPT


@dataclass(frozen=True)
class Window:
    name: str
    """A bounded label: ``ten_secondly``, ``daily``, ``search``, ``requests``, ``execution``."""
    limit: float
    seconds: float
    skew_s: float = 0.0
    slots: int = 50
    seconds_of_execution: bool = False
    """Counts the calls' execution time (after each call), not the calls."""

    @property
    def span_s(self) -> float:
        return self.seconds + self.skew_s


@dataclass(frozen=True)
class Limits:
    system: str
    windows: tuple[Window, ...]
    kinds: Mapping[CallKind, tuple[str, ...]]
    """The windows each kind of call counts against."""
    concurrent: int | None = None

    def window(self, name: str) -> Window:
        return next(window for window in self.windows if window.name == name)


_PRIVATE = MappingProxyType(
    {
        "free": (100, 250_000),
        "starter": (100, 250_000),
        "professional": (190, 625_000),
        "enterprise": (190, 1_000_000),
    }
)
"""Per tier: (calls per 10 s per app, calls per day per account), privately distributed apps. Professional's
daily figure is the usage-guidelines page's; an older changelog said 650,000 (the lower is kept)."""
OAUTH_BURST = 110
INCREASED_BURST = 250
PACK_DAILY = 1_000_000


def hubspot_limits(settings: HubSpotSettings) -> Limits:
    limits = settings.limits
    burst_default, daily_default = _PRIVATE[limits.tier]
    if limits.marketplace:
        burst_default = OAUTH_BURST  # the Limit Increase does not apply to Marketplace OAuth apps
    elif limits.limit_increase_packs:
        burst_default = INCREASED_BURST
    daily = (limits.daily or daily_default + PACK_DAILY * limits.limit_increase_packs) * (
        1 - limits.daily_cap
    )
    windows = (
        Window(
            "ten_secondly",
            limits.burst or burst_default,
            limits.window_s,
            skew_s=limits.window_s / 200,
            slots=100,
        ),
        Window("daily", daily, DAY_S, slots=1440),
        Window("search", limits.search_per_second, 1.0, skew_s=0.05),
    )
    kinds = {
        CallKind.API: ("ten_secondly", "daily"),
        CallKind.SEARCH: ("search", "daily"),
        CallKind.EXEMPT: (),
    }
    return Limits("hubspot", windows, MappingProxyType(kinds))


def dataverse_limits(settings: DataverseSettings) -> Limits:
    limits = settings.limits
    span = limits.window_s
    windows = (
        Window("requests", limits.requests, span, skew_s=span / 100),
        Window("execution", limits.execution_s, span, skew_s=span / 100, seconds_of_execution=True),
    )
    kinds = {
        CallKind.API: ("requests", "execution"),
        CallKind.SEARCH: ("requests", "execution"),
        CallKind.EXEMPT: (),
    }
    return Limits("dataverse", windows, MappingProxyType(kinds), concurrent=limits.concurrent)


def hubspot_kind(exemptions: frozenset[str]) -> CallKind:
    """What a HubSpot operation counts against, by the exemptions its spec marks: none (the journal's
    ``daily`` and ``ten-secondly``), search's own window (``ten-secondly`` alone: search), or the burst and
    daily windows."""
    if {"daily", "ten-secondly"} <= exemptions:
        return CallKind.EXEMPT
    if "ten-secondly" in exemptions:
        return CallKind.SEARCH
    return CallKind.API
