"""The bearer token the Web API client sends: msal client credentials, cached and renewed by msal.

msal is synchronous (``requests``), so every call runs in a worker thread (``asyncio.to_thread``). Its
in-memory cache hands out the token until fewer than 5 minutes remain, then fetches a new one: that is
the "renew before expiry". msal has no force-refresh for client credentials, so :meth:`invalidate` drops
the cached access tokens instead (after a 401).

msal gets its own ``requests.Session`` with ``trust_env=False``: on hosts where ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE`` are set, requests would otherwise let them override ``verify=`` (the sandbox's CA). Its
proxy is therefore set here, from the one rule the Web API client follows too (`cdc.dataverse.proxy`): msal
sends every request (discovery, token) through the ``http_client`` it is given (fact sheet §6.4).

The app authenticates with its client secret or with a certificate (`cdc.dataverse.credentials`): then msal
signs a client assertion per token request with the certificate's private key.
"""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

# msal ships no type information and pyproject.toml (not ours to edit) has no override for it.
import msal  # type: ignore[import-untyped]
import msal.exceptions  # type: ignore[import-untyped]
import requests

from cdc.dataverse.credentials import CredentialError, msal_credential
from cdc.dataverse.errors import FatalError, RetriableError
from cdc.dataverse.proxy import ProxyError, ProxyRoute, proxy_for
from cdc.settings import DataverseSettings

__all__ = ["DataverseAuthError", "TokenProvider"]

_TOKEN_ENDPOINT = "token"  # noqa: S105 -- a metrics/endpoint label, not a secret
_PROXY_AUTH_REQUIRED = " 407 "


class DataverseAuthError(FatalError):
    """The identity provider refused the app (wrong secret, client or tenant) or is misconfigured."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "auth", message, endpoint=_TOKEN_ENDPOINT)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise DataverseAuthError(f"dataverse.{name} (CDC_DATAVERSE__{name.upper()}) is required")
    return value


class TokenProvider:
    """Client-credentials tokens for one Dataverse org; :meth:`close` releases msal's HTTP session."""

    def __init__(self, settings: DataverseSettings) -> None:
        self._base_url = _required(settings.base_url, "base_url").rstrip("/")
        self._tenant_id = settings.tenant_id
        self._client_id = _required(settings.client_id, "client_id")
        try:
            self._credential: str | dict[str, str] = msal_credential(settings, now=datetime.now(UTC))
        except CredentialError as error:
            raise DataverseAuthError(str(error)) from None
        if settings.authority:
            self._authority = settings.authority.rstrip("/")
        else:
            tenant = _required(settings.tenant_id, "tenant_id")
            self._authority = f"https://login.microsoftonline.com/{tenant}"
        self._scopes = [settings.scope or f"{self._base_url}/.default"]
        try:
            self._proxy: ProxyRoute | None = proxy_for(self._authority, settings, os.environ)
        except ProxyError as error:
            raise DataverseAuthError(str(error)) from None
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=, see module docstring
        self._session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
        if self._proxy is not None:
            self._session.proxies = {"https": self._proxy.with_credentials()}
        self._timeout = settings.request_timeout_s
        self._app: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                # The constructor fetches the OIDC discovery document: network I/O, so it runs here, in
                # the worker thread. Instance discovery would call login.microsoftonline.com for any host
                # msal does not know (the sandbox): it is skipped, the authority is configured explicitly.
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._credential,
                    authority=self._authority,
                    http_client=self._session,
                    instance_discovery=False,
                    timeout=self._timeout,
                )
            return self._app

    def _acquire(self) -> str:
        try:
            result = self._application().acquire_token_for_client(scopes=self._scopes)
        except ValueError as exc:  # bad authority or discovery document
            why = self._scrub(exc)
            raise DataverseAuthError(f"msal rejected authority {self._authority}: {why}") from None
        except TypeError as exc:
            # msal keeps the error of a failed request for its telemetry header and cannot render one that
            # is not an OAuth error string: start a fresh application, and wait this one out as an outage.
            with self._lock:
                self._app = None
            raise self._unavailable(exc) from None
        except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            # The identity provider is down or unreachable (a 5xx on discovery, a network error): a system
            # error to wait out, not a refused credential; unless the proxy refused our proxy credentials
            # (urllib3: "Tunnel connection failed: 407 Proxy Authentication Required"), which no wait mends.
            refused = isinstance(exc, requests.exceptions.ProxyError) and _PROXY_AUTH_REQUIRED in str(exc)
            if refused and self._proxy is not None:
                raise DataverseAuthError(self._proxy.refused()) from None
            raise self._unavailable(exc) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = result.get("error", "unknown_error") if isinstance(result, dict) else "unknown_error"
            description = result.get("error_description", "") if isinstance(result, dict) else ""
            raise DataverseAuthError(
                f"token request for client {self._client_id} refused by {self._authority}: "
                f"{error}: {description.splitlines()[0] if description else ''}".rstrip(": ")
            )
        return str(token)

    def _unavailable(self, error: BaseException) -> RetriableError:
        via = f" (through proxy {self._proxy})" if self._proxy is not None else ""
        return RetriableError(
            503,
            "identity_provider_unavailable",
            f"identity provider {self._authority}{via}: {self._scrub(error)}",
            endpoint=_TOKEN_ENDPOINT,
        )

    def _scrub(self, error: BaseException) -> str:
        """An error's text without the proxy password (a client's error may quote the URL it was given)."""
        return self._proxy.scrub(str(error)) if self._proxy is not None else str(error)

    async def token(self) -> str:
        """A valid access token: from msal's cache, or fetched when missing or within 5 minutes of expiry."""
        return await asyncio.to_thread(self._acquire)

    def _drop_cached(self) -> None:
        with self._lock:
            app = self._app
        if app is None:
            return
        cache = app.token_cache
        for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)

    async def invalidate(self) -> None:
        """Forget cached access tokens (the API refused one): the next :meth:`token` asks the provider."""
        await asyncio.to_thread(self._drop_cached)

    @property
    def org_host(self) -> str:
        return urlsplit(self._base_url).netloc.lower()

    def close(self) -> None:
        """Close msal's HTTP session (an open socket would be a ResourceWarning). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._session.close()
