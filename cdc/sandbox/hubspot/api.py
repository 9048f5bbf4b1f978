"""What every public route shares: the portal context, bearer auth, rate limits, JSON in and out.

Per API request, in order: the bearer token (401 in HubSpot's shape: the portal's static token, or an
access token the OAuth app issued, `cdc.sandbox.hubspot.oauth`, answered ``EXPIRED_AUTHENTICATION`` once
it ended), its scopes (403 ``MISSING_SCOPES`` naming the scopes the call needs,
`cdc.sandbox.hubspot.scopes`; the static token holds them all), the rate limiter (429 with its policy;
headers on every counted answer; one bucket per app: HubSpot's burst limit is the app's, so a renewed
token starts no fresh one), the JSON body (400 when it is not JSON), then the handler, whose
:class:`HubSpotError` becomes HubSpot's error body. Correlation and request ids come from the
seeded generator, so a replay with the same seed answers the same bodies.
"""

from __future__ import annotations

import hmac
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cdc.sandbox.clock import Clock
from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.oauth import OAuthApp
from cdc.sandbox.hubspot.objects import ObjectType, object_type
from cdc.sandbox.hubspot.ratelimits import RateLimiter
from cdc.sandbox.hubspot.rules import Rules
from cdc.sandbox.hubspot.scopes import required_scopes
from cdc.sandbox.hubspot.store import Actor, Store
from cdc.sandbox.hubspot.subscriptions import Subscriptions
from cdc.sandbox.hubspot.webhooks import WebhookDispatcher

__all__ = [
    "JSON",
    "Context",
    "Handler",
    "admin_endpoint",
    "endpoint",
    "error_response",
    "json_body",
    "path_type",
]

Handler = Callable[[Request], Awaitable[Response]]


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass
class Context:
    """The portal behind the routes (one per :class:`HubSpotSandbox`)."""

    store: Store
    limiter: RateLimiter
    subscriptions: Subscriptions
    dispatcher: WebhookDispatcher
    clock: Clock
    token: str
    developer_api_key: str | None
    """A legacy public app's developer API key: the webhooks API's only credential (None: a project app,
    whose subscriptions no API manages)."""
    app_id: int
    portal_id: int
    ids: random.Random
    order: random.Random
    """Shuffles batch results: HubSpot answers batch create/read/update/upsert in no set order ("There is
    no way to do it", HubSpot's maintainers in HubSpot/hubspot-api-nodejs issue 190; fact sheet
    hubspot_2026.md, trace ids: order UNVERIFIED), so a caller must match results by id or trace id."""
    oauth: OAuthApp | None = None
    """The app's OAuth side: the access tokens it issued are taken beside the static token."""
    rules: Rules = field(default_factory=Rules)
    """Admin-configured validation rules: the 2026-09 routes refuse writes that break one."""
    token_revoked: bool = False
    """The app's credentials are revoked (an admin uninstalled the app, or rotated its static token): every
    API call answers 401, static token or OAuth access token, until they are restored
    (``/_admin/token/revoke``, ``/_admin/token/restore``; the OAuth refresh tokens have
    ``/_admin/oauth/revoke`` of their own). A refused token is refused on every call, in the 401 shape of
    reference/hubspot.md §3.4."""

    @property
    def app_actor(self) -> Actor:
        return Actor("INTEGRATION", str(self.app_id))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def shuffled(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``results`` in a seeded random order (see ``order``)."""
        results = list(results)
        self.order.shuffle(results)
        return results


def error_response(
    ctx: Context, error: errors.HubSpotError, headers: dict[str, str] | None = None
) -> Response:
    return JSON(
        error.body(ctx.uuid(), ctx.uuid()), error.status, headers={**(headers or {}), **error.headers}
    )


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


def _authorized(ctx: Context, request: Request, *, developer: bool) -> frozenset[str] | None:
    """The scopes of an authorized request's credential (None: all of them); a 401 `HubSpotError` else.

    The webhooks API takes the developer API key (``hapikey``) alone, the harsher reading (hubspot_2026.md
    §4: the 2026-09 draft allows nothing else; hubspot.md §1.5 also names an app token): a portal token there
    is refused, as a project app's or a service key's is by HubSpot (issue 15). Every other API takes the
    portal's static bearer token, or an access token the OAuth app issued and that has not ended."""
    if developer:
        key = request.query_params.get("hapikey")
        wanted = ctx.developer_api_key
        if key and wanted and hmac.compare_digest(key.encode(), wanted.encode()):
            return None
        raise errors.unauthorized()
    token = _token_of(request)
    if token is None or ctx.token_revoked:
        raise errors.unauthorized()
    if hmac.compare_digest(token.encode(), ctx.token.encode()):
        return None
    grant = ctx.oauth.grant_of(token) if ctx.oauth is not None else None
    if grant is None:
        raise errors.unauthorized()
    ended = ctx.clock.time() - grant.expires_at
    if ended >= 0:
        raise errors.expired(ended)
    return grant.scopes


def _scoped(scopes: frozenset[str] | None, request: Request) -> None:
    """403 when the credential holds none of the scopes the call needs (`cdc.sandbox.hubspot.scopes`)."""
    if scopes is None:
        return
    needed = required_scopes(request.method, request.url.path, request.path_params)
    if needed and not scopes.intersection(needed):
        raise errors.missing_scopes(needed)


def endpoint(ctx: Context, handler: Handler, *, search: bool = False, developer: bool = False) -> Handler:
    async def run(request: Request) -> Response:
        try:
            _scoped(_authorized(ctx, request, developer=developer), request)
        except errors.HubSpotError as refused:
            return error_response(ctx, refused)
        headers: dict[str, str] = {}
        try:
            headers = ctx.limiter.check(str(ctx.app_id), search=search)
            response = await handler(request)
        except errors.HubSpotError as error:
            return error_response(ctx, error, headers)
        response.headers.update(headers)
        return response

    return run


def admin_endpoint(ctx: Context, handler: Handler) -> Handler:
    """An admin route: no auth, no limits; a HubSpotError or a settings ValidationError is its answer."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except errors.HubSpotError as error:
            return error_response(ctx, error)
        except ValidationError as error:
            return JSON({"status": "error", "message": str(error)}, 400)

    return run


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise errors.bad_request("Invalid input JSON on line 1") from None


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise errors.bad_request("Invalid input: a JSON object is required")
    return body


def path_type(request: Request, key: str = "objectType") -> ObjectType:
    name = request.path_params[key]
    found = object_type(name)
    if found is None:
        raise errors.bad_request(f"Unable to infer object type from: {name}")
    return found


def query_list(request: Request, name: str) -> list[str] | None:
    """``?properties=a,b&properties=c`` -> [a, b, c]; None when absent."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [item for value in values for item in value.split(",") if item]
