"""What plug-and-charge costs in Smartcar calls (issue 16), through the fake over HTTP:
webhook-watched cars are matched without a read, polling cars within a budget that does not
grow with the fleet, and monitoring predicts SoC from the meter instead of polling it."""

from __future__ import annotations

import asyncpg

from csms.config import Settings
from simulators.world import World
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import BridgeEnv, bridge_env, car, charger

SITE = (48.1, 11.5)
ELSEWHERE = (52.5, 13.4)


def vin(n: int) -> str:
    return f"WVWZZZ1KZ{n:08d}"


def calls(env: BridgeEnv) -> dict[str, int]:
    bridge = env.bridge
    assert bridge is not None
    limiter = bridge.client.limiter
    assert limiter is not None
    return dict(limiter.by_purpose)


async def _link_all(env: BridgeEnv, vins: list[str]) -> None:
    account = await env.create_account()
    # One Connect flow per car, one after another: the fake's Connect logs in one driver
    # at a time (``fake.login``).
    for v in vins:
        await env.link(account, v)


async def test_webhook_watched_cars_are_matched_and_monitored_without_polling(
    settings: Settings, db: asyncpg.Connection
) -> None:
    fleet = [vin(n) for n in range(12)]
    world = World(
        vehicles=[car(v, 0.62, lat=ELSEWHERE[0], lon=ELSEWHERE[1]) for v in fleet],
        chargers=[charger("CP-W1", lat=SITE[0], lon=SITE[1]), charger("CP-W2")],
    )
    async with bridge_env(
        settings,
        db,
        world,
        webhooks=True,
        decision_reads=4,
        match_window=30.0,
        rate_bucket_size=120,  # Smartcar's published default: this session must fit in it
    ) as env:
        await env.locate("CP-W1", *SITE)
        for v in fleet:
            env.fake.world.vehicle(v).charge_limit = 1.0
        await _link_all(env, fleet)
        # FIRST_DELIVERY reaches the bridge for every subscribed car: from then on they are
        # watched by their webhooks.
        await env.wait_for(
            "SELECT count(*) = $1 FROM vehicles WHERE webhook_seen_at IS NOT NULL", len(fleet)
        )
        before = calls(env)
        transaction_id = await env.plug_in_until_charging(fleet[5], "CP-W1")
        started = calls(env)
        assert started.get("match", 0) == before.get("match", 0)  # not one read to match
        decision = sum(started.values()) - sum(before.values())
        assert decision <= 5 + 4  # the decision's reads, then start command and its check
        row = await db.fetchrow(
            "SELECT v.vin FROM charging_sessions s JOIN vehicles v ON v.id = s.vehicle_id "
            "WHERE s.transaction_id = $1",
            transaction_id,
        )
        assert row is not None and row["vin"] == fleet[5]
        await env.wait_for(
            "SELECT state = 'completed' FROM charging_sessions WHERE transaction_id = $1",
            transaction_id,
            timeout=TIMEOUT * 6,
        )
        session = calls(env)
        per_session = sum(session.values()) - sum(before.values())
        assert per_session <= 12, session
        assert session.get("monitor", 0) - before.get("monitor", 0) <= 4, session


async def test_a_polling_fleet_is_read_within_the_budget_whatever_its_size(
    settings: Settings, db: asyncpg.Connection
) -> None:
    fleet = [vin(100 + n) for n in range(12)]
    world = World(
        vehicles=[car(v, 0.5) for v in fleet],
        chargers=[charger("CP-P1", lat=SITE[0], lon=SITE[1])],
    )
    async with bridge_env(
        settings, db, world, decision_reads=4, match_window=20.0, rate_bucket_size=120
    ) as env:
        await env.locate("CP-P1", *SITE)
        await _link_all(env, fleet)
        # Where each car was last seen (its previous sessions): the one arriving now was
        # here, nine were far away minutes ago, two are unknown.
        await db.execute(
            "UPDATE vehicles SET latitude = $1, longitude = $2, location_at = now() "
            "- interval '5 minutes'",
            *ELSEWHERE,
        )
        await db.execute(
            "UPDATE vehicles SET latitude = NULL, longitude = NULL, location_at = NULL "
            "WHERE vin = ANY($1::text[])",
            fleet[:2],
        )
        await db.execute(
            "UPDATE vehicles SET latitude = $1, longitude = $2, location_at = now() WHERE vin = $3",
            *SITE,
            fleet[7],
        )
        before = calls(env)
        transaction_id = await env.plug_in_until_charging(fleet[7], "CP-P1")
        after = calls(env)
        matched_reads = after.get("match", 0) - before.get("match", 0)
        # Four cars may be read (the nearby one first, then the two unknown); the other nine
        # are known to be elsewhere and cost nothing. A read is GET /charge (+ /location)
        # in v2.0, and one GET /signals page (charge, cable and position at once) in v3.
        per_read = 1 if env.api_version == "3" else 2
        assert 1 <= matched_reads <= 4 * per_read, after
        row = await db.fetchrow(
            "SELECT v.vin FROM charging_sessions s JOIN vehicles v ON v.id = s.vehicle_id "
            "WHERE s.transaction_id = $1",
            transaction_id,
        )
        assert row is not None and row["vin"] == fleet[7]
