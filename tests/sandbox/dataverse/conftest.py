"""Fixtures for the Dataverse emulator's contract tests: an in-process client with a valid token.

Expected shapes in these tests are written from the fact sheet (``/work/shared/reference/dataverse.md``),
never built from the emulator's own models.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cdc.sandbox.dataverse import DataverseSandbox
from tests.sandbox.dataverse.support import ORG


@pytest.fixture
def sandbox() -> DataverseSandbox:
    return DataverseSandbox(seed=7)


@pytest.fixture
async def client(sandbox: DataverseSandbox) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORG) as http:
        token = (await http.post("/_admin/token")).json()["access_token"]
        http.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "OData-Version": "4.0",
                "OData-MaxVersion": "4.0",
            }
        )
        yield http
