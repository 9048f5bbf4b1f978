"""HTTP routes of the Web API and the token service. The route templates name the endpoints that
:class:`~cdc.sandbox.calls.CallCounter` counts; every Web API route runs the same dispatcher.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.dataverse.auth import TokenIssuer, org_url
from cdc.sandbox.dataverse.batchrun import run_batch
from cdc.sandbox.dataverse.context import API_PREFIX, ApiRequest
from cdc.sandbox.dataverse.errors import DataverseError
from cdc.sandbox.dataverse.webapi import WebApi, error_outcome

__all__ = ["api_routes", "auth_routes"]

_API_TEMPLATES: list[tuple[str, list[str]]] = [
    ("/$batch", ["POST"]),
    ("/WhoAmI", ["GET"]),
    ("/organizations", ["GET"]),
    ("/ReactivateEntityKey", ["POST"]),
    ("/EntityDefinitions", ["GET", "POST"]),
    ("/EntityDefinitions({entity})", ["GET", "PUT", "PATCH"]),
    ("/EntityDefinitions({entity})/Attributes", ["GET", "POST"]),
    ("/EntityDefinitions({entity})/Attributes({attribute})", ["GET"]),
    ("/EntityDefinitions({entity})/Attributes({attribute})/{cast}", ["GET"]),
    ("/EntityDefinitions({entity})/Keys", ["GET", "POST"]),
    ("/{entityset}/$count", ["GET"]),
    ("/{entityset}/Microsoft.Dynamics.CRM.{action}", ["POST"]),
    ("/{entityset}({key})/{column}", ["GET", "PUT", "DELETE"]),
    ("/{entityset}({key})", ["GET", "PATCH", "DELETE"]),
    ("/{entityset}", ["GET", "POST"]),
]


def api_routes(api: WebApi) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        call = ApiRequest(
            method=request.method,
            path=request.scope["path"][len(API_PREFIX) + 1 :],
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            org=org_url(request),
            prefer_headers=tuple(request.headers.getlist("prefer")),
        )
        with api.store.lock:
            try:
                outcome = run_batch(api, call) if call.path == "$batch" else api.execute(call)
            except DataverseError as error:
                outcome = error_outcome(error)
        return Response(outcome.body or None, outcome.status, outcome.headers)

    return [Route(API_PREFIX + path, endpoint, methods=methods) for path, methods in _API_TEMPLATES]


def auth_routes(issuer: TokenIssuer) -> list[Route]:
    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", issuer.discovery, methods=["GET"]),
        Route("/{tenant}/.well-known/openid-configuration", issuer.discovery, methods=["GET"]),
        Route("/{tenant}/discovery/v2.0/keys", issuer.keys, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", issuer.token, methods=["POST"]),
    ]
