"""``/paused``: what is paused (everything, or steps one by one), by whom, since when, why; pause and
resume for everything and per step, through `cdc.ops.pauses` (as `cdc pause` / `cdc resume`: the control
topic every sync replica obeys within a second, audited with the user in the same transaction).

`PauseBanner` puts a line on every page while anything is paused."""

from __future__ import annotations

from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cdc.admin.pages import View, flash, health, posted, redirect, render, user
from cdc.admin.source import HealthSource
from streams.admin import KafkaUnavailableError, TopicAdminError
from streams.control import EVERYTHING, describe

REASON_CHARS = 200


async def paused(request: Request) -> Response:
    state = await health(request).pauses()
    return render(request, "paused.html", {"state": state, "everything": EVERYTHING})


async def _change(request: Request, *, paused: bool) -> Response:
    form = await posted(request)
    target = form.get("target", "").strip() or None
    reason = form.get("reason", "").strip()[:REASON_CHARS] or None
    flash(request, await health(request).set_pause(target, paused=paused, actor=user(request), reason=reason))
    return redirect("/paused")


async def pause(request: Request) -> Response:
    return await _change(request, paused=True)


async def resume(request: Request) -> Response:
    return await _change(request, paused=False)


class PauseBanner:
    """Inside `cdc.admin.security.RequireLogin`: for a logged-in user's page, what is paused now goes in the
    scope (``paused``), which the layout shows as a banner. A control topic that does not answer says so
    in the banner rather than showing nothing (the page itself then says what is down)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and "user_name" in scope:
            source: HealthSource = scope["app"].state.source
            try:
                scope["paused"] = describe((await source.pauses()).pauses)
            except (KafkaUnavailableError, TopicAdminError, KafkaError) as error:
                scope["paused"] = f"unknown (the control topic did not answer: {type(error).__name__})"
        await self.app(scope, receive, send)


VIEW = View(
    "Paused",
    "/paused",
    [
        Route("/paused", paused, methods=["GET"]),
        Route("/paused/pause", pause, methods=["POST"]),
        Route("/paused/resume", resume, methods=["POST"]),
    ],
)
