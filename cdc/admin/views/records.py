"""``/records``: the linked records (paged, searchable), a record's story (``/records/story?q=``: its
link and audit history, as `cdc explain`, and its exclusion), "sync now" for one record, and "push from
HubSpot / Dataverse" for a linked pair (`cdc push` / `cdc pull` of that record)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.admin.pages import View, flash, health, page_of, posted, redirect, render, user
from streams.keys import RecordRef, SourceSystem


async def records(request: Request) -> Response:
    query = (request.query_params.get("q") or "").strip()
    links = await health(request).links()
    if query:
        wanted = query.casefold()
        links = [
            link
            for link in links
            if any(wanted in side.object_id.casefold() for side in (link.hubspot, link.dataverse))
        ]
    return render(
        request, "records.html", {"q": query, "paged": page_of(links, request.query_params.get("page"))}
    )


async def story(request: Request) -> Response:
    query = (request.query_params.get("q") or "").strip()
    if not query:
        return redirect("/records")
    return render(request, "story.html", {"story": await health(request).story(query)})


def _record(form: dict[str, str]) -> RecordRef:
    try:
        return RecordRef.from_key(form.get("record", ""))
    except ValueError:
        raise HTTPException(404, f"not a record: {form.get('record', '')[:200]!r}") from None


async def sync_now(request: Request) -> Response:
    form = await posted(request)
    ref = _record(form)
    flash(request, await health(request).sync_now(ref, user(request)))
    return redirect(f"/records/story?q={quote(ref.object_id)}")


async def push(request: Request) -> Response:
    form = await posted(request)
    ref = _record(form)
    try:
        winner = SourceSystem(form.get("winner", ""))
    except ValueError:
        raise HTTPException(400, "push from which side? hubspot or dataverse") from None
    lines = await health(request).push(ref, winner, user(request))
    flash(request, _cut("\n".join(lines)))
    return redirect(f"/records/story?q={quote(ref.object_id)}")


def _cut(text: str, most: int = 1500) -> str:
    """The flash message travels in the session cookie (4 KB at most): a long report is cut."""
    return text if len(text) <= most else text[: most - 1] + "…"


VIEW = View(
    "Records",
    "/records",
    [
        Route("/records", records, methods=["GET"]),
        Route("/records/story", story, methods=["GET"]),
        Route("/records/sync", sync_now, methods=["POST"]),
        Route("/records/push", push, methods=["POST"]),
    ],
)
