"""``/deadletters``: the dead letters, newest first, paged and filtered by step; a redrive per letter."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.admin.pages import View, flash, health, page_of, posted, redirect, render, user
from cdc.ops.deadletters import parse_letter_id


async def letters(request: Request) -> Response:
    book = await health(request).deadletters()
    step = request.query_params.get("step") or None
    status = request.query_params.get("status") or None
    chosen = [e for e in book.select(step=step) if status is None or e.status == status][::-1]
    steps = sorted({e.letter.step or "-" for e in book.letters})
    context = {"paged": page_of(chosen, request.query_params.get("page")), "step": step, "steps": steps}
    return render(request, "deadletters.html", {**context, "status": status, "depth": book.depth()})


async def redrive_one(request: Request) -> Response:
    form = await posted(request)
    try:
        partition, offset = parse_letter_id(form.get("letter", ""))
    except ValueError as error:
        raise HTTPException(404, str(error)) from None
    source = health(request)
    found = (await source.deadletters()).find(partition, offset)
    if found is None:
        raise HTTPException(404, f"no dead letter {partition}:{offset}")
    flash(request, await source.redrive(found, user(request)))
    return redirect("/deadletters")


VIEW = View(
    "Dead letters",
    "/deadletters",
    [
        Route("/deadletters", letters, methods=["GET"]),
        Route("/deadletters/redrive", redrive_one, methods=["POST"]),
    ],
)
