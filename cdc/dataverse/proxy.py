"""Which proxy a request to a URL goes through: one decision for the Web API (aiohttp) and for msal's token
requests (requests), so both take the same road out of a network that allows only a proxy.

In order:

1. ``dataverse.proxy`` set: every request goes through it.
2. ``dataverse.trust_env``: the standard variables, as curl, requests and aiohttp read them: ``NO_PROXY``
   (comma-separated hosts and domain suffixes, ``*`` for all; Python's ``urllib.request``
   ``proxy_bypass_environment``) sends the host direct; else ``HTTPS_PROXY`` for an https URL (lower-case
   names win over upper-case ones, as in ``urllib.request.getproxies_environment``). ``ALL_PROXY`` is not
   read: aiohttp ignores it (aiohttp docs, "Proxy support": ``HTTP_PROXY``, ``HTTPS_PROXY``, ``WS_PROXY``,
   ``WSS_PROXY``), and one rule for both clients beats two.
3. Otherwise: direct.

Only HTTP proxies are taken (``http://host:port``): HTTPS to Dataverse and the identity provider is
tunnelled with ``CONNECT`` and the TLS inside the tunnel is end to end; aiohttp skips ``https://`` proxies
from the environment with a warning (``helpers.proxies_from_env``), so one given that way is an error
here rather than a silent direct connection. Credentials in a variable's URL are taken apart into a
`SecretStr`, like the settings', so nothing logs them: :meth:`ProxyRoute.with_credentials` is the only
place they are put back, for the two clients.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from cdc.settings import DataverseSettings

__all__ = ["ProxyError", "ProxyRoute", "proxy_for"]


class ProxyError(ValueError):
    """The proxy variables of the environment cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ProxyRoute:
    """A proxy: its URL without credentials (safe to show) and the credentials apart."""

    url: str
    username: str | None = None
    password: SecretStr | None = None

    def __str__(self) -> str:
        return self.url

    def with_credentials(self) -> str:
        """The URL the HTTP clients are given: ``http://user:password@host:port`` when authenticated."""
        if self.username is None or self.password is None:
            return self.url
        parts = urlsplit(self.url)
        user = quote(self.username, safe="")
        password = quote(self.password.get_secret_value(), safe="")
        return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl()

    def refused(self) -> str:
        """What to say when the proxy answers 407 to our credentials (no retry mends that)."""
        return (
            f"proxy {self.url} refused the proxy credentials (407 Proxy Authentication Required): check "
            "dataverse.proxy.username and dataverse.proxy.password (or the credentials in HTTPS_PROXY)"
        )

    def scrub(self, text: str) -> str:
        """``text`` without the password (an error message of a client that was given it)."""
        if self.password is None:
            return text
        secret = self.password.get_secret_value()
        for shown in {secret, quote(secret, safe="")}:
            if shown:
                text = text.replace(shown, "***")
        return text


def _from_environment(name: str, value: str) -> ProxyRoute:
    text = value.strip() if "://" in value else f"http://{value.strip()}"  # curl's rule: no scheme is http
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise ProxyError(
            f"{name} must name an HTTP proxy (http://host:port); HTTPS goes through it with CONNECT"
        )
    try:
        port = parts.port
    except ValueError:
        raise ProxyError(f"{name} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    url = f"http://{host}:{port}" if port else f"http://{host}"
    if parts.username is None:
        return ProxyRoute(url)
    return ProxyRoute(url, unquote(parts.username), SecretStr(unquote(parts.password or "")))


def _variable(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    for candidate in (name.lower(), name.upper()):
        value = environ.get(candidate)
        if value:
            return candidate, value
    return None


def proxy_for(target: str, settings: DataverseSettings, environ: Mapping[str, str]) -> ProxyRoute | None:
    """The proxy a request to ``target`` goes through, or None for a direct connection (module docstring).
    ``environ`` is read only with ``trust_env`` (``os.environ`` in the daemon)."""
    proxy = settings.proxy
    if proxy is not None:
        return ProxyRoute(proxy.url, proxy.username, proxy.password)
    if not settings.trust_env:
        return None
    parts = urlsplit(target)
    no_proxy = _variable(environ, "no_proxy")
    if no_proxy is not None and parts.hostname:
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if urllib.request.proxy_bypass_environment(host, {"no": no_proxy[1]}):  # type: ignore[attr-defined]
            return None
    found = _variable(environ, f"{parts.scheme}_proxy")
    if found is None:
        return None
    return _from_environment(found[0], found[1])
