"""The admin page's views, one module each, in the navigation's order. A new view is a module exposing a
`cdc.admin.pages.View` as ``VIEW``, added to `VIEWS` (and its data to `cdc.admin.source.HealthSource`)."""

from cdc.admin.pages import View
from cdc.admin.views import budget, deadletters, excluded, lag, overview, paused, records

VIEWS: tuple[View, ...] = (
    overview.VIEW,
    records.VIEW,
    excluded.VIEW,
    paused.VIEW,
    deadletters.VIEW,
    lag.VIEW,
    budget.VIEW,
)

__all__ = ["VIEWS"]
