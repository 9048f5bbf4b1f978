"""The budgets of one process: one per API, shared by every client the process opens, and with the
other processes of the deployment through the budget board.

A role enters :func:`shared_budgets` once, before it opens its clients; `cdc.hubspot.client` and
`cdc.dataverse.client` take the budget of the role they run in (:func:`budget_for`: a context variable,
so the roles of `cdc run` each have theirs), or, outside a role (a test, a tool), a budget of their own,
which knows only its own calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cdc.budget.board import BudgetBoard
from cdc.budget.limiter import Budget
from cdc.budget.windows import dataverse_limits, hubspot_limits
from cdc.metrics import Metrics
from cdc.settings import Settings

__all__ = ["Budgets", "budget_for", "shared_budgets"]


@dataclass(frozen=True)
class Budgets:
    hubspot: Budget
    dataverse: Budget

    @classmethod
    def from_settings(
        cls, settings: Settings, metrics: Metrics | None, *, stop: asyncio.Event | None = None
    ) -> Budgets:
        options = {
            "stop": stop,
            "metrics": metrics,
            "enabled": settings.budget.enabled,
            "report_interval_s": settings.budget.report_interval_s,
            "alone": not settings.budget.share,
        }
        return cls(
            hubspot=Budget(hubspot_limits(settings.hubspot), **options),  # type: ignore[arg-type]
            dataverse=Budget(dataverse_limits(settings.dataverse), **options),  # type: ignore[arg-type]
        )


_CURRENT: contextvars.ContextVar[Budgets | None] = contextvars.ContextVar("cdc_budgets", default=None)


def budget_for(system: str) -> Budget | None:
    """The running role's budget for ``system`` (``hubspot``, ``dataverse``), or None outside a role."""
    budgets = _CURRENT.get()
    if budgets is None:
        return None
    return budgets.hubspot if system == "hubspot" else budgets.dataverse


@contextlib.asynccontextmanager
async def shared_budgets(
    settings: Settings, metrics: Metrics, *, role: str, stop: asyncio.Event | None = None
) -> AsyncIterator[Budgets]:
    """The role's budgets, shared through the board while the block runs (``budget.share``). Once ``stop``
    is set, or on exit, a call still waiting for budget raises `cdc.budget.limiter.BudgetClosedError`;
    on exit the board says goodbye."""
    budgets = Budgets.from_settings(settings, metrics, stop=stop)
    token = _CURRENT.set(budgets)
    try:
        if settings.budget.share:
            async with BudgetBoard(
                settings.kafka, (budgets.hubspot, budgets.dataverse), settings=settings.budget, role=role
            ):
                yield budgets
        else:
            yield budgets
            budgets.hubspot.close()
            budgets.dataverse.close()
    finally:
        _CURRENT.reset(token)
