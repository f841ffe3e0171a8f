"""Charge points through the operator API: listing, filters, detail, history, registration."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import httpx
from ocpp.v16 import call

from csms.app import CentralSystem
from csms.config import Settings
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger


async def _status(cp: object, connector_id: int, status: str) -> None:
    await cp.call(  # type: ignore[attr-defined]
        call.StatusNotification(connector_id=connector_id, error_code="NoError", status=status)
    )


async def test_list_filters_by_connection_status_and_vendor(
    api_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO charge_points (id, vendor, registration_status) VALUES "
        "('CP-OFF', 'Other', 'Accepted'), ('CP-PEND', 'Other', 'Pending')"
    )
    async with ocpp_charger(api_system.ocpp.port, "CP-ON") as cp:
        await cp.boot()
        await _status(cp, 1, "Charging")

        async def ids(**params: object) -> list[str]:
            response = await api.get("/api/charge-points", params=params)
            assert response.status_code == 200, response.text
            return [item["id"] for item in response.json()["items"]]

        assert await ids() == ["CP-OFF", "CP-ON", "CP-PEND"]
        assert await ids(connected="true") == ["CP-ON"]
        assert await ids(connected="false") == ["CP-OFF", "CP-PEND"]
        assert await ids(vendor="testvendor") == ["CP-ON"]
        assert await ids(status="Charging") == ["CP-ON"]
        assert await ids(status="Pending") == ["CP-PEND"]
        assert await ids(limit=2) == ["CP-OFF", "CP-ON"]
        page = (await api.get("/api/charge-points", params={"limit": 2})).json()
        rest = await ids(limit=2, cursor=page["next_cursor"])
        assert rest == ["CP-PEND"]


async def test_detail_has_boot_info_presence_and_connectors(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    async with ocpp_charger(api_system.ocpp.port, "CP-D") as cp:
        await cp.boot(firmware_version="1.2.3")
        await _status(cp, 0, "Available")
        await _status(cp, 1, "Preparing")
        response = await api.get("/api/charge-points/CP-D")
    body = response.json()
    assert response.status_code == 200
    assert (body["vendor"], body["model"], body["firmware_version"]) == (
        "TestVendor",
        "TestModel",
        "1.2.3",
    )
    assert body["connected"] is True and body["last_boot_at"]
    assert [(c["connector_id"], c["status"]) for c in body["connectors"]] == [
        (0, "Available"),
        (1, "Preparing"),
    ]
    missing = await api.get("/api/charge-points/CP-NOPE")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_status_history_pages_newest_first_without_gaps(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    statuses = ["Available", "Preparing", "Charging", "SuspendedEV", "Finishing"] * 3
    async with ocpp_charger(api_system.ocpp.port, "CP-H") as cp:
        await cp.boot()
        for status in statuses:
            await _status(cp, 1, status)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/charge-points/CP-H/status-history", params=params)).json()
        seen += [item["status"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(statuses))
    bad = await api.get("/api/charge-points/CP-H/status-history", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"


async def test_accept_and_reject_a_pending_charger(
    settings: Settings, db: asyncpg.Connection, api_token: str
) -> None:
    system = CentralSystem(replace(settings, unknown_chargers="pending"))
    await system.start()
    headers = {"Authorization": f"Bearer {api_token}"}
    base = f"http://127.0.0.1:{system.http_port}/api/charge-points"
    try:
        async with httpx.AsyncClient(headers=headers, timeout=TIMEOUT) as client:
            async with ocpp_charger(system.ocpp.port, "CP-P") as cp:
                assert (await cp.boot()).status == "Pending"
                accepted = await client.post(f"{base}/CP-P/accept")
                assert accepted.json()["registration_status"] == "Accepted"
                assert (await cp.boot()).status == "Accepted"
                assert (await client.post(f"{base}/CP-P/reject")).status_code == 200
                assert (await cp.boot()).status == "Rejected"
            assert (await client.post(f"{base}/CP-NONE/accept")).status_code == 404
    finally:
        await system.stop()


async def test_delete_is_refused_while_connected_and_works_after(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    async with ocpp_charger(api_system.ocpp.port, "CP-DEL") as cp:
        await cp.boot()
        refused = await api.delete("/api/charge-points/CP-DEL")
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
    async with asyncio.timeout(TIMEOUT):
        while api_system.ocpp.find("CP-DEL") is not None:
            await asyncio.sleep(0.02)
    assert (await api.delete("/api/charge-points/CP-DEL")).status_code == 204
    assert (await api.get("/api/charge-points/CP-DEL")).status_code == 404
    assert (await api.delete("/api/charge-points/CP-DEL")).status_code == 404


async def test_validation_errors_name_the_field(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/charge-points", params={"limit": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "limit"
