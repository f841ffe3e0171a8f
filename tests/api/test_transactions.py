"""Transactions through the operator API: cursor pages, filters, one transaction in full."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from csms.app import CentralSystem
from tests.ocpp_client import RawCharger, raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
VIN = "WVWZZZ1JZ3W386752"


async def _start(charger: RawCharger, connector: int, tag: str, at: datetime) -> int:
    return await charger.start_transaction(1000, at.isoformat(), connector_id=connector, id_tag=tag)


async def _stop(charger: RawCharger, transaction_id: int, at: datetime, meter: int) -> None:
    await charger.call_ok(
        "StopTransaction",
        {"transactionId": transaction_id, "meterStop": meter, "timestamp": at.isoformat()},
    )


async def _all_pages(api: httpx.AsyncClient, limit: int, **params: Any) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/api/transactions", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        ids += [item["id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            return ids


async def test_pages_cover_every_transaction_once_newest_first(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    started: list[tuple[datetime, int]] = []
    async with raw_charger(api_system.ocpp.port, "CP-T") as charger:
        await charger.call_ok("BootNotification", BOOT)
        for i in range(23):
            # Pairs of starts share a timestamp: the id must break the tie in the cursor.
            at = T0 + timedelta(minutes=i // 2)
            started.append((at, await _start(charger, 1 + i % 2, f"TAG{i}", at)))
    expected = [tx for _, tx in sorted(started, reverse=True)]
    for limit in (1, 5, 7, 23, 500):
        assert await _all_pages(api, limit) == expected
    too_many = await api.get("/api/transactions", params={"limit": 501})
    assert too_many.status_code == 422 and too_many.json()["field"] == "limit"
    bad = await api.get("/api/transactions", params={"cursor": "eyJub3QiOiAiaXQifQ"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"


async def test_filters_by_charger_tag_activity_time_vin_and_account(
    api_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with raw_charger(api_system.ocpp.port, "CP-A") as a:
        await a.call_ok("BootNotification", BOOT)
        first = await _start(a, 1, "ALICE", T0)
        await _stop(a, first, T0 + timedelta(hours=1), 8000)
        second = await _start(a, 1, "BOB", T0 + timedelta(hours=2))
    async with raw_charger(api_system.ocpp.port, "CP-B") as b:
        await b.call_ok("BootNotification", BOOT)
        third = await _start(b, 1, "ALICE", T0 + timedelta(hours=3))
    account = await _bridge_session(db, third)

    async def ids(**params: Any) -> list[int]:
        return await _all_pages(api, 500, **params)

    assert await ids(charge_point_id="CP-A") == [second, first]
    assert await ids(id_tag="ALICE") == [third, first]
    assert await ids(active="true") == [third, second]
    assert await ids(active="false") == [first]
    window = {
        "from": (T0 + timedelta(hours=1)).isoformat(),
        "to": (T0 + timedelta(hours=3)).isoformat(),
    }
    assert await ids(**window) == [second]
    assert await ids(vin=VIN.lower()) == [third]
    assert await ids(account_id=account) == [third]
    assert await ids(account_id=account + 1) == []
    # Both filters at once, as the bridge's plug-in adds them: each keeps its own value.
    assert await ids(vin=VIN, account_id=account) == [third]
    assert await ids(vin=VIN, account_id=account + 1) == []
    naive = await api.get("/api/transactions", params={"from": "2025-03-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "from"
    for name, bad in (("account_id", "seven"), ("vin", ""), ("vin", "X" * 33)):
        refused = await api.get("/api/transactions", params={name: bad})
        assert refused.status_code == 422 and refused.json()["field"] == name, refused.text
    # The plug-in's filters are documented where the core's are.
    schema = (await api.get("/openapi.json")).json()
    listed_by = {p["name"] for p in schema["paths"]["/api/transactions"]["get"]["parameters"]}
    assert {"charge_point_id", "id_tag", "vin", "account_id", "from", "to"} <= listed_by
    listed = (await api.get("/api/transactions", params={"id_tag": "ALICE"})).json()["items"]
    assert listed[1]["energy_wh"] == 7000 and listed[0]["energy_wh"] is None


async def test_one_transaction_with_meter_values_and_the_bridge_session(
    api_system: CentralSystem, api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    async with raw_charger(api_system.ocpp.port, "CP-M") as charger:
        await charger.call_ok("BootNotification", BOOT)
        tx = await _start(charger, 1, "CARD", T0)
        await charger.call_ok(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [
                    {
                        "timestamp": (T0 + timedelta(minutes=5)).isoformat(),
                        "sampledValue": [{"value": "2500"}],
                    }
                ],
            },
        )
        plain = await _start(charger, 2, "CARD", T0)
    await _bridge_session(db, tx)

    body = (await api.get(f"/api/transactions/{tx}")).json()
    assert [(m["measurand"], m["value"]) for m in body["meter_values"]] == [
        ("Energy.Active.Import.Register", 2500.0)
    ]
    session = body["session"]
    assert session["vin"] == "*" * 11 + VIN[-6:]
    assert (session["bill_amount"], session["bill_basis"]) == ("2.10", "charger")
    assert [s["soc_percent"] for s in session["soc_samples"]] == [40.0, 55.0]
    assert (await api.get(f"/api/transactions/{plain}")).json()["session"] is None
    missing = await api.get("/api/transactions/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def _bridge_session(db: asyncpg.Connection, transaction_id: int) -> int:
    # The bridge's own rows, written directly: these tests are about reading them back.
    account = await db.fetchval(
        "INSERT INTO accounts (name, payment_status) VALUES ('Driver', 'valid') RETURNING id"
    )
    link = await db.fetchval(
        """INSERT INTO smartcar_links (account_id, smartcar_user_id, access_token_enc,
               refresh_token_enc, access_expires_at, refresh_expires_at)
           VALUES ($1, 'user', '\\x00', '\\x00', now(), now()) RETURNING id""",
        account,
    )
    vehicle = await db.fetchval(
        """INSERT INTO vehicles (smartcar_vehicle_id, link_id, account_id, vin, id_tag)
           VALUES ('sc-1', $1, $2, $3, 'SC0000') RETURNING id""",
        link,
        account,
        VIN,
    )
    session = await db.fetchval(
        """INSERT INTO charging_sessions (charge_point_id, connector_id, vehicle_id, account_id,
               vin, id_tag, transaction_id, state, target_soc_percent, bill_amount, bill_basis)
           VALUES ('CP', 1, $1, $2, $3, 'SC0000', $4, 'completed', 80, 2.10, 'charger')
           RETURNING id""",
        vehicle,
        account,
        VIN,
        transaction_id,
    )
    for minute, soc in ((0, 40.0), (30, 55.0)):
        await db.execute(
            """INSERT INTO soc_samples (session_id, sampled_at, soc_percent, source)
               VALUES ($1, $2, $3, 'smartcar')""",
            session,
            T0 + timedelta(minutes=minute),
            soc,
        )
    return int(account)
