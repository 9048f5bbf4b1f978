"""``/excluded``: the records the sync refuses or skips now (`streams.exclusions`), counted by step and
reason, filtered by reason and step, searched by id or value, paged; "Retry" per record and "Retry all
shown" for the current filter, through `cdc.ops.excluded.retry` (the record is read again and sent to the
sync, which clears its exclusion once it syncs)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.admin.pages import View, flash, health, page_of, posted, redirect, render, user
from streams.exclusions import Exclusion

FILTERS = ("reason", "step", "q")
RETRY_ALL_MAX = 500
"""The most records one "Retry all shown" reads again (a filter narrower than that, or `cdc excluded`)."""


def _shown(exclusions: list[Exclusion], *, reason: str, step: str, q: str) -> list[Exclusion]:
    """Those of ``reason`` and ``step`` (empty: any) whose ids, values or detail contain ``q``."""
    wanted = q.strip().casefold()

    def found(e: Exclusion) -> bool:
        ids = [e.record.object_id, *([e.counterpart.object_id] if e.counterpart else [])]
        texts = [*ids, *(str(v) for v in e.values.values()), e.detail or ""]
        return any(wanted in text.casefold() for text in texts)

    return [
        e
        for e in exclusions
        if e.matches(reason=reason or None, step=step or None) and (not wanted or found(e))
    ]


def _filters(source: dict[str, str]) -> dict[str, str]:
    return {name: source.get(name, "").strip()[:200] for name in FILTERS}


async def listing(request: Request) -> Response:
    everything = await health(request).exclusions()
    chosen = _filters(dict(request.query_params))
    shown = _shown(everything, **chosen)
    counts = sorted(Counter((e.step, str(e.reason)) for e in everything).items())
    context = {
        "paged": page_of(shown, request.query_params.get("page")),
        "counts": counts,
        "reasons": sorted({str(r) for e in everything for r in (e.reason, *e.reasons)}),
        "steps": sorted({e.step for e in everything}),
        "total": len(everything),
        "base": "/excluded?" + urlencode(chosen) + "&",
        "retry_all_max": RETRY_ALL_MAX,
        **chosen,
    }
    return render(request, "excluded.html", context)


async def retry_one(request: Request) -> Response:
    form = await posted(request)
    key = form.get("record", "")
    source = health(request)
    found = next((e for e in await source.exclusions() if e.key == key), None)
    if found is None:
        raise HTTPException(404, f"not excluded now: {key[:200]!r} (synced since, or never excluded)")
    flash(request, await source.retry([found], user(request)))
    return redirect("/excluded?" + urlencode(_filters(form)))


async def retry_all(request: Request) -> Response:
    form = await posted(request)
    chosen = _filters(form)
    source = health(request)
    shown = _shown(await source.exclusions(), **chosen)
    if not shown:
        raise HTTPException(404, "no excluded record matches this filter now: nothing to retry")
    if len(shown) > RETRY_ALL_MAX:
        raise HTTPException(
            413,
            f"{len(shown)} records match: narrow the filter to {RETRY_ALL_MAX} or fewer, or use "
            "`cdc excluded retry --reason R --step S`",
        )
    flash(request, await source.retry(shown, user(request)))
    return redirect("/excluded?" + urlencode(chosen))


VIEW = View(
    "Excluded",
    "/excluded",
    [
        Route("/excluded", listing, methods=["GET"]),
        Route("/excluded/retry", retry_one, methods=["POST"]),
        Route("/excluded/retry-all", retry_all, methods=["POST"]),
    ],
)
