"""A small simulated world against the real central system: sessions end up in the database
with energy that matches what the cars' batteries gained."""

from __future__ import annotations

import asyncio

import asyncpg

from csms.app import CentralSystem
from csms.db import id_tags
from simulators.world_runner import WorldRunner, card_for
from simulators.world_traffic import parse_scenario
from tests.conftest import TIMEOUT

SPEED = 120.0  # 10 simulated minutes of charging in 5 real seconds
DWELL_S = 600.0


def csms_url(system: CentralSystem) -> str:
    return f"ws://127.0.0.1:{system.ocpp.port}/ocpp"


async def wait_until(db: asyncpg.Connection, query: str, *args: object) -> object:
    """Poll until ``query`` yields a truthy value (writes are batched), bounded."""
    async with asyncio.timeout(TIMEOUT):
        while not (value := await db.fetchval(query, *args)):
            await asyncio.sleep(0.05)
    return value


async def test_world_sessions_are_stored_with_energy_matching_the_batteries(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    runner = WorldRunner(
        csms_url(system),
        chargers=3,
        vehicles=4,
        connectors=2,
        dc_share=0.0,
        speed=SPEED,
        seed=7,
        charger_config={"MeterValueSampleInterval": "30"},
    )
    vins = list(runner.world.vehicles)
    for vin in vins:
        await id_tags.upsert(db, card_for(vin))  # type: ignore[arg-type]
        runner.world.vehicle(vin).soc = 0.2  # room to charge for the whole stay
    chargers = list(runner.charge_points)
    async with runner:
        await runner.wait_booted(TIMEOUT)
        # Connector 0 plus two connectors per charger, each reported Available.
        await wait_until(db, "SELECT count(*) = 9 FROM connectors WHERE status = 'Available'")
        plugged = [
            runner.plug_in(vin, charger_id, 1, tap=True, dwell_s=DWELL_S)
            for vin, charger_id in zip(vins, chargers, strict=False)
        ]
        await wait_until(db, "SELECT count(*) = 3 FROM connectors WHERE status = 'Charging'")
        await wait_until(
            db, "SELECT count(*) = 3 FROM transactions WHERE stop_received_at IS NOT NULL"
        )
        # Unplugged: Finishing, then Available again (connector 0 and all six connectors).
        await wait_until(db, "SELECT count(*) = 9 FROM connectors WHERE status = 'Available'")

    rows = await db.fetch("SELECT * FROM transactions ORDER BY id")
    assert len(rows) == 3
    by_id = {row["id"]: row for row in rows}
    for session in plugged:
        assert len(session.transaction_ids) == 1
        row = by_id[session.transaction_ids[0]]
        assert (row["charge_point_id"], row["connector_id"]) == (session.charger_id, 1)
        assert row["id_tag"] == card_for(session.vin) and row["id_tag_status"] == "Accepted"
        assert row["stop_reason"] == "EVDisconnected"
        metered_wh = row["meter_stop_wh"] - row["meter_start_wh"]
        # 10 minutes at up to 11 kW: well over a kWh, and what the charger counted.
        assert metered_wh > 1000
        assert abs(metered_wh - session.grid_wh) <= 2  # integer Wh on the wire
        # The battery gained less than the grid delivered: charging losses of a few percent.
        assert session.battery_wh <= metered_wh
        assert 0.85 <= session.battery_wh / metered_wh <= 1.0
        samples = await db.fetchval(
            "SELECT count(*) FROM meter_values WHERE transaction_id = $1 "
            "AND measurand = 'Energy.Active.Import.Register' AND context = 'Sample.Periodic'",
            row["id"],
        )
        assert samples >= 10  # every 30 simulated seconds for ten minutes
    summary = runner.summary()
    assert summary["sessions_started"] == summary["sessions_stopped"] == 3
    assert summary["errors"] == summary["call_errors"] == summary["timeouts"] == 0
    assert abs(summary["energy_metered_wh"] - sum(r["meter_stop_wh"] for r in rows)) <= 3


async def test_random_arrivals_with_rfid_run_sessions_through_the_central_system(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    runner = WorldRunner(
        csms_url(system),
        chargers=3,
        vehicles=6,
        connectors=2,
        speed=300.0,
        seed=3,
        arrivals_per_hour=60.0,
        mean_dwell_s=900.0,
        rfid_share=1.0,
    )
    for vin in runner.world.vehicles:
        await id_tags.upsert(db, card_for(vin))  # type: ignore[arg-type]
    async with runner:
        await runner.wait_booted(TIMEOUT)
        await wait_until(
            db, "SELECT count(*) >= 2 FROM transactions WHERE stop_received_at IS NOT NULL"
        )
    summary = runner.summary()
    assert summary["arrivals"] >= 2 and summary["rfid_taps"] >= 2
    assert summary["errors"] == 0


async def test_scripted_scenario_plugs_in_goes_offline_and_unplugs(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    runner = WorldRunner(
        csms_url(system), chargers=1, vehicles=2, connectors=2, speed=120.0, seed=2
    )
    (charger_id,) = runner.charge_points
    scenario = {
        "events": [
            {"at": 0, "action": "set_soc", "vehicle": 0, "value": 0.25},
            {"at": 5, "action": "plug_in", "vehicle": 0, "charger_id": charger_id, "tap": True},
            {
                "at": 10,
                "action": "plug_in",
                "vehicle": 1,
                "charger_id": charger_id,
                "connector_id": 2,
            },
            {"at": 120, "action": "offline", "charger_id": charger_id, "seconds": 120},
            {"at": 200, "action": "unplug", "vehicle": 0},
            {"at": 300, "action": "unplug", "vehicle": 1},
        ]
    }
    vins = list(runner.world.vehicles)
    runner.add_scenario(parse_scenario(scenario, vins))
    await id_tags.upsert(db, card_for(vins[0]))  # type: ignore[arg-type]
    async with runner:
        await wait_until(db, "SELECT stop_reason FROM transactions")
        await runner.run_for(120)  # past the second unplug
        summary = runner.summary()
    assert summary["plug_ins"] == 2 and summary["rfid_taps"] == 1
    assert summary["sessions_started"] == summary["sessions_stopped"] == 1
    assert summary["outages"] == 1 and summary["connections"] == 2
    assert summary["errors"] == 0
    # The car without a card never started a transaction; the other stopped when unplugged.
    tx = await db.fetchrow("SELECT * FROM transactions")
    assert tx["connector_id"] == 1 and tx["stop_reason"] == "EVDisconnected"
    assert await db.fetchval("SELECT count(*) FROM transactions") == 1
