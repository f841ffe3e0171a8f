"""/readyz: 200 while the database answers and the OCPP listener accepts, else 503 naming why."""

from __future__ import annotations

import asyncpg
import httpx

from csms.app import CentralSystem


async def test_readyz_is_ready_with_database_and_listener_up(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": True, "ocpp_listener": True},
        "failed": [],
    }


async def test_readyz_is_unavailable_once_the_ocpp_listener_is_closed(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    await system.ocpp.close()
    response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["ocpp_listener"]
    assert body["checks"]["database"] is True


async def test_metrics_and_readyz_need_no_token(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    for path in ("/metrics", "/readyz", "/"):
        assert (await http.get(path)).status_code == 200, path
