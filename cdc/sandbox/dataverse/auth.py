"""The Entra ID side: OpenID discovery, the client-credentials token endpoint, and bearer checks.

msal (fact sheet §6.4) reads ``<authority>/v2.0/.well-known/openid-configuration`` and posts the form to
the discovered ``token_endpoint``; the authority is ``<org>/<tenant_id>``, the scope ``<org>/.default``.
The app authenticates with its client secret (in the form, as msal sends it, or Basic) or with a client
assertion signed by a certificate registered for it (`cdc.sandbox.dataverse.assertions`).
Tokens are opaque strings from the seeded generator (nothing parses them but this module); they carry
the org URL as audience and expire after ``TOKEN_LIFETIME_S`` on the sandbox clock.
"""

from __future__ import annotations

import base64
import hmac
import random
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cdc.sandbox.clock import Clock
from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.assertions import JWT_BEARER, AssertionRefused, KeyCredentials

__all__ = ["TOKEN_LIFETIME_S", "Grant", "TokenIssuer", "org_url"]

TOKEN_LIFETIME_S = 3599


def org_url(request: Request) -> str:
    """``https://host:port`` as the client addressed the server: the org URL and token audience."""
    return f"{request.url.scheme}://{request.url.netloc}"


@dataclass(frozen=True)
class Grant:
    client_id: str
    audience: str
    expires_at: float


class TokenIssuer:
    def __init__(
        self, *, seed: int, clock: Clock, tenant_id: str, client_id: str, client_secret: str
    ) -> None:
        self.clock = clock
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self._random = random.Random(f"dataverse-tokens:{seed}")  # noqa: S311 -- reproducible sandbox tokens
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self.certificates = KeyCredentials()
        """The certificates uploaded to the app registration (admin API ``/_admin/app/certificates``)."""
        self.secret_revoked = False
        """The client secret was deleted (or expired) in the app registration: the token endpoint refuses it
        until it is restored (``invalid_client`` 7000215, as for a wrong secret). Tokens issued before stay
        valid until they expire: an access token is a bearer credential checked on its own, not against the
        secret (UNVERIFIED for continuous-access-evaluation resources); the expiry then answers 401
        ``ExpiredOAuthToken`` (fact sheet §5), after which the client asks for a new token and is refused."""

    def www_authenticate(self, org: str) -> str:
        return f"Bearer authorization_uri={org}/{self.tenant_id}/oauth2/authorize, resource_id={org}/"

    def discovery(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant != self.tenant_id:
            return _entra_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{org_url(request)}/{tenant}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver", "oid"],
                "tenant_region_scope": None,
                "cloud_instance_name": "sandbox",
            }
        )

    def keys(self, _: Request) -> Response:
        return JSONResponse({"keys": []})

    def _client_refusal(self, form: dict[str, str], secret: str, token_endpoint: str) -> Response | None:
        """Why the app's credential is refused (None: accepted): a client assertion when the form has one,
        else the secret; neither is AADSTS7000218 (the service's text as quoted in MicrosoftDocs/azure-docs
        issue 98161)."""
        assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if assertion_type is not None or assertion is not None:
            if assertion_type != JWT_BEARER or not assertion:
                return _entra_error(
                    400,
                    "invalid_request",
                    90014,
                    f"The request body must contain 'client_assertion_type' = '{JWT_BEARER}' and "
                    "'client_assertion'.",
                )
            try:
                self.certificates.verify(
                    assertion, client_id=self.client_id, token_endpoint=token_endpoint, now=self.clock.time()
                )
            except AssertionRefused as refused:
                return _entra_error(401, "invalid_client", refused.code, refused.description)
            return None
        if not secret:
            return _entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if self.secret_revoked or not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            return _entra_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        return None

    async def token(self, request: Request) -> Response:
        """client_credentials only; secret in the form (msal) or in Basic auth (Entra accepts both), or a
        client assertion (certificate credentials)."""
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        tenant = request.path_params["tenant"]
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:].strip() + "==").decode("utf-8", "replace")
            client_id, _, secret = decoded.partition(":")
        org = org_url(request)
        scopes = form.get("scope", "").split()
        if tenant != self.tenant_id:
            return _entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _entra_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if client_id != self.client_id:
            return _entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        refused = self._client_refusal(form, secret, f"{org}/{tenant}/oauth2/v2.0/token")
        if refused is not None:
            return refused
        if [s.rstrip("/") for s in scopes] != [f"{org}/.default"]:
            return _entra_error(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. "
                f"The scope {' '.join(scopes)} is not valid.",
            )
        with self._lock:
            token = "sbx." + "".join(f"{self._random.getrandbits(32):08x}" for _ in range(8))
            self._grants[token] = Grant(client_id, org, self.clock.time() + TOKEN_LIFETIME_S)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "ext_expires_in": TOKEN_LIFETIME_S,
                "access_token": token,
            }
        )

    def check(self, authorization: str | None, org: str) -> Grant:
        """The grant behind an ``Authorization: Bearer`` header, or the 401 Dataverse answers."""
        challenge = self.www_authenticate(org)
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthorized(challenge)
        with self._lock:
            grant = self._grants.get(token.strip())
        if grant is None or grant.audience != org:
            raise errors.unauthorized(challenge)
        if self.clock.time() >= grant.expires_at:
            raise errors.expired_oauth_token(challenge)
        return grant

    def issue_for_tests(self, org: str) -> str:
        """A valid token without the OAuth round trip (admin API and in-process tests)."""
        with self._lock:
            token = "sbx." + "".join(f"{self._random.getrandbits(32):08x}" for _ in range(8))
            self._grants[token] = Grant(self.client_id, org, self.clock.time() + TOKEN_LIFETIME_S)
        return token

    def reset(self) -> None:
        with self._lock:
            self._grants.clear()


def _entra_error(status: int, error: str, code: int, description: str) -> Response:
    trace = str(uuid.UUID(int=0))
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": "",
            "trace_id": trace,
            "correlation_id": trace,
        },
        status_code=status,
    )
