"""Issue 16's "done when", through the fake over HTTP: signed webhook deliveries, duplicated
and out of order, drive a plug-in and its monitoring; a make without webhooks is polled; the
application's bucket running dry still stops a session at its target; a car whose monthly
calls are spent is no longer polled, and the bridge says so; unlinking a car takes it off
the webhook (v3 Management API or v2.0 ``DELETE .../webhooks/{id}``)."""

from __future__ import annotations

import asyncpg
import structlog

from csms.config import Settings
from simulators.smartcar_fake.limits import CostLimits
from simulators.world import World
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import BridgeEnv, bridge_env, car, charger

SITE = (48.1, 11.5)


def vin(n: int) -> str:
    return f"WVWZZZ1KZ{n:08d}"


def calls(env: BridgeEnv) -> dict[str, int]:
    bridge = env.bridge
    assert bridge is not None and bridge.client.limiter is not None
    return dict(bridge.client.limiter.by_purpose)


async def _completed(env: BridgeEnv, transaction_id: int) -> dict[str, object]:
    await env.wait_for(
        "SELECT state = 'completed' FROM charging_sessions WHERE transaction_id = $1",
        transaction_id,
        timeout=TIMEOUT * 6,
    )
    return await env.session(transaction_id)


async def test_duplicated_and_reordered_webhooks_drive_plug_in_and_monitoring(
    settings: Settings, db: asyncpg.Connection
) -> None:
    fleet = [vin(300 + n) for n in range(4)]
    world = World(
        vehicles=[car(v, 0.70, lat=SITE[0], lon=SITE[1]) for v in fleet],
        chargers=[charger("CP-H", lat=SITE[0], lon=SITE[1])],
    )
    async with bridge_env(
        settings, db, world, webhooks=True, decision_reads=4, match_window=30.0,
        webhook_lag=2.0, match_give_up_after=30.0,
    ) as env:  # fmt: skip
        hooks = env.fake.webhooks
        # At least once and unordered (§10): every event twice, each up to 0.3 s late.
        hooks.duplicate_share, hooks.max_reorder_delay_s = 1.0, 0.3
        await env.locate("CP-H", *SITE)
        account = await env.create_account()
        for v in fleet:
            await env.link(account, v)
        await env.wait_for(
            "SELECT count(*) = $1 FROM vehicles WHERE webhook_seen_at IS NOT NULL", len(fleet)
        )
        before = calls(env)
        transaction_id = await env.plug_in_until_charging(fleet[2], "CP-H")
        assert calls(env).get("match", 0) == before.get("match", 0)  # matched on webhooks
        session = await _completed(env, transaction_id)
    assert session["vin"].endswith(fleet[2][-6:])
    assert session["stop_reason"] == "target_soc"
    # Every delivery was signed and verified; the duplicates were dropped on eventId.
    accepted = [d for d in hooks.deliveries if d.event_type == "VEHICLE_STATE" and d.ok]
    assert len({d.event_id for d in accepted}) < len(accepted)
    recorded = await db.fetchval(
        "SELECT count(*) FROM smartcar_webhook_events WHERE event_type = 'VEHICLE_STATE'"
    )
    assert recorded == len({d.event_id for d in accepted})  # each event handled once


async def test_a_make_without_webhooks_is_matched_by_polling(
    settings: Settings, db: asyncpg.Connection
) -> None:
    silent = car(vin(400), 0.55, lat=SITE[0], lon=SITE[1])
    silent.make = "HYUNDAI"
    world = World(
        vehicles=[silent, car(vin(401), 0.6, lat=52.5, lon=13.4)],
        chargers=[charger("CP-S", lat=SITE[0], lon=SITE[1])],
    )
    async with bridge_env(
        settings, db, world, webhooks=True, decision_reads=4, match_window=30.0,
        webhook_lag=2.0, match_give_up_after=30.0,
    ) as env:  # fmt: skip
        env.fake.webhooks.silent_makes = {"HYUNDAI"}
        await env.locate("CP-S", *SITE)
        account = await env.create_account()
        for v in world.vehicles:
            await env.link(account, v)  # the VINs
        await env.wait_for("SELECT count(*) = 1 FROM vehicles WHERE webhook_seen_at IS NOT NULL")
        assert await db.fetchval(
            "SELECT webhook_seen_at IS NULL FROM vehicles WHERE vin = $1", silent.vin
        )
        before = calls(env)
        transaction_id = await env.plug_in_until_charging(silent.vin, "CP-S")
        matched = calls(env).get("match", 0) - before.get("match", 0)
        session = await _completed(env, transaction_id)
    assert 1 <= matched <= 4 * (1 if env.api_version == "3" else 2)
    assert session["vin"].endswith(silent.vin[-6:])
    assert session["stop_reason"] == "target_soc"


async def test_an_empty_bucket_still_stops_the_session_at_its_target(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(vin(500), 0.55)], chargers=[charger("CP-A")])
    async with bridge_env(settings, db, world, rate_bucket_size=120) as env:
        await env.link(await env.create_account(), vin(500))
        transaction_id = await env.plug_in_until_charging(vin(500), "CP-A")
        bridge = env.bridge
        assert bridge is not None and bridge.client.limiter is not None
        bucket = bridge.client.limiter.bucket
        # The morning rush spent the application's calls: three tokens left, none coming.
        bucket.refill_per_s, bucket.level = 0.0, 3.0
        before = calls(env)
        session = await _completed(env, transaction_id)
        after = calls(env)
    assert session["stop_reason"] == "target_soc"
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # Monitoring and matching wait behind their reserve; the stop got its token.
    assert spent.get("monitor", 0) == 0
    assert spent.get("stop", 0) >= 1


async def test_a_car_whose_monthly_calls_are_spent_is_no_longer_polled(
    settings: Settings, db: asyncpg.Connection
) -> None:
    capped = car(vin(600), 0.5, lat=SITE[0], lon=SITE[1])
    world = World(vehicles=[capped], chargers=[charger("CP-C", lat=SITE[0], lon=SITE[1])])
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(settings, db, world, match_give_up_after=6.0) as env:
            await env.locate("CP-C", *SITE)
            await env.link(await env.create_account(), capped.vin)
            costs = env.fake.costs
            now = env.fake.clock()
            # The plan's calls for this car this month are spent: the next one is refused.
            costs.configure(CostLimits(monthly_cap=costs.monthly_count(capped.smartcar_id, now)))
            env.runner.plug_in(capped.vin, "CP-C", 1)
            await env.wait_for("SELECT count(*) = 1 FROM plug_ins WHERE outcome = 'no_match'")
            refused = costs.refused["BILLING:VEHICLE_REQUEST_LIMIT"]
            env.runner.unplug(capped.vin)
            env.runner.plug_in(capped.vin, "CP-C", 1)
            await env.wait_for("SELECT count(*) = 2 FROM plug_ins WHERE outcome = 'no_match'")
    capped_logs = [e for e in logs if e["event"] == "bridge.smartcar_vehicle_capped"]
    assert capped_logs and "not polling" in capped_logs[0]["detail"]
    assert refused == 1  # the 430 came once ...
    assert costs.refused["BILLING:VEHICLE_REQUEST_LIMIT"] == refused  # ... and never again


async def test_unlinking_a_car_takes_it_off_the_webhook(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(vin(700), 0.5)], chargers=[charger("CP-A")])
    async with bridge_env(settings, db, world, webhooks=True) as env:
        await env.link(await env.create_account(), vin(700))
        smartcar_id = world.vehicle(vin(700)).smartcar_id
        assert smartcar_id in env.fake.webhooks.subscriptions
        vehicle_id = await db.fetchval("SELECT id FROM vehicles WHERE vin = $1", vin(700))
        with structlog.testing.capture_logs() as logs:
            response = await env.http.delete(f"/api/vehicles/{vehicle_id}")
        assert response.status_code == 200, response.text
        assert smartcar_id not in env.fake.webhooks.subscriptions
        if env.api_version == "3":
            assert not env.fake.v3.subscriptions  # DELETE /subscriptions/{id}
    assert [e for e in logs if e["event"] == "bridge.webhook_unsubscribed"]


async def test_late_cable_deliveries_never_overwrite_a_newer_state(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """Deliveries are unordered and retried (§10): three plug cycles' cable changes arrive
    shuffled and at once; the car ends as its newest change left it (unplugged), not as a
    late "plugged in" from an earlier cycle says, which would make it a candidate for a
    neighbour's plug-in it never made."""
    import asyncio
    import random
    import uuid
    from datetime import UTC, datetime, timedelta

    linked = car(vin(800), 0.5)
    world = World(vehicles=[linked], chargers=[charger("CP-A")])
    async with bridge_env(settings, db, world, webhooks=True) as env:
        # Only the deliveries below reach the bridge: the fake's own (FIRST_DELIVERY after
        # subscribing, stamped now) would be newer than all of them and race them.
        env.fake.webhooks.silent_makes = {linked.make}
        await env.link(await env.create_account(), linked.vin)
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

        def cable(plugged: bool, seconds: int) -> dict[str, object]:
            at = int((base + timedelta(seconds=seconds)).timestamp() * 1000)
            code = "charge-ischargingcableconnected"
            return {
                "eventId": str(uuid.uuid4()),
                "eventType": "VEHICLE_STATE",
                "vehicleId": linked.smartcar_id,
                "data": {
                    "vehicle": {"id": linked.smartcar_id},
                    "triggers": [{"code": code}],
                    "signals": [
                        {
                            "code": code,
                            "body": {"value": plugged},
                            "meta": {"oemUpdatedAt": at, "fetchedAt": at},
                        }
                    ],
                },
            }

        changes = [cable(n % 2 == 0, 60 * n) for n in range(6)]  # plugged, unplugged, ...
        shuffled = random.Random(16).sample(changes, len(changes))
        await asyncio.gather(*(env.bridge.engine.on_webhook(e) for e in shuffled))
        # Then each again (retries: dropped on eventId), and all of them newest first, as
        # distinct deliveries: the last to arrive is the oldest, "plugged in" 5 min ago.
        await asyncio.gather(*(env.bridge.engine.on_webhook(e) for e in shuffled))
        for event in reversed(changes):
            await env.bridge.engine.on_webhook({**event, "eventId": str(uuid.uuid4())})
        row = await db.fetchrow(
            "SELECT plugged_seen_at, unplugged_seen_at, plug_data_at FROM vehicles WHERE vin = $1",
            linked.vin,
        )
    newest = base + timedelta(seconds=300)
    assert row["plugged_seen_at"] is None
    assert row["unplugged_seen_at"] == newest
    assert row["plug_data_at"] == newest
