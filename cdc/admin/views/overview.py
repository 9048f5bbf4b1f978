"""``/``: per sync step the records in sync and failing, what waits per consumer group, the last writes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.admin.pages import View, health, render


async def overview(request: Request) -> Response:
    return render(request, "overview.html", {"overview": await health(request).overview()})


VIEW = View("Overview", "/", [Route("/", overview, methods=["GET"])])
