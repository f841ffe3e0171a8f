"""A bridge whose event queue runs behind the central system (the fleet bench at 1,000 cars:
seconds behind) must still never start the wrong car.

The cable is seen twice: by the charger (StatusNotification, through the central system's
event queue) and by the car (a Smartcar webhook, straight to the bridge). When the queue
lags, a car's webhook can arrive before its connector's Preparing has reached the bridge,
and a neighbour recorded earlier looks like the only place that car can be.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from csms.config import Settings
from csms.domain.events import ConnectorStatusChanged, Event
from simulators.world import Charger, World
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import bridge_env, car

SITE = (48.2, 11.6)
UNLINKED = "WVWZZZ1KZ00000777"  # on connector 1: nobody linked it
WATCHED = "5YJ3E7EB0KF000888"  # on connector 2: linked, its webhooks arrive


def site_world() -> World:
    """CP-L, two connectors, and the two cars of these tests, all at SITE."""
    return World(
        vehicles=[
            car(UNLINKED, 0.40, lat=SITE[0], lon=SITE[1]),
            car(WATCHED, 0.40, lat=SITE[0], lon=SITE[1]),
        ],
        chargers=[Charger("CP-L", SITE[0], SITE[1], 11_000.0, 2)],
    )


def lag_env(settings: Settings, db: asyncpg.Connection, world: World) -> Any:
    """The bridge on webhooks, with windows long enough for a queue that lags."""
    return bridge_env(
        settings, db, world, webhooks=True, match_window=30.0, webhook_lag=2.0,
        match_give_up_after=30.0, confirm_timeout=2.0,
    )  # fmt: skip


def hold_connector(env: Any, connector_id: int) -> asyncio.Event:
    """From now on the bridge's event queue stops at this connector's first status, as
    behind a backlog (everything after it waits too); webhooks still come straight in.
    Setting the returned event lets the queue run on."""
    engine: Any = env.bridge.engine
    dispatch = engine._dispatch
    backlog = asyncio.Event()

    async def behind(event: Event) -> None:
        if isinstance(event, ConnectorStatusChanged) and event.connector_id == connector_id:
            await backlog.wait()
        await dispatch(event)

    engine._dispatch = behind
    return backlog


async def started_on_connector_2_only(env: Any, db: asyncpg.Connection) -> None:
    """Once the queue runs on, the watched car is started on its own cable (connector 2)
    and nothing on connector 1 is billed to it, nor to anyone."""
    transaction_id = await env.wait_for(
        "SELECT transaction_id FROM charging_sessions "
        "WHERE vin = $1 AND connector_id = 2 AND transaction_id IS NOT NULL",
        WATCHED,
        timeout=TIMEOUT * 6,
    )
    assert env.runner.charge_points["CP-L"].connector(2).transaction_id == transaction_id
    billed = await db.fetchval(
        "SELECT count(*) FROM charging_sessions "
        "WHERE connector_id = 1 AND transaction_id IS NOT NULL"
    )
    assert billed == 0


@pytest.mark.smartcar_api("3")
async def test_a_webhook_ahead_of_its_connectors_preparing_does_not_start_the_neighbour(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = site_world()
    async with lag_env(settings, db, world) as env:
        await env.locate("CP-L", *SITE)
        await env.link(await env.create_account(), WATCHED)
        await env.wait_for("SELECT count(*) = 1 FROM vehicles WHERE webhook_seen_at IS NOT NULL")
        # The queue falls behind at connector 2's Preparing: it and everything after it
        # wait, as behind a backlog; webhooks still come straight in.
        backlog = hold_connector(env, 2)
        env.runner.plug_in(UNLINKED, "CP-L", 1)
        await env.wait_for("SELECT count(*) = 1 FROM plug_ins WHERE connector_id = 1")
        env.runner.plug_in(WATCHED, "CP-L", 2)
        # The car's cable webhook is in; the Preparing on connector 2 is not.
        await env.wait_for(
            "SELECT plugged_seen_at IS NOT NULL FROM vehicles WHERE vin = $1", WATCHED
        )
        # Connector 1 is decided while connector 2 is unknown to the bridge.
        await env.wait_for(
            "SELECT outcome <> 'pending' FROM plug_ins WHERE connector_id = 1",
            timeout=TIMEOUT * 4,
        )
        assert await db.fetchval("SELECT count(*) FROM plug_ins WHERE connector_id = 2") == 0
        # Not matched: the car's webhook fits connector 2's plug-in as well, still unrecorded.
        assert await db.fetchval("SELECT outcome FROM plug_ins WHERE connector_id = 1") != "matched"
        backlog.set()
        # The car is found where it is, once its connector's Preparing arrives.
        await started_on_connector_2_only(env, db)
    first = await db.fetchrow("SELECT outcome, session_id FROM plug_ins WHERE connector_id = 1")
    assert first["outcome"] != "matched"


LEFT = "WVWZZZ1KZ00000555"  # on connector 2 before the watched car: nobody linked it


@pytest.mark.smartcar_api("3")
async def test_the_previous_cars_open_plug_in_does_not_hide_the_next_ones_preparing(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """The fleet bench's wrong start: the car before on connector 2 left and the watched car
    plugged in there, but the queue still holds connector 2's Available and Preparing, so
    the bridge has the old plug-in open there. A neighbour on connector 1 decided then
    must see connector 2's new plug cycle (the connector's history says it began after
    the Available) and not take the watched car for its own."""
    world = World(
        vehicles=[car(v, 0.40, lat=SITE[0], lon=SITE[1]) for v in (UNLINKED, WATCHED, LEFT)],
        chargers=[Charger("CP-L", SITE[0], SITE[1], 11_000.0, 2)],
    )
    async with bridge_env(
        settings, db, world, webhooks=True, match_window=5.0, webhook_lag=2.0,
        match_give_up_after=30.0, confirm_timeout=2.0,
    ) as env:  # fmt: skip
        await env.locate("CP-L", *SITE)
        await env.link(await env.create_account(), WATCHED)
        await env.wait_for("SELECT count(*) = 1 FROM vehicles WHERE webhook_seen_at IS NOT NULL")
        env.runner.plug_in(LEFT, "CP-L", 2)
        await env.wait_for("SELECT count(*) = 1 FROM plug_ins WHERE connector_id = 2")
        # Long enough ago that the watched car's plug-in cannot be this one's (the window).
        await asyncio.sleep(6.0)
        env.runner.plug_in(UNLINKED, "CP-L", 1)
        await env.wait_for("SELECT count(*) = 1 FROM plug_ins WHERE connector_id = 1")
        backlog = hold_connector(env, 2)
        env.runner.unplug(LEFT)  # Available on connector 2: held
        await env.wait_for("SELECT status = 'Available' FROM connectors WHERE connector_id = 2")
        env.runner.plug_in(WATCHED, "CP-L", 2)  # Preparing on connector 2: held
        await env.wait_for(
            "SELECT plugged_seen_at IS NOT NULL FROM vehicles WHERE vin = $1", WATCHED
        )
        await env.wait_for(
            "SELECT outcome <> 'pending' FROM plug_ins WHERE connector_id = 1",
            timeout=TIMEOUT * 4,
        )
        # The bridge still has the old car's plug-in open on connector 2, and no other.
        open_there = await db.fetch(
            "SELECT ended_at FROM plug_ins WHERE connector_id = 2 ORDER BY id"
        )
        assert [r["ended_at"] for r in open_there] == [None]
        assert await db.fetchval("SELECT outcome FROM plug_ins WHERE connector_id = 1") != "matched"
        backlog.set()
        await started_on_connector_2_only(env, db)


def hold_unplug_deliveries(env: Any, smartcar_id: str) -> list[dict[str, Any]]:
    """From now on the car's deliveries saying "cable not connected" are held back (late,
    as §10's retries may bring them); the rest reach the bridge. Returns the held ones."""
    engine: Any = env.bridge.engine
    deliver = engine.on_webhook
    held: list[dict[str, Any]] = []

    async def late(event: dict[str, Any]) -> None:
        signals = (event.get("data") or {}).get("signals") or []
        unplugged = any(
            s.get("code") == "charge-ischargingcableconnected"
            and (s.get("body") or {}).get("value") is False
            for s in signals
        )
        if event.get("vehicleId") == smartcar_id and unplugged:
            held.append(event)
            return
        await deliver(event)

    engine.on_webhook = late
    return held


async def test_a_car_whose_unplug_is_late_is_not_the_next_connectors_only_candidate(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """The fleet bench at 1,000 cars: a car plugged into connector 1 and left before its
    plug-in was decided; its unplug delivery was late, so it still looked plugged in when an
    unlinked car's plug-in on connector 2, seconds later, was decided, and it was that
    plug-in's only candidate. The ended plug-in on connector 1 must still contest it."""
    world = site_world()
    async with lag_env(settings, db, world) as env:
        await env.locate("CP-L", *SITE)
        # Not paying yet: its plug-in on connector 1 is closed without a session.
        account = await env.create_account("suspended")
        await env.link(account, WATCHED)
        await env.wait_for("SELECT count(*) = 1 FROM vehicles WHERE webhook_seen_at IS NOT NULL")
        held = hold_unplug_deliveries(env, world.vehicles[WATCHED].smartcar_id)
        env.runner.plug_in(WATCHED, "CP-L", 1)
        await env.wait_for(
            "SELECT outcome = 'unpaid' FROM plug_ins WHERE connector_id = 1", timeout=TIMEOUT * 4
        )
        env.runner.unplug(WATCHED)
        await env.wait_for("SELECT ended_at IS NOT NULL FROM plug_ins WHERE connector_id = 1")
        await env.wait_for("SELECT count(*) > 0 FROM vehicles WHERE plugged_seen_at IS NOT NULL")
        # The account pays now; the car's unplug has not reached the bridge.
        await db.execute("UPDATE accounts SET payment_status = 'valid' WHERE id = $1", account)
        env.runner.plug_in(UNLINKED, "CP-L", 2)
        await env.wait_for(
            "SELECT outcome NOT IN ('pending', 'confirming') FROM plug_ins WHERE connector_id = 2",
            timeout=TIMEOUT * 6,
        )
        second = await db.fetchrow(
            "SELECT outcome, vehicle_id FROM plug_ins WHERE connector_id = 2"
        )
        billed = await db.fetchval(
            "SELECT count(*) FROM charging_sessions WHERE transaction_id IS NOT NULL"
        )
        assert held  # the unplug was delivered, and held back
    assert second["outcome"] != "matched" and second["vehicle_id"] is None, dict(second)
    assert billed == 0
