"""Plug-and-charge end to end: link once, plug in, and the session runs itself."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import structlog

from csms.config import Settings
from simulators.world import World
from tests.e2e.bridge_env import bridge_env, car, charger

VIN_A = "5YJ3E1EA7KF000001"
VIN_B = "5YJ3E1EA7KF000002"


def _events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


async def test_linked_car_is_matched_started_stopped_at_target_and_billed(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(VIN_A, 0.70)], chargers=[charger("CP-A")])
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(settings, db, world) as env:
            account = await env.create_account("valid", "0.30")
            page = await env.link(account, VIN_A)
            assert "Car linked" in page.text
            vehicles = (await env.http.get("/api/vehicles")).json()
            assert [(v["vin"], v["account_id"]) for v in vehicles] == [
                ("*" * 11 + "000001", account)
            ]

            env.runner.plug_in(VIN_A, "CP-A", 1)
            tx = await env.wait_for(
                "SELECT transaction_id FROM charging_sessions WHERE state = 'completed'",
                timeout=30,
            )
            session = await env.session(tx)
    assert session["state"] == "completed"
    assert session["stop_reason"] == "target_soc"
    assert session["start_soc_percent"] < 80 <= session["end_soc_percent"] < 85
    assert session["bill_basis"] == "charger"
    grid, battery = session["grid_energy_wh"], session["battery_energy_wh"]
    assert grid > battery > 0
    assert 0.85 < float(session["efficiency"]) <= 1.0
    expected = (Decimal(grid) / 1000 * Decimal("0.30")).quantize(Decimal("0.01"))
    assert Decimal(session["bill_amount"]) == expected
    assert len(session["soc_samples"]) >= 2
    transaction = await db.fetchrow("SELECT * FROM transactions WHERE id = $1", tx)
    assert transaction["meter_stop_wh"] - transaction["meter_start_wh"] == grid
    assert transaction["id_tag_status"] == "Accepted"
    for name in (
        "bridge.vehicle_matched",
        "bridge.session_started",
        "bridge.stop_requested",
        "bridge.session_reconciled",
    ):
        event = _events(logs, name)[0]
        assert event["vin"] == "*" * 11 + "000001"
    assert _events(logs, "bridge.session_reconciled")[0]["transaction_id"] == tx
