"""The sandbox core shared by both emulators: clock, fault dice, call accounting, serving over TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cdc.sandbox.calls import CallCounter
from cdc.sandbox.clock import Clock
from cdc.sandbox.faults import Faults
from cdc.sandbox.middleware import SandboxMiddleware
from cdc.sandbox.tls import make_local_tls
from cdc.serving import serve


def test_clock_moves_forward_only() -> None:
    clock = Clock()
    before = clock.now()
    clock.advance(3600)
    assert (clock.now() - before).total_seconds() >= 3600
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_faults_are_reproducible_with_a_seed_and_validate_knobs() -> None:
    first, second = Faults(seed=7), Faults(seed=7)
    assert [first.roll(0.5) for _ in range(50)] == [second.roll(0.5) for _ in range(50)]
    assert not any(Faults(seed=1).roll(0.0) for _ in range(100))
    with pytest.raises(ValidationError):
        first.update({"error_rate": 1.5})
    with pytest.raises(ValidationError):
        first.update({"no_such_knob": 1})
    assert first.update({"latency_ms": 5}).latency_ms == 5


def build_app(faults: Faults, calls: CallCounter) -> Starlette:
    async def read(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["record_id"]})

    async def admin(_: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/records/{record_id}", read), Route("/_admin/state", admin)])
    app.add_middleware(
        SandboxMiddleware,
        router=app.router,
        faults=faults,
        calls=calls,
        throttled=lambda _: JSONResponse({"error": "slow"}, status_code=429, headers={"Retry-After": "1"}),
        unavailable=lambda _: JSONResponse({"error": "down"}, status_code=503),
    )
    return app


async def test_middleware_counts_api_calls_by_route_and_injects_faults() -> None:
    faults, calls = Faults(seed=3), CallCounter()
    transport = httpx.ASGITransport(app=build_app(faults, calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        for n in range(3):
            assert (await client.get(f"/records/{n}")).json() == {"id": str(n)}
        assert (await client.get("/_admin/state")).status_code == 200  # admin: never counted or failed
        assert (await client.get("/nowhere")).status_code == 404
        faults.update({"throttle_rate": 1.0})
        throttled = await client.get("/records/9")
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"
        assert (await client.get("/_admin/state")).status_code == 200
        faults.update({"throttle_rate": 0.0, "error_rate": 1.0})
        assert (await client.get("/records/9")).status_code == 503

    snapshot = calls.snapshot()
    assert snapshot["by_endpoint"] == {"GET /records/{record_id}": 5, "GET (unmatched)": 1}
    assert snapshot["by_status"] == {"200": 3, "404": 1, "429": 1, "503": 1}
    calls.reset()
    assert calls.count() == 0


async def test_serve_over_tls_with_the_local_ca(tmp_path: Path) -> None:
    tls = make_local_tls(tmp_path)
    app = build_app(Faults(), CallCounter())
    async with serve(app, tls=tls, name="test") as served:
        assert served.base_url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=tls.client_context()) as client:
            assert (await client.get(f"{served.base_url}/records/1")).json() == {"id": "1"}
        async with httpx.AsyncClient(verify=ssl.create_default_context()) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"{served.base_url}/records/1")
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{served.port}/records/1")
