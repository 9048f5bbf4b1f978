"""The API budget: one per API for the whole deployment (every process and replica), which calls wait
for instead of running into 429s. See `cdc.budget.limiter` (one process), `cdc.budget.shares` (the
arithmetic), `cdc.budget.board` (the sharing through Kafka) and `cdc.budget.windows` (the limits)."""

from cdc.budget.limiter import Budget, BudgetClosedError, WindowState
from cdc.budget.process import Budgets, budget_for, shared_budgets
from cdc.budget.windows import (
    EXEMPT,
    CallKind,
    Limits,
    Window,
    dataverse_limits,
    hubspot_kind,
    hubspot_limits,
)

__all__ = [
    "EXEMPT",
    "Budget",
    "BudgetClosedError",
    "Budgets",
    "CallKind",
    "Limits",
    "Window",
    "WindowState",
    "budget_for",
    "dataverse_limits",
    "hubspot_kind",
    "hubspot_limits",
    "shared_budgets",
]
