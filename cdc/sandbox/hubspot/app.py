"""The HubSpot emulator: one portal with one app, as a starlette application, serving the API versions of
`cdc.sandbox.hubspot.versions` (legacy v3/v4, 2026-03, 2026-09) side by side on one store.

The app is a project app (the default: webhook subscriptions deployed from its project files, events in
the generic ``object.*`` format) or a legacy public app (``app_kind="legacy"``: subscriptions managed
through the webhooks API with a developer API key, events in the ``contact.*`` format); see
:mod:`cdc.sandbox.hubspot.subscriptions`. Credentials (token, client secret) and ids come from the seed
unless given; the developer API key, a legacy app's only, from a stream of its own, so the others stay
what they were for a seed. The app also has an OAuth side (:mod:`cdc.sandbox.hubspot.oauth`: its client id,
the refresh token of its installation, the token endpoint of each version, access tokens that end); its
tokens come from a stream of their own too. The app's lifespan owns the
webhook dispatcher task: it starts with the server and is cancelled (with its in-flight deliveries)
when the server stops, so no task outlives the app. API routes pass through the shared
:class:`SandboxMiddleware` (accounting, injected latency/429/503 in HubSpot's error shape); the admin API
is described in :mod:`cdc.sandbox.hubspot.admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from cdc.sandbox.calls import CallCounter
from cdc.sandbox.clock import Clock
from cdc.sandbox.faults import Faults
from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.admin import admin_routes
from cdc.sandbox.hubspot.api import Context, error_response
from cdc.sandbox.hubspot.associations_api import association_routes
from cdc.sandbox.hubspot.crm import crm_routes
from cdc.sandbox.hubspot.forms import Forms, form_admin_routes, form_routes
from cdc.sandbox.hubspot.journal import Journal
from cdc.sandbox.hubspot.journal_api import journal_routes
from cdc.sandbox.hubspot.oauth import OAuthApp, token_routes
from cdc.sandbox.hubspot.objects import OBJECT_TYPES
from cdc.sandbox.hubspot.owners import Owners, owner_admin_routes, owner_routes
from cdc.sandbox.hubspot.properties_api import property_routes
from cdc.sandbox.hubspot.ratelimits import RateLimiter
from cdc.sandbox.hubspot.store import Change, Record, Store, iso
from cdc.sandbox.hubspot.subscriptions import Subscriptions
from cdc.sandbox.hubspot.versions import SERVED, not_served_routes
from cdc.sandbox.hubspot.webhooks import WebhookDispatcher
from cdc.sandbox.hubspot.webhooks_api import webhook_routes
from cdc.sandbox.middleware import SandboxMiddleware

__all__ = ["HubSpotSandbox"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class HubSpotSandbox:
    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        portal_id: int = 62515,
        app_id: int = 1160452,
        token: str | None = None,
        client_secret: str | None = None,
        webhook_url: str | None = None,
        retry_base_seconds: float = 1.0,
        app_kind: Literal["project", "legacy"] = "project",
        access_token_lifetime_s: float | None = None,
    ) -> None:
        """``access_token_lifetime_s``: how long an OAuth access token lasts (HubSpot: 30 minutes;
        `cdc.sandbox.hubspot.oauth`); the admin API changes it too."""
        rng = random.Random(seed)  # noqa: S311 -- sandbox credentials and ids, reproducible on purpose
        self.clock = clock or Clock()
        self.portal_id = portal_id
        self.app_id = app_id
        self.token = token or f"pat-na1-{_uuid(rng)}"
        self.client_secret = client_secret or _uuid(rng)
        self.app_kind = app_kind
        self.developer_api_key = (
            _uuid(random.Random(f"{seed}:developer")) if app_kind == "legacy" else None  # noqa: S311 -- a test key
        )
        self.calls = CallCounter()
        self.faults = Faults(seed)
        self.subscriptions = Subscriptions(first_id=rng.randrange(100_000, 900_000), app_kind=app_kind)
        self.dispatcher = WebhookDispatcher(
            clock=self.clock,
            faults=self.faults,
            subscriptions=self.subscriptions,
            seed=rng.getrandbits(32),
            client_secret=self.client_secret,
            app_id=app_id,
            portal_id=portal_id,
            retry_base_seconds=retry_base_seconds,
        )
        # Its own stream, so the ids drawn from ``rng`` stay what they were for a seed.
        self.journal = Journal(
            clock=self.clock,
            faults=self.faults,
            portal_id=portal_id,
            app_id=app_id,
            rng=random.Random(f"{seed}:journal"),  # noqa: S311 -- offsets and ids, reproducible
        )
        self.store = Store(self.clock, random.Random(rng.getrandbits(32)), self._changed)  # noqa: S311 -- ids
        self.journal.lookup = self._record_of
        self.limiter = RateLimiter(self.clock)
        self.oauth = OAuthApp(
            clock=self.clock, seed=seed, client_secret=self.client_secret, portal_id=portal_id
        )
        if access_token_lifetime_s is not None:
            self.oauth.lifetime_s = access_token_lifetime_s
        self.context = Context(
            store=self.store,
            limiter=self.limiter,
            subscriptions=self.subscriptions,
            dispatcher=self.dispatcher,
            clock=self.clock,
            token=self.token,
            developer_api_key=self.developer_api_key,
            app_id=app_id,
            portal_id=portal_id,
            oauth=self.oauth,
            ids=random.Random(rng.getrandbits(32)),  # noqa: S311 -- correlation ids
            # Its own stream, so the ids drawn from ``rng`` stay what they were for a seed.
            order=random.Random(f"{seed}:order"),  # noqa: S311 -- batch result order
        )
        self.owners = Owners(self.clock, random.Random(rng.getrandbits(32)))  # noqa: S311 -- ids
        # Its own stream, so the ids drawn from ``rng`` stay what they were for a seed.
        self.forms = Forms(random.Random(f"{seed}:forms"))  # noqa: S311 -- form ids and list order
        self.set_webhook_url(webhook_url)
        routes = [
            *owner_admin_routes(self.context, self.owners),
            *form_admin_routes(self.context, self.forms),
            *form_routes(self.context, self.forms),
            *admin_routes(self.context, self.calls, self.faults),
        ]
        for version in SERVED.values():
            routes += [
                *owner_routes(self.context, self.owners, version),
                *crm_routes(self.context, version),
                *property_routes(self.context, version),
                *association_routes(self.context, version),
                *webhook_routes(self.context, version),
            ]
        routes += journal_routes(self.context, self.journal)
        routes += token_routes(self.oauth, self.context.uuid)
        routes += not_served_routes()
        self.app = Starlette(routes=routes, lifespan=self._lifespan)
        self.app.add_middleware(
            SandboxMiddleware,
            router=self.app.router,
            faults=self.faults,
            calls=self.calls,
            throttled=self._throttled,
            unavailable=self._unavailable,
        )

    def _changed(self, changes: list[Change]) -> None:
        """Every change goes to the webhooks (if subscribed and not dropped) and to the journal."""
        self.dispatcher.enqueue(changes)
        self.journal.record(changes)

    def _record_of(self, type_id: str, object_id: str) -> Record | None:
        ot = next((o for o in OBJECT_TYPES.values() if o.type_id == type_id), None)
        if ot is None:
            return None
        return self.store.get(ot, object_id) or self.store.get(ot, object_id, archived=True)

    def set_webhook_url(self, url: str | None) -> None:
        """Where webhooks go (the app's ``targetUrl``); None stops sending (events are dropped)."""
        self.subscriptions.set_target(url, iso(self.clock.epoch_ms()))
        self.dispatcher.wake()

    async def wait_webhooks(self, limit_s: float = 30.0) -> None:
        """Until every queued webhook is delivered, retried out, or given up."""
        await self.dispatcher.wait_idle(limit_s)

    def _throttled(self, _: Request) -> Response:
        return error_response(self.context, errors.rate_limited("TEN_SECONDLY_ROLLING"))

    def _unavailable(self, _: Request) -> Response:
        return error_response(self.context, errors.unavailable())

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self.dispatcher.run(), name="hubspot-webhooks")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
