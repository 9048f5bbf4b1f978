"""``/lag``: each consumer group's lag per partition (records and seconds), as `cdc status` shows it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.admin.pages import View, health, render


async def lag(request: Request) -> Response:
    return render(request, "lag.html", {"status": await health(request).lags()})


VIEW = View("Lag", "/lag", [Route("/lag", lag, methods=["GET"])])
