"""The id-tag lifecycle as a charger sees it, and the Local Authorization List push."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx

from csms.app import CentralSystem
from tests.ocpp_client import raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def test_id_tag_lifecycle_changes_what_a_charger_is_told(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    async with raw_charger(api_system.ocpp.port, "CP-AUTH") as charger:
        await charger.call_ok("BootNotification", BOOT)

        async def authorize() -> str:
            answer = await charger.call_ok("Authorize", {"idTag": "04:a1:b2:c3"})
            return answer["idTagInfo"]["status"]

        assert await authorize() == "Invalid"
        created = await api.post("/api/id-tags", json={"id_tag": "04A1B2C3"})
        assert created.status_code == 201 and created.json()["effective_status"] == "Accepted"
        assert await authorize() == "Accepted"
        duplicate = await api.post("/api/id-tags", json={"id_tag": "04-a1-b2-c3"})
        assert duplicate.status_code == 409

        assert (await api.post("/api/id-tags/04A1B2C3/block")).json()["status"] == "Blocked"
        assert await authorize() == "Blocked"

        await api.delete("/api/id-tags/04A1B2C3")
        await api.post("/api/id-tags", json={"id_tag": "04A1B2C3"})
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        scheduled = await api.post("/api/id-tags/04A1B2C3/expire", json={"expiry_date": later})
        assert scheduled.json()["effective_status"] == "Accepted"
        assert await authorize() == "Accepted"
        expired = await api.post("/api/id-tags/04A1B2C3/expire")
        assert expired.json()["effective_status"] == "Expired"
        assert await authorize() == "Expired"

        assert (await api.delete("/api/id-tags/04:A1:B2:C3")).status_code == 204
        assert await authorize() == "Invalid"
        assert (await api.delete("/api/id-tags/04A1B2C3")).status_code == 404
        assert (await api.post("/api/id-tags/NOPE/block")).status_code == 404


async def test_id_tags_list_and_validation(api: httpx.AsyncClient) -> None:
    for tag in ("TAG-B", "TAG-A", "TAG-C"):
        await api.post("/api/id-tags", json={"id_tag": tag})
    await api.post("/api/id-tags/TAG-C/block")
    listed = (await api.get("/api/id-tags")).json()["items"]
    assert [t["id_tag"] for t in listed] == ["TAG-A", "TAG-B", "TAG-C"]
    blocked = (await api.get("/api/id-tags", params={"status": "Blocked"})).json()["items"]
    assert [t["id_tag"] for t in blocked] == ["TAG-C"]
    bad = await api.post("/api/id-tags", json={"id_tag": "X", "status": "Maybe"})
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    naive = await api.post("/api/id-tags", json={"id_tag": "Y", "expiry_date": "2030-01-01T00:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "expiry_date"


async def test_local_list_is_sent_in_full_with_a_version_above_the_chargers(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    await api.post("/api/id-tags", json={"id_tag": "CARD-1"})
    await api.post("/api/id-tags", json={"id_tag": "CARD-2", "status": "Blocked"})
    await api.post("/api/id-tags", json={"id_tag": "A-TAG-LONGER-THAN-TWENTY-CHARS"})
    versions = []
    async with raw_charger(api_system.ocpp.port, "CP-LL") as charger:
        await charger.call_ok("BootNotification", BOOT)
        # The charger holds version 41 (from another system); later it reports 0 (reset).
        for charger_version, answer in ((41, "Accepted"), (0, "VersionMismatch")):
            push = asyncio.create_task(api.post("/api/charge-points/CP-LL/local-list"))
            asked = await charger.receive()
            assert asked[2:] == ["GetLocalListVersion", {}]
            await charger.ws.send(json.dumps([3, asked[1], {"listVersion": charger_version}]))
            frame = await charger.receive()
            assert frame[:3] == [2, frame[1], "SendLocalList"]
            payload = frame[3]
            versions.append(payload["listVersion"])
            assert payload["updateType"] == "Full"
            assert payload["localAuthorizationList"] == [
                {"idTag": "CARD-1", "idTagInfo": {"status": "Accepted"}},
                {"idTag": "CARD-2", "idTagInfo": {"status": "Blocked"}},
            ]
            await charger.ws.send(json.dumps([3, frame[1], {"status": answer}]))
            response = await push
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["status"], body["entries"]) == (answer, 2)
            assert body["skipped_id_tags"] == ["A-TAG-LONGER-THAN-TWENTY-CHARS"]
    # Continues from the charger's 41, and never goes below what we pushed last.
    assert versions == [42, 43]
    detail = (await api.get("/api/charge-points/CP-LL")).json()
    assert detail["local_list"]["list_version"] == 43
    assert detail["local_list"]["status"] == "VersionMismatch"


async def test_local_list_to_an_offline_charger_is_a_conflict(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/charge-points/CP-AWAY/local-list")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
