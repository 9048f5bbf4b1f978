"""``/budget``: calls per system in each window against the limits and the cap, and a 24 h chart."""

from __future__ import annotations

import time

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.admin.charts import usage_chart
from cdc.admin.pages import View, health, render


async def budget(request: Request) -> Response:
    view = await health(request).budget()
    now = time.time()
    charts = []
    for system, window in view.chart_window.items():
        limit = next((w.limit for w in view.windows if w.system == system and w.window == window), 0.0)
        title = f"{system}: calls in the {window} window over the last 24 h"
        # usage_chart escapes every text it writes: its markup is safe to insert as is.
        chart = Markup(usage_chart(view.series.get(system, []), limit=limit, now=now, title=title))  # noqa: S704
        charts.append((title, chart))
    return render(request, "budget.html", {"budget": view, "charts": charts})


VIEW = View("API budget", "/budget", [Route("/budget", budget, methods=["GET"])])
