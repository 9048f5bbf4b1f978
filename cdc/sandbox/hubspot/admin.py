"""Admin API under ``/_admin`` (JSON, no auth, never counted, delayed or failed).

Routes:

- ``GET  /_admin/info`` -- token, app id, portal id, client secret, webhook URL, app kind and (a legacy
  app's) developer API key.
- ``PUT  /_admin/project/webhooks`` -- a project app's webhooks component (``webhooks-hsmeta.json``), as
  ``hs project upload`` deploys it: its subscriptions replace the app's (and ``settings.targetUrl``, when
  given, is the target URL); 400 when HubSpot would refuse an entry, 409 for a legacy app.
- ``POST /_admin/seed`` -- ``{"contacts": [{...properties}], "companies": [...], "deals": [...]}``:
  creates records without webhooks; answers their ids per type. Read-only (HubSpot-computed) properties
  may be seeded.
- ``POST   /_admin/objects/{type}`` -- create as a user (``{"properties", "userId"?}``): ``CRM_UI``
  webhooks.
- ``GET    /_admin/objects/{type}`` -- every record of the type (``?archived=true`` for archived ones).
- ``GET    /_admin/objects/{type}/{id}`` -- one record with all properties and history (archived too).
- ``PATCH  /_admin/objects/{type}/{id}`` -- update as a user (``{"properties", "userId"?}``); with
  ``"changeSource": "HUBSPOT_INTERNAL"`` as HubSpot itself (its calculations: read-only properties such as
  ``hs_analytics_source`` may be set; webhooks say ``changeSource: HUBSPOT_INTERNAL``).
- ``DELETE /_admin/objects/{type}/{id}`` -- archive as a user (``?userId=``).
- ``POST   /_admin/objects/{type}/{id}/restore`` -- restore an archived record as a user.
- ``POST   /_admin/objects/{type}/merge`` -- ``{"primaryObjectId", "objectIdToMerge", "userId"?}``.
- ``POST   /_admin/objects/contacts/gdpr-delete`` -- privacy-delete as a user (``{"objectId", "idProperty"?,
  "userId"?}``): the record is gone for good, ``contact.privacyDeletion`` (and the journal's GDPR_DELETE).
- ``POST   /_admin/associations`` -- ``{"fromType", "fromId", "toType", "toId", "primary"?, "userId"?}``.
- ``POST   /_admin/associations/remove`` -- same body; removes every type between the two.
- ``GET    /_admin/associations/{type}/{id}`` -- every association of a record, by target type.
- ``GET    /_admin/webhooks`` / ``PUT`` -- ``{"url", "timeout_seconds", "retry_base_seconds",
  "require_subscriptions"}``; GET also shows queue state and the dropped count.
- ``GET    /_admin/webhooks/deliveries`` (``DELETE`` clears) -- every attempt: batch, attempt, status, error.
- ``POST   /_admin/webhooks/drain`` -- waits (``?timeout=``) until nothing is queued, in flight or retrying.
- ``GET    /_admin/calls`` (``DELETE`` resets) -- API calls per endpoint and per status.
- ``GET    /_admin/faults`` / ``PUT`` -- the fault knobs (partial update; 400 on unknown knobs).
- ``GET    /_admin/ratelimits`` / ``PUT`` -- ``{"burst", "window_ms", "daily", "search_per_second"}``,
  ``null`` meaning unlimited; ``DELETE`` empties the counters.
- ``POST   /_admin/ratelimits/consume`` -- ``{"calls": N}``: another integration of the app spends N calls now
  (burst window and day), so the daemon's next answers say less is ``Remaining``.
- ``POST   /_admin/token/revoke``, ``POST /_admin/token/restore`` -- every API call answers 401 from the
  revoke until the restore (an uninstalled app, a rotated static token), OAuth access tokens too.
- ``GET    /_admin/oauth`` / ``PUT`` -- the OAuth app (:mod:`cdc.sandbox.hubspot.oauth`): client id, the
  installation's refresh token, its scopes, ``accessTokenLifetimeS`` and the tokens issued per grant; PUT
  sets ``{"accessTokenLifetimeS", "scopes"}`` (tokens issued before keep theirs).
- ``POST   /_admin/oauth/authorize`` -- ``{"scopes"?, "redirectUri"?}``: a user installs the app (again);
  -> 201 the authorization code its redirect carries.
- ``POST   /_admin/oauth/revoke``, ``/restore`` -- ``{"refreshToken"?}`` (default: every one): the token
  endpoint refuses (takes again) that refresh token; access tokens issued with it last until they end.
- ``POST   /_admin/oauth/expire`` -- every OAuth access token ends now (its next use answers 401).
- ``POST   /_admin/clock/advance`` -- ``{"seconds"}``: moves the sandbox clock (rate windows, retries).
- ``POST   /_admin/owners``, ``DELETE /_admin/owners/{ownerId}`` -- add and archive owners
  (:mod:`cdc.sandbox.hubspot.owners`).
- ``GET    /_admin/validation-rules`` (``DELETE`` removes all) -- the portal's validation rules;
  ``POST`` adds one: ``{"objectType", "propertyName", "message"?, "when"?: {"propertyName", "value"}}``
  -> 201 the rule. API writes of 2026-09 obey them (:mod:`cdc.sandbox.hubspot.rules`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.calls import CallCounter
from cdc.sandbox.faults import Faults
from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, admin_endpoint, json_object, path_type
from cdc.sandbox.hubspot.associations import PRIMARY_OF
from cdc.sandbox.hubspot.crm import create_with_associations, privacy_delete
from cdc.sandbox.hubspot.oauth import DEFAULT_REDIRECT, OAuthApp
from cdc.sandbox.hubspot.objects import OBJECT_TYPES, object_type
from cdc.sandbox.hubspot.render import record_json
from cdc.sandbox.hubspot.store import Actor, iso

__all__ = ["admin_routes"]

DEFAULT_USER = 9_000_001
INTERNAL = "HUBSPOT_INTERNAL"


def admin_routes(ctx: Context, calls: CallCounter, faults: Faults) -> list[Route]:  # noqa: C901, PLR0915 -- one closure per route
    store, dispatcher = ctx.store, ctx.dispatcher
    oauth = ctx.oauth or OAuthApp(clock=ctx.clock, seed=0, client_secret="", portal_id=ctx.portal_id)

    def user(body: dict[str, Any] | None = None, request: Request | None = None) -> Actor:
        raw = (body or {}).get("userId") or (request.query_params.get("userId") if request else None)
        return Actor("CRM_UI", f"userId:{int(raw or DEFAULT_USER)}")

    def full(record: Any) -> dict[str, Any]:
        return {**record_json(store, record, everything=True), "propertiesWithHistory": record.history}

    async def info(_: Request) -> Response:
        return JSON(
            {
                "token": ctx.token,
                "appId": ctx.app_id,
                "portalId": ctx.portal_id,
                "clientSecret": dispatcher.client_secret,
                "webhookUrl": ctx.subscriptions.target_url,
                "appKind": ctx.subscriptions.app_kind,
                "developerApiKey": ctx.developer_api_key,
                "clientId": oauth.client_id,
                "refreshToken": oauth.refresh_token,
            }
        )

    def oauth_view() -> dict[str, Any]:
        return {
            "clientId": oauth.client_id,
            "refreshToken": oauth.refresh_token,
            "scopes": sorted(oauth.scopes),
            "accessTokenLifetimeS": oauth.lifetime_s,
            "issued": dict(oauth.issued),
        }

    async def oauth_app(request: Request) -> Response:
        if request.method == "PUT":
            body = await json_object(request)
            lifetime = body.get("accessTokenLifetimeS", oauth.lifetime_s)
            scopes = body.get("scopes", sorted(oauth.scopes))
            if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
                raise errors.bad_request("accessTokenLifetimeS must be a number of seconds above 0")
            if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
                raise errors.bad_request("scopes must be a list of scope names")
            oauth.lifetime_s, oauth.scopes = float(lifetime), frozenset(scopes)
        return JSON(oauth_view())

    async def oauth_authorize(request: Request) -> Response:
        body = await json_object(request)
        scopes = body.get("scopes")
        redirect = str(body.get("redirectUri") or DEFAULT_REDIRECT)
        code = oauth.authorize(frozenset(scopes) if isinstance(scopes, list) else None, redirect)
        return JSON({"code": code, "redirectUri": redirect}, 201)

    async def oauth_revoke(request: Request) -> Response:
        body = await json_object(request)
        token = body.get("refreshToken")
        revoking = request.url.path.endswith("/revoke")
        if not oauth.revoke(str(token) if token else None, revoked=revoking):
            raise errors.not_found("no such refresh token")
        return JSON({"revoked": revoking})

    async def oauth_expire(_: Request) -> Response:
        return JSON({"expired": oauth.expire_access_tokens()})

    async def seed(request: Request) -> Response:
        body = await json_object(request)
        created: dict[str, list[str]] = {}
        for name, items in body.items():
            ot = object_type(name)
            if ot is None or not isinstance(items, list):
                raise errors.bad_request(f"Unknown object type {name}")
            created[ot.name] = [
                store.create(ot, item, user(), emit=False, internal=True).id for item in items
            ]
        return JSON(created, 201)

    async def create(request: Request) -> Response:
        ot, body = path_type(request), await json_object(request)
        return JSON(full(create_with_associations(store, ot, body, user(body))), 201)

    async def list_all(request: Request) -> Response:
        ot = path_type(request)
        archived = request.query_params.get("archived", "false") == "true"
        return JSON({"results": [full(r) for r in store.all(ot, archived=archived)]})

    async def read(request: Request) -> Response:
        ot, object_id = path_type(request), request.path_params["objectId"]
        record = store.get(ot, object_id) or store.get(ot, object_id, archived=True)
        if record is None:
            raise errors.object_not_found(object_id)
        return JSON(full(record))

    async def update(request: Request) -> Response:
        ot, body = path_type(request), await json_object(request)
        internal = body.get("changeSource") == INTERNAL
        actor = Actor(INTERNAL, "") if internal else user(body)
        values = body.get("properties") or {}
        return JSON(full(store.update(ot, request.path_params["objectId"], values, actor, internal=internal)))

    async def delete(request: Request) -> Response:
        ot = path_type(request)
        if not store.archive(ot, request.path_params["objectId"], user(request=request)):
            raise errors.object_not_found(request.path_params["objectId"])
        return Response(status_code=204)

    async def restore(request: Request) -> Response:
        ot = path_type(request)
        return JSON(full(store.restore(ot, request.path_params["objectId"], user(request=request))))

    async def merge(request: Request) -> Response:
        ot, body = path_type(request), await json_object(request)
        merged = store.merge(
            ot, str(body.get("primaryObjectId")), str(body.get("objectIdToMerge")), user(body)
        )
        return JSON(full(merged))

    async def gdpr_delete(request: Request) -> Response:
        body = await json_object(request)
        return privacy_delete(store, path_type(request), body, user(body))

    def pair(body: dict[str, Any]) -> tuple[Any, str, Any, str]:
        source, target = object_type(str(body.get("fromType"))), object_type(str(body.get("toType")))
        if source is None or target is None:
            raise errors.bad_request("fromType and toType must be contacts, companies or deals")
        return source, str(body.get("fromId")), target, str(body.get("toId"))

    async def associate(request: Request) -> Response:
        body = await json_object(request)
        source, from_id, target, to_id = pair(body)
        primary = PRIMARY_OF.get((source.name, target.name))
        type_ids = [primary] if body.get("primary") and primary else []
        store.associate(source, from_id, target, to_id, type_ids, user(body))
        return JSON({"ok": True})

    async def disassociate(request: Request) -> Response:
        body = await json_object(request)
        source, from_id, target, to_id = pair(body)
        store.disassociate(source, from_id, target, to_id, None, user(body))
        return JSON({"ok": True})

    async def associations_of(request: Request) -> Response:
        ot = path_type(request)
        found = {
            target.name: {
                k: sorted(v)
                for k, v in store.associations_of(ot, request.path_params["objectId"], target).items()
            }
            for target in OBJECT_TYPES.values()
        }
        return JSON(found)

    async def webhooks(request: Request) -> Response:
        if request.method == "PUT":
            body = await json_object(request)
            if "url" in body:
                ctx.subscriptions.set_target(body["url"], iso(ctx.clock.epoch_ms()))
            if "timeout_seconds" in body:
                dispatcher.timeout_seconds = float(body["timeout_seconds"])
            if "retry_base_seconds" in body:
                dispatcher.retry_base_seconds = float(body["retry_base_seconds"])
            if "require_subscriptions" in body:
                ctx.subscriptions.require_subscriptions = bool(body["require_subscriptions"])
            dispatcher.wake()
        return JSON(
            {
                "url": ctx.subscriptions.target_url,
                "timeout_seconds": dispatcher.timeout_seconds,
                "retry_base_seconds": dispatcher.retry_base_seconds,
                "require_subscriptions": ctx.subscriptions.require_subscriptions,
                "dropped": dispatcher.dropped,
                **dispatcher.state(),
            }
        )

    async def deploy_webhooks(request: Request) -> Response:
        if ctx.subscriptions.app_kind != "project":
            message = "a legacy app's subscriptions are made with the webhooks API"
            raise errors.HubSpotError(409, message, {"category": "CONFLICT"})
        made = ctx.subscriptions.deploy(await json_object(request), iso(ctx.clock.epoch_ms()))
        dispatcher.wake()
        return JSON({"results": [s.as_json() for s in made]})

    async def deliveries(request: Request) -> Response:
        if request.method == "DELETE":
            dispatcher.log.clear()
            return Response(status_code=204)
        return JSON({"results": list(dispatcher.log)})

    async def drain(request: Request) -> Response:
        try:
            await dispatcher.wait_idle(float(request.query_params.get("timeout", "30")))
        except TimeoutError:
            return JSON({"idle": False, **dispatcher.state()}, 504)
        return JSON({"idle": True})

    async def call_counts(request: Request) -> Response:
        if request.method == "DELETE":
            calls.reset()
            return Response(status_code=204)
        return JSON(calls.snapshot())

    async def fault_knobs(request: Request) -> Response:
        if request.method == "PUT":
            faults.update(await json_object(request))
        return JSON(faults.knobs.model_dump())

    async def rate_limits(request: Request) -> Response:
        if request.method == "PUT":
            ctx.limiter.update(await json_object(request))
        elif request.method == "DELETE":
            ctx.limiter.reset()
        return JSON(ctx.limiter.settings.model_dump())

    async def consume(request: Request) -> Response:
        calls = (await json_object(request)).get("calls")
        if not isinstance(calls, int) or isinstance(calls, bool) or calls < 0:
            raise errors.bad_request("calls must be a non-negative integer")
        ctx.limiter.consume(str(ctx.app_id), calls)
        return JSON({"consumed": calls})

    async def advance(request: Request) -> Response:
        seconds = (await json_object(request)).get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            raise errors.bad_request("seconds must be a non-negative number")
        ctx.clock.advance(float(seconds))
        dispatcher.wake()
        return JSON({"offset": ctx.clock.offset, "now": ctx.clock.epoch_ms()})

    async def validation_rules(request: Request) -> Response:
        if request.method == "POST":
            body = await json_object(request)
            ot = object_type(str(body.get("objectType")))
            if ot is None:
                raise errors.bad_request("objectType must be contacts, companies or deals")
            return JSON(ctx.rules.add(ot, body, store.properties[ot.name]).as_json(), 201)
        if request.method == "DELETE":
            ctx.rules.clear()
            return Response(status_code=204)
        return JSON({"results": [rule.as_json() for rule in ctx.rules.items]})

    async def revoke_token(_: Request) -> Response:
        ctx.token_revoked = True
        return JSON({"revoked": True})

    async def restore_token(_: Request) -> Response:
        ctx.token_revoked = False
        return JSON({"revoked": False})

    table = [
        ("/info", info, ["GET"]),
        ("/token/revoke", revoke_token, ["POST"]),
        ("/token/restore", restore_token, ["POST"]),
        ("/oauth", oauth_app, ["GET", "PUT"]),
        ("/oauth/authorize", oauth_authorize, ["POST"]),
        ("/oauth/revoke", oauth_revoke, ["POST"]),
        ("/oauth/restore", oauth_revoke, ["POST"]),
        ("/oauth/expire", oauth_expire, ["POST"]),
        ("/seed", seed, ["POST"]),
        ("/objects/{objectType}/merge", merge, ["POST"]),
        ("/objects/{objectType}/gdpr-delete", gdpr_delete, ["POST"]),
        ("/objects/{objectType}", create, ["POST"]),
        ("/objects/{objectType}", list_all, ["GET"]),
        ("/objects/{objectType}/{objectId}", read, ["GET"]),
        ("/objects/{objectType}/{objectId}", update, ["PATCH"]),
        ("/objects/{objectType}/{objectId}", delete, ["DELETE"]),
        ("/objects/{objectType}/{objectId}/restore", restore, ["POST"]),
        ("/associations", associate, ["POST"]),
        ("/associations/remove", disassociate, ["POST"]),
        ("/associations/{objectType}/{objectId}", associations_of, ["GET"]),
        ("/webhooks", webhooks, ["GET", "PUT"]),
        ("/webhooks/deliveries", deliveries, ["GET", "DELETE"]),
        ("/project/webhooks", deploy_webhooks, ["PUT"]),
        ("/webhooks/drain", drain, ["POST"]),
        ("/calls", call_counts, ["GET", "DELETE"]),
        ("/faults", fault_knobs, ["GET", "PUT"]),
        ("/ratelimits", rate_limits, ["GET", "PUT", "DELETE"]),
        ("/ratelimits/consume", consume, ["POST"]),
        ("/clock/advance", advance, ["POST"]),
        ("/validation-rules", validation_rules, ["GET", "POST", "DELETE"]),
    ]
    return [
        Route(f"/_admin{path}", admin_endpoint(ctx, handler), methods=methods)
        for path, handler, methods in table
    ]
