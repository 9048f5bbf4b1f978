"""Admin routes under ``/_admin`` (JSON in and out; no token, not counted, no injected faults).

Edits made here are "user" edits: they bump versions and land in change tracking like any write.
``POST /_admin/secret/revoke`` and ``/_admin/secret/restore`` take the app's client secret away and give it
back (the token endpoint refuses it meanwhile; tokens already issued run out on the sandbox clock).
``GET|POST /_admin/app/certificates`` lists / uploads (``{"certificate": "<PEM>"}``) a certificate of the
app registration, as a tenant admin does under "Certificates & secrets";
``DELETE /_admin/app/certificates/{thumbprint}`` removes one (assertions it signs are refused from then on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cdc.sandbox.dataverse import errors
from cdc.sandbox.dataverse.entities import write_row
from cdc.sandbox.dataverse.metadata import create_key
from cdc.sandbox.dataverse.odata import Prefer
from cdc.sandbox.dataverse.records import render_row
from cdc.sandbox.dataverse.tables import Table

if TYPE_CHECKING:  # app.py imports this module
    from cdc.sandbox.dataverse.app import DataverseSandbox

__all__ = ["admin_routes"]


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> Any:
    body = await request.body()
    return orjson.loads(body) if body.strip() else {}


def admin_routes(sandbox: DataverseSandbox) -> list[Route]:  # noqa: C901, PLR0915 -- one closure per route
    store = sandbox.store

    def table_of(request: Request) -> Table:
        name = request.path_params["table"]
        table = store.tables.get(name) or store.table_by_set(name)
        if table is None:
            raise errors.DataverseError(404, "", f"no table {name}")
        return table

    def shown(table: Table, row: Any) -> dict[str, Any]:
        return render_row(store, table, row, None, Prefer())

    async def state(_: Request) -> Response:
        with store.lock:
            counts = {name: len(store.rows(name)) for name in store.tables}
        return JSONResponse(
            {
                "tenant_id": sandbox.tenant_id,
                "client_id": sandbox.client_id,
                "version": store.version,
                "rows": counts,
                "change_tracking_expiry_days": sandbox.change_tracking_expiry_days,
                "protection": sandbox.protection.settings.model_dump(),
                "faults": sandbox.faults.knobs.model_dump(),
                "clock_offset_s": sandbox.clock.offset,
                "key_index_delay_s": store.key_index_delay_s,
            }
        )

    async def rows(request: Request) -> Response:
        table = table_of(request)
        if request.method == "GET":
            with store.lock:
                return JSONResponse({"value": [shown(table, r) for r in store.rows(table.logical_name)]})
        body = await _json(request)
        items = body.get("rows", [body]) if isinstance(body, dict) else body
        with store.transaction():
            created = [write_row(store, table, item, None, {}) for item in items]
        return JSONResponse({"value": [shown(table, r) for r in created]}, status_code=201)

    async def row(request: Request) -> Response:
        table = table_of(request)
        record_id = request.path_params["id"].lower()
        body = await _json(request) if request.method == "PATCH" else None
        with store.transaction():
            found = store.get(table.logical_name, record_id)
            if found is None:
                raise errors.not_found(table.logical_name, record_id)
            if request.method == "DELETE":
                store.delete(table, found)
                return Response(status_code=204)
            if request.method == "PATCH":
                found = write_row(store, table, body, found, {})
            return JSONResponse(shown(table, found))

    async def keys(request: Request) -> Response:
        table = table_of(request)
        body = await _json(request)
        key = create_key(store, table, str(body["name"]), list(body["columns"]))
        ready_in = max(0.0, round(key.ready_at - sandbox.clock.time(), 3))
        made = {"name": key.name, "columns": list(key.columns), "status": key.status, "ready_in_s": ready_in}
        return JSONResponse(made, status_code=201)

    async def key_jobs(request: Request) -> Response:
        """How long a key's index job takes on the sandbox clock (``{"index_delay_s": s}``)."""
        if request.method == "PUT":
            delay = float((await _json(request))["index_delay_s"])
            if delay < 0:
                return _error(400, "index_delay_s must not be negative")
            store.key_index_delay_s = delay
        return JSONResponse({"index_delay_s": store.key_index_delay_s})

    async def table_tracking(request: Request) -> Response:
        """What a table's definition says of change tracking. PUT sets only the managed property
        ``CanChangeTrackingBeEnabled`` (a managed solution can lock it); tracking itself is turned on as on
        a real org, through the metadata API (`cdc provision --dataverse`)."""
        table = table_of(request)
        if request.method == "PUT":
            body = await _json(request)
            with store.lock:
                table.can_change_tracking = bool(body["can_be_enabled"])
        return JSONResponse({"enabled": table.change_tracking, "can_be_enabled": table.can_change_tracking})

    async def calls(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.calls.reset()
        return JSONResponse(sandbox.calls.snapshot())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            sandbox.faults.update(await _json(request))
        return JSONResponse(sandbox.faults.knobs.model_dump())

    async def protection(request: Request) -> Response:
        if request.method == "PUT":
            sandbox.protection.configure(await _json(request))
        return JSONResponse(sandbox.protection.settings.model_dump())

    async def clock(request: Request) -> Response:
        body = await _json(request)
        sandbox.clock.advance(float(body.get("seconds", 0)))
        return JSONResponse({"offset_s": sandbox.clock.offset, "now": sandbox.clock.now().isoformat()})

    async def tracking(request: Request) -> Response:
        if request.method == "PUT":
            days = float((await _json(request))["expiry_days"])
            if not 0 <= days <= 365:  # noqa: PLR2004 -- the organization column's documented range
                return _error(400, "expiry_days must be within 0..365")
            sandbox.change_tracking_expiry_days = days
        return JSONResponse({"expiry_days": sandbox.change_tracking_expiry_days})

    async def token(request: Request) -> Response:
        org = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse({"access_token": sandbox.issuer.issue_for_tests(org), "token_type": "Bearer"})

    async def revoke_secret(_: Request) -> Response:
        sandbox.issuer.secret_revoked = True
        return JSONResponse({"revoked": True})

    async def restore_secret(_: Request) -> Response:
        sandbox.issuer.secret_revoked = False
        return JSONResponse({"revoked": False})

    async def certificates(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            registered = sandbox.issuer.certificates.add(str(body["certificate"]))
            return JSONResponse(registered.as_json(), status_code=201)
        return JSONResponse({"value": sandbox.issuer.certificates.listing()})

    async def certificate(request: Request) -> Response:
        if not sandbox.issuer.certificates.remove(request.path_params["thumbprint"]):
            return _error(404, f"no certificate with thumbprint {request.path_params['thumbprint']}")
        return Response(status_code=204)

    async def privileges(request: Request) -> Response:
        """The app user's privileges, as a tenant admin edits its security role (module docstring of
        `cdc.sandbox.dataverse.privileges`)."""
        tables = list(store.tables.values())
        if request.method == "PATCH":
            changes = await _json(request)
            if not isinstance(changes, dict):
                return _error(
                    400, 'the body maps privilege names to a depth or null: {"prvReadContact": null}'
                )
            sandbox.privileges.change(changes, tables)
        elif request.method == "DELETE":
            sandbox.privileges.reset()
        return JSONResponse({"privileges": sandbox.privileges.held(tables)})

    def guarded(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except errors.DataverseError as error:
                return JSONResponse({"error": error.message, "code": error.code}, status_code=error.status)
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                return _error(400, str(exc))
            return response

        return run

    prefix = "/_admin"
    table_routes = [
        Route(f"{prefix}/tables/{{table}}/rows", guarded(rows), methods=["GET", "POST"]),
        Route(f"{prefix}/tables/{{table}}/rows/{{id}}", guarded(row), methods=["GET", "PATCH", "DELETE"]),
        Route(f"{prefix}/tables/{{table}}/keys", guarded(keys), methods=["POST"]),
        Route(f"{prefix}/tables/{{table}}/change-tracking", guarded(table_tracking), methods=["GET", "PUT"]),
    ]
    return [
        Route(f"{prefix}/state", guarded(state), methods=["GET"]),
        *table_routes,
        Route(f"{prefix}/calls", guarded(calls), methods=["GET", "DELETE"]),
        Route(f"{prefix}/faults", guarded(faults), methods=["GET", "PUT"]),
        Route(f"{prefix}/protection", guarded(protection), methods=["GET", "PUT"]),
        Route(f"{prefix}/clock/advance", guarded(clock), methods=["POST"]),
        Route(f"{prefix}/change-tracking", guarded(tracking), methods=["GET", "PUT"]),
        Route(f"{prefix}/keys", guarded(key_jobs), methods=["GET", "PUT"]),
        Route(f"{prefix}/token", guarded(token), methods=["POST"]),
        Route(f"{prefix}/secret/revoke", guarded(revoke_secret), methods=["POST"]),
        Route(f"{prefix}/secret/restore", guarded(restore_secret), methods=["POST"]),
        Route(f"{prefix}/app/certificates", guarded(certificates), methods=["GET", "POST"]),
        Route(f"{prefix}/app/certificates/{{thumbprint}}", guarded(certificate), methods=["DELETE"]),
        Route(f"{prefix}/privileges", guarded(privileges), methods=["GET", "PATCH", "DELETE"]),
    ]
