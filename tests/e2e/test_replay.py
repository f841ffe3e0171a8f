"""A charger that loses its network mid-session keeps charging and replays what it queued."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from csms.app import CentralSystem
from csms.db import id_tags
from simulators.charge_point import ChargePoint
from simulators.world_runner import WorldRunner, card_for
from tests.conftest import TIMEOUT
from tests.e2e.test_world import csms_url, wait_until

SPEED = 60.0
METER_INTERVAL_S = 10
OFFLINE_S = 180.0


def one_charger_world(system: CentralSystem, seed: int) -> tuple[WorldRunner, str, ChargePoint]:
    """One AC charger with one connector and one car, metering every 10 simulated s."""
    runner = WorldRunner(
        csms_url(system),
        chargers=1,
        vehicles=1,
        connectors=1,
        dc_share=0.0,
        speed=SPEED,
        seed=seed,
        smartcar_port=None,
        charger_config={"MeterValueSampleInterval": str(METER_INTERVAL_S)},
    )
    ((vin,), (cp,)) = (runner.world.vehicles, runner.charge_points.values())
    return runner, vin, cp


async def test_offline_charger_replays_meter_values_and_stop_in_order_with_original_times(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    runner, vin, cp = one_charger_world(system, seed=11)
    runner.world.vehicle(vin).soc = 0.2
    await id_tags.upsert(db, card_for(vin))  # type: ignore[arg-type]
    async with runner:
        await runner.wait_booted(TIMEOUT)
        session = runner.plug_in(vin, cp.identity, 1, tap=True)
        tx_id = await wait_until(db, "SELECT id FROM transactions")
        await wait_until(
            db, "SELECT count(*) >= 2 FROM meter_values WHERE context = 'Sample.Periodic'"
        )

        # Drop just after a MeterValues answer, so none is in flight: a lost answer means a
        # retransmission, which test_meter_values_retransmitted_… covers on its own.
        answered = runner.stats.results["MeterValues"]
        await cp.wait_for(lambda: runner.stats.results["MeterValues"] > answered, TIMEOUT)
        runner.go_offline(cp.identity, OFFLINE_S)
        await cp.wait_for(lambda: not cp.connected, TIMEOUT)
        went_offline = cp.now()
        # Two simulated minutes offline, still charging: meter values queue up.
        await runner.run_for(120)
        runner.unplug(vin)
        unplugged = cp.now()
        queued = cp.queued_transaction_messages
        assert not cp.connected
        still_offline_at = datetime.now(UTC)

        await cp.wait_for(lambda: cp.queued_transaction_messages == 0, TIMEOUT)
        await wait_until(db, "SELECT stop_received_at IS NOT NULL FROM transactions")

    assert queued >= 10  # 120 s at one sample per 10 s, plus the StopTransaction
    assert session.transaction_ids == [tx_id]
    tx = await db.fetchrow("SELECT * FROM transactions")
    assert await db.fetchval("SELECT count(*) FROM transactions") == 1
    assert tx["stop_reason"] == "EVDisconnected"
    assert abs(tx["meter_stop_wh"] - session.grid_wh) <= 1
    # The stop carries the time the car was unplugged, not the time it reached us.
    assert abs((tx["stop_timestamp"] - unplugged).total_seconds()) <= 5
    assert tx["stop_received_at"] >= still_offline_at

    rows = await db.fetch(
        "SELECT sampled_at, received_at, value FROM meter_values "
        "WHERE transaction_id = $1 AND measurand = 'Energy.Active.Import.Register' "
        "AND context = 'Sample.Periodic' ORDER BY sampled_at",
        tx_id,
    )
    # Nothing stored twice: one row per sampling moment.
    assert len({row["sampled_at"] for row in rows}) == len(rows)
    # Original sampling times: all in the past when they arrived (the simulated clock runs
    # behind real time), and the meter only ever goes up.
    assert all(row["sampled_at"] < row["received_at"] for row in rows)
    values = [row["value"] for row in rows]
    assert values == sorted(values)
    replayed = [row for row in rows if went_offline <= row["sampled_at"] <= unplugged]
    assert len(replayed) >= 10
    assert all(row["received_at"] >= still_offline_at for row in replayed)
    # Replayed in order: the later a sample was taken, the later it arrived.
    arrivals = [row["received_at"] for row in replayed]
    assert arrivals == sorted(arrivals)
    duplicates = await db.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM meter_values GROUP BY transaction_id, sampled_at, "
        "measurand, phase, context HAVING count(*) > 1) AS d"
    )
    assert duplicates == 0


async def test_meter_values_retransmitted_after_a_lost_answer_are_stored_once(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    runner, vin, cp = one_charger_world(system, seed=12)
    await id_tags.upsert(db, card_for(vin))  # type: ignore[arg-type]
    async with runner:
        await runner.wait_booted(TIMEOUT)
        runner.plug_in(vin, cp.identity, 1, tap=True)
        await wait_until(
            db, "SELECT count(*) >= 1 FROM meter_values WHERE context = 'Sample.Periodic'"
        )
        meter_values_before = runner.stats.sent["MeterValues"]
        # The next frame is the next periodic MeterValues: the connection dies right after
        # it is sent, so its answer is lost and the charger must send it again (OCPP 1.6 4.8).
        frames_so_far = sum(runner.stats.sent.values()) + sum(runner.stats.received.values())
        cp.faults.drop_after_messages = frames_so_far + 1
        await cp.wait_for(lambda: runner.stats.reconnects == 1, TIMEOUT)
        await cp.wait_for(
            lambda: runner.stats.results["MeterValues"] >= meter_values_before + 2, TIMEOUT
        )
        runner.unplug(vin)
        await wait_until(db, "SELECT stop_received_at IS NOT NULL FROM transactions")
    duplicates = await db.fetch(
        "SELECT sampled_at, measurand, phase, count(*) FROM meter_values "
        "GROUP BY transaction_id, sampled_at, measurand, phase, context HAVING count(*) > 1"
    )
    assert duplicates == []
