"""The API budget's arithmetic (`cdc.budget`), without I/O: a fake clock drives the tallies, the shares and
whole budgets, so a simulation of several processes can check what HubSpot would count.

Limits from fact sheet hubspot_2026.md §6 (a rolling 10 s burst window per app; the server's
``X-HubSpot-RateLimit-Max``/``-Remaining``) and dataverse.md §4 (6,000 requests per 300 s per user)."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from cdc.budget import Budget, BudgetClosedError, CallKind, Limits, Window, hubspot_kind, hubspot_limits
from cdc.budget._tally import Tally
from cdc.budget.shares import Use, allowance, equal_share, external_use, share
from cdc.budget.windows import dataverse_limits
from cdc.metrics import Metrics
from cdc.settings import DataverseSettings, HubSpotAuthSettings, HubSpotLimits, HubSpotSettings


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def small_limits(limit: float = 20, seconds: float = 2.0, skew_s: float = 0.02) -> Limits:
    """20 calls per 2 s, as the integration test sets the sandbox."""
    window = Window("ten_secondly", limit, seconds, skew_s=skew_s)
    kinds = {CallKind.API: ("ten_secondly",), CallKind.SEARCH: (), CallKind.EXEMPT: ()}
    return Limits("hubspot", (window,), kinds)


# -- the tally -----------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.7), min_size=1, max_size=80),
    slots=st.integers(min_value=1, max_value=60),
)
def test_a_tally_never_counts_fewer_calls_than_the_window_holds(gaps: list[float], slots: int) -> None:
    tally, now, sent = Tally(2.0, slots), 0.0, []
    for gap in gaps:
        now += gap
        tally.add(now)
        sent.append(now)
        true = sum(1 for at in sent if at > now - 2.0)
        at_most = sum(1 for at in sent if at > now - 2.0 - tally.slot_s)
        assert true <= tally.used(now) <= at_most


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=60),
    allowed=st.integers(min_value=1, max_value=30),
)
def test_room_at_is_the_first_moment_the_call_fits(gaps: list[float], allowed: int) -> None:
    tally, now = Tally(2.0, 20), 0.0
    for gap in gaps:
        now += gap
        tally.add(now)
    at = tally.room_at(now, allowed)
    assert at >= now
    if at > now:
        assert tally.used(at - 1e-6) + 1 > allowed  # (used() forgets what left: the earlier time first)
    assert tally.used(at) + 1 <= allowed


def test_a_call_dearer_than_the_whole_limit_never_fits() -> None:
    assert Tally(10.0).room_at(0.0, allowed=0.5) == math.inf


# -- shares --------------------------------------------------------------------------------------------

demands = st.floats(min_value=0.0, max_value=1000.0)


@given(limit=st.floats(min_value=1.0, max_value=1e6), mine=demands, others=st.lists(demands, max_size=6))
def test_the_shares_of_every_process_add_up_to_the_limit(
    limit: float, mine: float, others: list[float]
) -> None:
    everyone = [mine, *others]
    shares = [share(limit, d, everyone[:i] + everyone[i + 1 :]) for i, d in enumerate(everyone)]
    assert sum(shares) == pytest.approx(limit)
    assert all(s > 0 for s in shares)  # an idle process can always start


@given(
    limit=st.floats(min_value=1.0, max_value=1e4),
    own=st.tuples(demands, demands),
    others=st.lists(st.tuples(demands, demands), max_size=5),
    external=st.floats(min_value=0.0, max_value=2e4),
)
def test_an_allowance_never_exceeds_what_the_others_and_strangers_left(
    limit: float, own: tuple[float, float], others: list[tuple[float, float]], external: float
) -> None:
    uses = [Use(used, used + extra) for used, extra in others]
    mine = allowance(limit, Use(own[0], own[0] + own[1]), uses, external=external)
    assert 0.0 <= mine <= max(limit - external - sum(u.used for u in uses), 0.0) + 1e-9


def test_two_saturated_processes_get_half_each_and_an_idle_poller_almost_nothing() -> None:
    hungry = Use(95, 95 + 190)
    assert share(190, hungry.demand, [hungry.demand]) == pytest.approx(95)
    assert share(190, hungry.demand, [0.0]) == pytest.approx(190 * 285 / (285 + 1.9))


def test_without_reports_each_process_takes_an_equal_share() -> None:
    assert equal_share(190, 3) == pytest.approx(190 / 3)
    assert equal_share(190, 0) == 190
    assert equal_share(190, 2, external=90) == 50


def test_what_the_server_counts_beyond_our_calls_is_a_strangers_up_to_a_tolerance() -> None:
    assert external_use(20, remaining=3, known_used=2, tolerance=1) == 15
    assert external_use(20, remaining=17, known_used=2, tolerance=1) == 0  # one unreported call of ours
    assert external_use(20, remaining=20, known_used=5, tolerance=1) == 0


# -- the limits ----------------------------------------------------------------------------------------


def test_the_limits_follow_the_app_kind_and_the_tier() -> None:
    pro = hubspot_limits(HubSpotSettings())
    assert (pro.window("ten_secondly").limit, pro.window("daily").limit) == (190, 625_000)
    free = hubspot_limits(HubSpotSettings(limits=HubSpotLimits(tier="free")))
    assert (free.window("ten_secondly").limit, free.window("daily").limit) == (100, 250_000)
    packs = hubspot_limits(HubSpotSettings(limits=HubSpotLimits(tier="enterprise", limit_increase_packs=2)))
    assert (packs.window("ten_secondly").limit, packs.window("daily").limit) == (250, 3_000_000)
    oauth = HubSpotSettings(
        client_secret="s",  # type: ignore[arg-type]
        auth=HubSpotAuthSettings(kind="oauth", client_id="c", refresh_token="r"),  # type: ignore[arg-type]
    )
    assert hubspot_limits(oauth).window("ten_secondly").limit == 190  # a private app with OAuth tokens
    marketplace = HubSpotSettings(limits=HubSpotLimits(marketplace=True, limit_increase_packs=1))
    assert hubspot_limits(marketplace).window("ten_secondly").limit == 110  # no Limit Increase there
    capped = hubspot_limits(HubSpotSettings(limits=HubSpotLimits(daily=1_000_000, daily_cap=0.3, burst=50)))
    assert (capped.window("ten_secondly").limit, capped.window("daily").limit) == (50, 700_000)
    dataverse = dataverse_limits(DataverseSettings())
    assert (dataverse.window("requests").limit, dataverse.window("execution").limit) == (6000, 1200)
    assert dataverse.concurrent == 52


def test_the_journal_is_exempt_and_search_counts_only_its_own_window_and_the_day() -> None:
    assert hubspot_kind(frozenset({"daily", "ten-secondly"})) is CallKind.EXEMPT
    assert hubspot_kind(frozenset({"ten-secondly"})) is CallKind.SEARCH
    assert hubspot_kind(frozenset()) is CallKind.API
    assert hubspot_limits(HubSpotSettings()).kinds[CallKind.SEARCH] == ("search", "daily")


# -- budgets on a fake clock ---------------------------------------------------------------------------

API = ("ten_secondly",)


def simulate(
    processes: int,
    *,
    seconds: float,
    report_s: float,
    stale_s: float = 0.3,
    limits: Limits | None = None,
    busy: int | None = None,
    searching: int = 0,
) -> list[float]:
    """``processes`` budgets sharing ``limits`` (20 calls per 2 s), the first ``busy`` (all) trying a call
    every 10 ms, the last ``searching`` a search every 10 ms (`CallKind.SEARCH`'s windows), hearing the
    others' reports every ``report_s`` seconds, ``stale_s`` late; the send times of every (non-search)
    call."""
    clock = FakeClock()
    budgets = [
        Budget(limits or small_limits(), clock=clock, report_interval_s=report_s, alone=False)
        for _ in range(processes)
    ]
    sent: list[float] = []
    published: deque[tuple[float, list[dict[str, Use]]]] = deque()
    next_report = clock.now
    end = clock.now + seconds
    while clock.now < end:
        if clock.now >= next_report:
            published.append((clock.now, [b.report() for b in budgets]))
            next_report += report_s
        while published and published[0][0] <= clock.now - stale_s:
            _, reports = published.popleft()
            for i, budget in enumerate(budgets):
                budget.heard({str(j): r for j, r in enumerate(reports) if j != i})
        sent += [clock.now for budget in budgets[:busy] if budget.take_now(API) == 0]
        for budget in budgets[processes - searching :]:
            budget.take_now(limits.kinds[CallKind.SEARCH] if limits else API)
        clock.now += 0.01
    return sent


def most_in_any_window(sent: list[float], seconds: float) -> int:
    window: deque[float] = deque()
    most = 0
    for at in sent:
        window.append(at)
        while window[0] <= at - seconds:
            window.popleft()
        most = max(most, len(window))
    return most


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_processes_sharing_a_budget_stay_under_the_limit_together_and_use_most_of_it(processes: int) -> None:
    sent = simulate(processes, seconds=60, report_s=0.5)
    # What the server counts: never a 429 for one or two; three, whose reports cross, may overshoot a
    # window by a call now and then (a rare 429, which the retry policy waits out).
    assert most_in_any_window(sent, 2.0) <= 20 + (processes > 2)
    assert len(sent) >= 0.8 * 20 / 2.0 * 60


def test_two_busy_replicas_beside_an_idle_poller_never_exceed_hubspots_real_burst_limit() -> None:
    """190 per 10 s, reports every second and read 0.8 s late: each replica weighs its share on the demand
    it reported a round ago, as the others do (on its current demand it took 202 in one window)."""
    sent = simulate(
        3, busy=2, seconds=120, report_s=1.0, stale_s=0.8, limits=hubspot_limits(HubSpotSettings())
    )
    assert most_in_any_window(sent, 10.0) <= 190
    assert len(sent) >= 0.95 * 19 * 120


def test_a_poller_waiting_on_searchs_own_window_leaves_the_burst_window_to_the_replicas() -> None:
    """A call waiting for search's window (5 per second) made its process hungry in every window: it held a
    third of the 10 s burst window beside two busy replicas and used none of it (at 19 per 10 s in the
    bench: 13 of the 19 calls a window used). Hungry now means waiting for that window."""
    sent = simulate(
        3,
        busy=2,
        searching=1,
        seconds=120,
        report_s=1.0,
        stale_s=0.8,
        limits=hubspot_limits(HubSpotSettings()),
    )
    assert most_in_any_window(sent, 10.0) <= 190
    assert len(sent) >= 0.95 * 19 * 120


def test_a_budget_that_hears_nobody_would_take_the_whole_limit_in_each_process() -> None:
    """What the old code did (each process its own limiter): together they exceed the limit."""
    clock = FakeClock()
    budgets = [Budget(small_limits(), clock=clock) for _ in range(2)]
    sent: list[float] = []
    for _ in range(300):
        sent += [clock.now for budget in budgets if budget.take_now(API) == 0]
        clock.now += 0.01
    assert most_in_any_window(sent, 2.0) == 40


def test_the_servers_remaining_count_slows_the_budget_down_for_one_window() -> None:
    clock = FakeClock()
    budget = Budget(small_limits(), clock=clock)
    assert budget.take_now(API) == 0
    budget.observe("ten_secondly", server_max=20, remaining=3)  # 16 calls of another integration
    states = {s.window: s for s in budget.state()}
    assert states["ten_secondly"].external == 16
    taken = sum(1 for _ in range(10) if budget.take_now(API) == 0)
    assert taken == 3  # 20 - 16 strangers' - 1 ours
    clock.now += 2.1
    assert budget.take_now(API) == 0  # the window passed: the strangers' calls left it


def test_a_429_closes_the_window_for_at_most_its_length_and_the_process_is_seen_wanting_calls() -> None:
    """HubSpot names no wait on a 429 (fact sheet hubspot.md §5.2: its SDK waits 10 s, its default
    window's length); a window of 2 s has emptied long before."""
    clock = FakeClock()
    budget = Budget(small_limits(), clock=clock, report_interval_s=0.5)
    assert budget.take_now(API) == 0
    wait = budget.throttled(API, 10.0)
    assert wait == pytest.approx(2.02)  # the window and its skew
    assert budget.take_now(API) == pytest.approx(2.02)  # the process's other calls wait too
    clock.now += 1.5
    use = budget.report()["ten_secondly"]
    assert use.demand > use.used  # asleep in its retry, it still wants calls: its share is kept for it
    clock.now += 0.6
    assert budget.take_now(API) == 0
    assert budget.throttled(API, 0.3) == pytest.approx(0.3)  # a shorter wait asked is taken as asked


def test_a_disabled_budget_leaves_a_429s_wait_as_the_server_asked() -> None:
    budget = Budget(small_limits(), clock=FakeClock(), enabled=False)
    assert budget.throttled(API, 10.0) == 10.0


def test_a_process_that_ran_into_a_429_gets_its_share_back_within_a_window_or_two() -> None:
    """Two busy processes share 20 calls per 2 s; the first's first call is refused (the other took the
    window before the reports crossed). Asleep for HubSpot's 10 s, unseen, it had nothing for 10 s and
    then found the window held by the other (1 of 121 calls in a 12 s run, 2026-12-07)."""
    clock = FakeClock()
    budgets = [Budget(small_limits(), clock=clock, report_interval_s=0.5, alone=False) for _ in range(2)]
    asleep_until = clock.now + budgets[0].throttled(API, 10.0)
    sent: list[list[float]] = [[], []]
    next_report, end = clock.now, clock.now + 12.0
    while clock.now < end:
        if clock.now >= next_report:
            reports = [b.report() for b in budgets]
            for i, budget in enumerate(budgets):
                budget.heard({str(j): r for j, r in enumerate(reports) if j != i})
            next_report += 0.5
        for i, budget in enumerate(budgets):
            if (i or clock.now >= asleep_until) and budget.take_now(API) == 0:
                sent[i].append(clock.now)
        clock.now += 0.01
    assert most_in_any_window(sorted(sent[0] + sent[1]), 2.0) <= 20
    assert len(sent[0]) >= 0.3 * (len(sent[0]) + len(sent[1])), [len(s) for s in sent]


def test_an_equal_share_while_the_board_is_cut_off() -> None:
    clock = FakeClock()
    budget = Budget(small_limits(), clock=clock)
    budget.heard({}, fallback_live=4)
    assert sum(1 for _ in range(20) if budget.take_now(API) == 0) == 5


def test_the_state_an_admin_page_shows() -> None:
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    budget = Budget(small_limits(), clock=clock, metrics=metrics)
    budget.take_now(API)
    budget.heard({"other": {"ten_secondly": Use(7, 7)}})
    budget.export()
    (state,) = budget.state()
    assert (state.used, state.own, state.limit, state.processes) == (8, 1, 20, 2)
    labels = {"system": "hubspot", "window": "ten_secondly"}
    assert metrics.api_budget_used.labels(**labels)._value.get() == 8
    assert metrics.api_budget_processes.labels(system="hubspot")._value.get() == 2


async def test_a_call_waits_for_budget_and_a_stop_ends_the_wait_without_sending() -> None:
    budget = Budget(small_limits(limit=2, seconds=0.3, skew_s=0.0), metrics=Metrics(CollectorRegistry()))
    for _ in range(2):
        async with budget.spend():
            pass
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with budget.spend():
        pass
    assert loop.time() - started >= 0.2  # waited for the window, never failed
    for _ in range(1):
        async with budget.spend():
            pass
    waiting = asyncio.create_task(_spend(budget))
    await asyncio.sleep(0.01)
    budget.close()
    with pytest.raises(BudgetClosedError, match="stopping while a call waited"):
        await waiting


async def _spend(budget: Budget) -> None:
    async with budget.spend():
        pass


async def test_exempt_calls_never_wait() -> None:
    budget = Budget(small_limits(limit=1, seconds=60))
    async with budget.spend():
        pass
    async with asyncio.timeout(1):
        for _ in range(50):
            async with budget.spend(CallKind.EXEMPT):
                pass
