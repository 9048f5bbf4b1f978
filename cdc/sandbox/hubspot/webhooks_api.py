"""Webhook settings and subscriptions routes (fact sheet §1.5), for the app given in the path, per API
version: ``/webhooks/v3``, ``/webhooks/2026-03`` and ``/app-webhooks/2026-09``, whose bodies are the same:
a legacy public app's, called with its developer API key (``hapikey``); a project app has no credential
for them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, endpoint, json_body, json_object
from cdc.sandbox.hubspot.store import iso
from cdc.sandbox.hubspot.versions import ApiVersion

__all__ = ["webhook_routes"]


def webhook_routes(ctx: Context, version: ApiVersion) -> list[Route]:  # noqa: C901 -- one closure per endpoint
    subs = ctx.subscriptions

    def app_of(request: Request) -> None:
        if request.path_params["appId"] != str(ctx.app_id):
            raise errors.not_found(f"App {request.path_params['appId']} not found")

    def now() -> str:
        return iso(ctx.clock.epoch_ms())

    async def get_settings(request: Request) -> Response:
        app_of(request)
        settings = subs.settings_json()
        if settings is None:
            raise errors.not_found("No webhook settings for this app")
        return JSON(settings)

    async def put_settings(request: Request) -> Response:
        app_of(request)
        settings = subs.put_settings(await json_body(request), now())
        ctx.dispatcher.wake()
        return JSON(settings)

    async def delete_settings(request: Request) -> Response:
        app_of(request)
        subs.set_target(None, now())
        return Response(status_code=204)

    async def list_subscriptions(request: Request) -> Response:
        app_of(request)
        return JSON({"results": [s.as_json() for s in sorted(subs.items.values(), key=lambda s: s.id)]})

    async def create_subscription(request: Request) -> Response:
        app_of(request)
        return JSON(subs.create(await json_object(request), now()).as_json(), 201)

    async def read_subscription(request: Request) -> Response:
        app_of(request)
        return JSON(subs.get(request.path_params["subscriptionId"]).as_json())

    async def update_subscription(request: Request) -> Response:
        app_of(request)
        body = await json_object(request)
        return JSON(
            subs.set_active(request.path_params["subscriptionId"], body.get("active"), now()).as_json()
        )

    async def delete_subscription(request: Request) -> Response:
        app_of(request)
        subs.delete(request.path_params["subscriptionId"])
        return Response(status_code=204)

    async def batch_update(request: Request) -> Response:
        app_of(request)
        body = await json_object(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise errors.bad_request("inputs must be a list")
        started = now()
        results = [subs.set_active(str(i.get("id")), i.get("active"), now()).as_json() for i in inputs]
        return JSON({"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now()})

    base = f"{version.webhooks}/{{appId}}"
    one = f"{base}/subscriptions/{{subscriptionId}}"
    api = [
        ("GET", f"{base}/settings", get_settings),
        ("PUT", f"{base}/settings", put_settings),
        ("DELETE", f"{base}/settings", delete_settings),
        ("GET", f"{base}/subscriptions", list_subscriptions),
        ("POST", f"{base}/subscriptions", create_subscription),
        ("POST", f"{base}/subscriptions/batch/update", batch_update),
        ("GET", one, read_subscription),
        ("PATCH", one, update_subscription),
        ("PUT", one, update_subscription),
        ("DELETE", one, delete_subscription),
    ]
    return [
        Route(path, endpoint(ctx, handler, developer=True), methods=[method]) for method, path, handler in api
    ]
