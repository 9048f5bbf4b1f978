"""The Webhooks Journal's routes (`cdc.sandbox.hubspot.journal`), per version ``2026-03`` and ``2026-09``:
journal reads (global ``journal/`` and per-portal ``journal-local/``), subscriptions, filters, and the
pre-signed file URLs.

Paths and operations: spec HubSpot/HubSpot-public-api-spec-collection ``PublicApiSpecs/Webhooks Journal/
Webhooks Journal/Rollouts/284944/{2026-03,2026-09}/webhooksJournal.json`` (fact sheet hubspot_2026.md §5).

Auth, the harsh reading of the fact sheet (§2, §5): only a client-credentials access token with the journal
scope the call needs (``developer.webhooks_journal.read`` for reads, ``.subscriptions.read`` / ``.write``
for subscriptions and filters); the portal's static token is refused with 403 ``MISSING_SCOPES``. Every
journal operation is exempt from the daily and ten-secondly limits (``x-hubspot-rate-limit-exemptions``),
so none passes the rate limiter. Nothing new to read is a 204 (community code, fact sheet §5).

File URLs carry no bearer token: they are fetched *without* an Authorization header (fact sheet §5, from the
2027-03-beta reference pages), and a request carrying one is refused (400), as an object store refuses a
pre-signed URL sent with a second credential. An ended URL answers 403.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, Handler, error_response, json_object
from cdc.sandbox.hubspot.journal import Entry, Journal
from cdc.sandbox.hubspot.scopes import JOURNAL_READ as READ
from cdc.sandbox.hubspot.scopes import JOURNAL_SNAPSHOTS_WRITE as SNAPSHOTS
from cdc.sandbox.hubspot.scopes import JOURNAL_SUBSCRIPTIONS_READ as SUBSCRIPTIONS_READ
from cdc.sandbox.hubspot.scopes import JOURNAL_SUBSCRIPTIONS_WRITE as SUBSCRIPTIONS_WRITE
from cdc.sandbox.hubspot.store import iso

__all__ = ["journal_routes"]

VERSIONS = ("2026-03", "2026-09")


def _guarded(ctx: Context, handler: Handler, scopes: tuple[str, ...]) -> Handler:
    """A client-credentials token holding one of ``scopes``; no rate limit (module docstring)."""

    async def run(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        grant = ctx.oauth.grant_of(token.strip()) if ctx.oauth and scheme.lower() == "bearer" else None
        try:
            if ctx.token_revoked or (grant is None and token.strip() != ctx.token):
                raise errors.unauthorized()
            if grant is not None and ctx.clock.time() >= grant.expires_at:
                raise errors.expired(ctx.clock.time() - grant.expires_at)
            if grant is None or grant.scopes is None or not grant.scopes.intersection(scopes):
                raise errors.missing_scopes(scopes)
            return await handler(request)
        except errors.HubSpotError as error:
            return error_response(ctx, error)

    return run


def _count(request: Request) -> int:
    raw = request.path_params.get("count", "")
    if not raw.isdigit():
        raise errors.bad_request(f"count must be an integer, not {raw!r}")
    return int(raw)


def _portal(ctx: Context, request: Request, *, local: bool) -> bool:
    """Whether this read is about our portal: a local read names it (``installPortalId``)."""
    raw = request.query_params.get("installPortalId")
    if raw is None:
        if local:
            raise errors.bad_request("installPortalId is required for the local journal")
        return True
    return raw == str(ctx.portal_id)


def journal_routes(ctx: Context, journal: Journal) -> list[Route]:  # noqa: C901, PLR0915 -- one closure per endpoint
    def fetched(request: Request, entries: list[Entry]) -> list[dict[str, object]]:
        return [journal.fetched(e, str(request.base_url)) for e in entries]

    def batch(request: Request, entries: list[Entry]) -> Response:
        if not entries:
            return Response(status_code=204)
        now = iso(ctx.clock.epoch_ms())
        return JSON({"status": "COMPLETE", "results": fetched(request, entries), "startedAt": now,
                     "completedAt": now})  # fmt: skip

    def one(request: Request, entries: list[Entry]) -> Response:
        return JSON(fetched(request, entries)[0]) if entries else Response(status_code=204)

    async def batch_read(request: Request) -> Response:
        body = await json_object(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise errors.bad_request("inputs must be a list of offsets")
        found, missing = journal.at(inputs)
        answer: dict[str, object] = {"status": "COMPLETE", "results": fetched(request, found)}
        if missing:
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Offset {o} not found or expired",
                }
                for o in missing
            ]
        return JSON(answer, 207 if missing else 200)

    reads: dict[str, Callable[[Request], Response]] = {
        "earliest": lambda r: one(r, journal.after(None, 1)),
        "latest": lambda r: one(r, journal.after(None, 1, latest=True)),
        "next": lambda r: one(r, journal.after(r.path_params["offset"], 1)),
        "batch-earliest": lambda r: batch(r, journal.after(None, _count(r))),
        "batch-latest": lambda r: batch(r, journal.after(None, _count(r), latest=True)),
        "batch-next": lambda r: batch(r, journal.after(r.path_params["offset"], _count(r))),
    }

    def reader(local: bool, read: str) -> Handler:
        async def run(request: Request) -> Response:
            if not _portal(ctx, request, local=local):
                return Response(status_code=204)
            if read == "batch-read":
                return await batch_read(request)
            return reads[read](request)

        return run

    async def snapshots(request: Request) -> Response:
        requests = (await json_object(request)).get("snapshotRequests")
        if not isinstance(requests, list) or not requests:
            raise errors.bad_request("snapshotRequests must be a non-empty list")
        return JSON({"snapshotResponses": [journal.snapshot(r) for r in requests]})

    async def status(request: Request) -> Response:
        return JSON(journal.status(request.path_params["statusId"]))

    async def upsert(request: Request) -> Response:
        return JSON(journal.upsert(await json_object(request)).as_json(ctx.app_id))

    async def listed(_: Request) -> Response:
        subs = sorted(journal.subscriptions.values(), key=lambda s: s.id)
        return JSON({"results": [s.as_json(ctx.app_id) for s in subs]})

    async def read_one(request: Request) -> Response:
        return JSON(journal.subscription(request.path_params["id"]).as_json(ctx.app_id))

    async def delete_one(request: Request) -> Response:
        journal.delete(request.path_params["id"])
        return Response(status_code=204)

    async def delete_portal(request: Request) -> Response:
        for sub in [
            s for s in journal.subscriptions.values() if str(s.portal_id) == request.path_params["id"]
        ]:
            journal.delete(str(sub.id))
        return Response(status_code=204)

    async def add_filter(request: Request) -> Response:
        return JSON({"filterId": journal.add_filter(await json_object(request))})

    async def filters_of(request: Request) -> Response:
        sub = journal.subscription(request.path_params["id"])
        return JSON([f for f in journal.filters.values() if f["subscriptionId"] == sub.id])

    async def read_filter(request: Request) -> Response:
        return JSON(journal.filter(request.path_params["id"]))

    async def delete_filter(request: Request) -> Response:
        del journal.filters[journal.filter(request.path_params["id"])["id"]]
        return Response(status_code=204)

    routes: list[Route] = []
    for version in VERSIONS:
        for scope, local in (("journal", False), ("journal-local", True)):
            base = f"/webhooks-journal/{scope}/{version}"
            for method, path, read in (
                ("GET", "earliest", "earliest"), ("GET", "latest", "latest"),
                ("GET", "offset/{offset}/next", "next"), ("GET", "batch/earliest/{count}", "batch-earliest"),
                ("GET", "batch/latest/{count}", "batch-latest"), ("POST", "batch/read", "batch-read"),
                ("GET", "batch/{offset}/next/{count}", "batch-next"),
            ):  # fmt: skip
                routes.append(
                    Route(f"{base}/{path}", _guarded(ctx, reader(local, read), (READ,)), methods=[method])
                )
            routes.append(
                Route(
                    f"{base}/status/{{statusId}}", _guarded(ctx, status, (READ, SNAPSHOTS)), methods=["GET"]
                )
            )
        routes.append(
            Route(
                f"/webhooks-journal/snapshots/{version}/crm",
                _guarded(ctx, snapshots, (SNAPSHOTS,)),
                methods=["POST"],
            )
        )
        subs = f"/webhooks-journal/subscriptions/{version}"
        reading, writing = (SUBSCRIPTIONS_READ, SUBSCRIPTIONS_WRITE), (SUBSCRIPTIONS_WRITE,)
        for method, path, handler, scopes in (
            ("GET", "", listed, reading), ("POST", "", upsert, writing),
            ("POST", "/filters", add_filter, writing),
            ("GET", "/filters/subscription/{id}", filters_of, reading),
            ("GET", "/filters/{id}", read_filter, reading),
            ("DELETE", "/filters/{id}", delete_filter, writing),
            ("DELETE", "/portals/{id}", delete_portal, writing),
            ("GET", "/{id}", read_one, reading), ("DELETE", "/{id}", delete_one, writing),
        ):  # fmt: skip
            routes.append(Route(f"{subs}{path}", _guarded(ctx, handler, scopes), methods=[method]))

    async def file(request: Request) -> Response:
        if "authorization" in request.headers:
            return PlainTextResponse(
                "InvalidArgument: Only one auth mechanism allowed; a pre-signed URL takes no Authorization "
                "header",
                400,
            )
        if journal.broken(request.path_params["key"]):
            return PlainTextResponse("InternalError: We encountered an internal error. Try again.", 500)
        body = journal.file(request.path_params["key"])
        if body is None:
            return PlainTextResponse("AccessDenied: Request has expired", 403)
        return JSON(body)

    routes.append(Route("/_journal-files/{key}", file, methods=["GET"]))
    return routes
