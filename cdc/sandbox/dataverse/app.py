"""The Dataverse (Dynamics 365) emulator: Web API v9.2, metadata API (tables, columns, keys, multi-table
lookups), change tracking, ``$batch``, bulk actions, service protection, the app user's security role, and
the Entra ID token service msal talks to (client secret or certificate). Served over HTTPS (msal
refuses plain-http authorities); every URL derives from the request, so the port need not be known.

- org URL = Web API audience: ``<base_url>``; Web API: ``<base_url>/api/data/v9.2/``
- msal authority: ``<base_url>/<tenant_id>`` (``instance_discovery=False``, ``verify=<ca bundle>``);
  scope ``<base_url>/.default``

Admin API (JSON; no token needed, not counted, no injected faults):

==========================================  ===============================================================
``GET /_admin/state``                       summary: ids, org version, row counts, settings, clock offset
``GET|POST /_admin/tables/{t}/rows``        list rows / seed rows (``{"rows": [...]}`` or one object) as a
                                            user; ``{t}`` is a logical name or entity set name
``GET|PATCH|DELETE /_admin/tables/{t}/rows/{id}``  read / edit / delete as a user (change tracking sees it)
``POST /_admin/tables/{t}/keys``            define an alternate key ``{"name": ..., "columns": [...]}`` as a
                                            user would: its index is built like any (Pending, then Active)
``GET|PUT /_admin/keys``                    ``{"index_delay_s": s}``: how long a key's index job takes on
                                            the sandbox clock (``clock/advance`` finishes it)
``GET|DELETE /_admin/calls``                calls per endpoint (``CallCounter.snapshot()``) / reset them
``GET|PUT /_admin/faults``                  fault knobs (partial update)
``GET|PUT /_admin/protection``              service protection: ``enabled``, ``requests_per_window``,
                                            ``window_seconds``, ``concurrent_requests``, ...
``POST /_admin/clock/advance``              ``{"seconds": n}``: expires delta and OAuth tokens, rate windows
``GET|PUT /_admin/change-tracking``         ``{"expiry_days": d}`` (ExpireChangeTrackingInDays, 0..365)
``POST /_admin/token``                      a valid bearer token without the OAuth round trip
``GET|POST /_admin/app/certificates``       the app registration's certificates / upload one
                                            (``{"certificate": "<PEM>"}``); ``DELETE .../{thumbprint}``
``GET|PATCH|DELETE /_admin/privileges``     the app user's privileges (name -> depth) / change some
                                            (``{"prvCreateContact": null, "prvReadAccount": "Basic"}``;
                                            null takes one away) / give every one back at Global
==========================================  ===============================================================
"""

from __future__ import annotations

import random
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from cdc.sandbox.calls import CallCounter
from cdc.sandbox.clock import Clock
from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.admin import admin_routes
from cdc.sandbox.dataverse.auth import TokenIssuer
from cdc.sandbox.dataverse.guard import Guard, error_response
from cdc.sandbox.dataverse.privileges import Privileges
from cdc.sandbox.dataverse.protection import ServiceProtection
from cdc.sandbox.dataverse.routes import api_routes, auth_routes
from cdc.sandbox.dataverse.store import KEY_INDEX_DELAY_S, Store
from cdc.sandbox.dataverse.webapi import WebApi
from cdc.sandbox.faults import Faults
from cdc.sandbox.middleware import SandboxMiddleware

__all__ = ["DataverseSandbox"]


def _unavailable(_: Request) -> Response:
    return error_response(errors.unavailable())


class DataverseSandbox:
    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        change_tracking_expiry_days: float = 7.0,
        key_index_delay_s: float = KEY_INDEX_DELAY_S,
    ) -> None:
        # 7 days: "Changes are returned if the last token is within a default value of 7 days"
        # (Learn, change tracking; fact sheet 1.6). It was 90 here, kinder than any org documented.
        ids = random.Random(f"dataverse-ids:{seed}")  # noqa: S311 -- reproducible sandbox credentials, not secrets
        self.clock = clock or Clock()
        self.tenant_id = tenant_id or str(uuid.UUID(int=ids.getrandbits(128), version=4))
        self.client_id = client_id or str(uuid.UUID(int=ids.getrandbits(128), version=4))
        self.client_secret = client_secret or f"sbx~{ids.getrandbits(160):040x}"
        self.change_tracking_expiry_days = change_tracking_expiry_days
        self.calls = CallCounter()
        self.faults = Faults(seed)
        self.store = Store(seed=seed, clock=self.clock, key_index_delay_s=key_index_delay_s)
        self.protection = ServiceProtection(self.clock)
        self.issuer = TokenIssuer(
            seed=seed,
            clock=self.clock,
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
        )
        organization_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        self.privileges = Privileges()
        """The app user's security role: every privilege at Global until ``/_admin/privileges`` changes it."""
        self.api = WebApi(
            self.store,
            organization_id=organization_id,
            expire_days=lambda: self.change_tracking_expiry_days,
            privileges=self.privileges,
        )
        self.app = Starlette(routes=[*admin_routes(self), *api_routes(self.api), *auth_routes(self.issuer)])
        self.app.add_middleware(
            SandboxMiddleware,
            faulted_prefix="/api/",
            router=self.app.router,
            faults=self.faults,
            calls=self.calls,
            throttled=self._throttled,
            unavailable=_unavailable,
        )
        self.app.add_middleware(
            Guard, router=self.app.router, calls=self.calls, issuer=self.issuer, protection=self.protection
        )

    def _throttled(self, _: Request) -> Response:
        """An injected 429 (fault knob ``throttle_rate``), worded like the request limit in force."""
        settings = self.protection.settings
        return error_response(errors.request_limit(settings.requests_per_window, settings.window_seconds, 1))
