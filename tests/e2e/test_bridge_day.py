"""A scripted day of plug-and-charge: several sites, simultaneous plug-ins, unlinked and
unpaid cars, a slow car cloud, an early unplug with a rate-limited car, a car at target.

The world is the ground truth: it knows which car is on which cable, so every start and
every bill the bridge made is checked against it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import structlog

from csms.config import Settings
from csms.domain.events import ConnectorStatusChanged
from simulators.world import World
from smartcar_bridge import plug_in_store as plug_ins
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import BridgeEnv, bridge_env, car, charger

SITES = {"A": (52.0, 13.0), "B": (48.1, 11.5), "C": (50.0, 8.0), "D": (53.5, 10.0)}
SITES["E"] = (51.0, 7.0)


def vin(n: int) -> str:
    return f"5YJ3E1EA7KF{n:06d}"


A1, A2, B1, UNLINKED, UNPAID, SLOW, AT_TARGET, EARLY, LATE = (vin(n) for n in range(1, 10))
# Where each car is parked before the day (its last known position), and its SoC.
CARS = {
    A1: ("A", 0.70),
    A2: ("A", 0.72),
    B1: ("B", 0.71),
    UNLINKED: ("C", 0.40),
    UNPAID: ("D", 0.40),
    SLOW: ("E", 0.70),
    AT_TARGET: ("D", 0.85),
    EARLY: ("B", 0.30),
    LATE: ("A", 0.70),
}
CHARGERS = {
    "CP-A1": "A",
    "CP-A2": "A",
    "CP-A3": "A",
    "CP-B1": "B",
    "CP-B2": "B",
    "CP-C1": "C",
    "CP-D1": "D",
    "CP-D2": "D",
    "CP-E1": "E",
}


def _world() -> World:
    return World(
        vehicles=[car(v, soc, lat=SITES[s][0], lon=SITES[s][1]) for v, (s, soc) in CARS.items()],
        chargers=[charger(cp, lat=SITES[s][0], lon=SITES[s][1]) for cp, s in CHARGERS.items()],
    )


async def _plug_in(env: BridgeEnv, db: asyncpg.Connection, vin_: str, cp: str) -> dict[str, Any]:
    """Plug the car in; the bridge's plug-in record once it has a final outcome."""
    env.runner.plug_in(vin_, cp, 1)
    return await _outcome(env, db, cp)


async def _outcome(env: BridgeEnv, db: asyncpg.Connection, cp: str) -> dict[str, Any]:
    await env.wait_for(
        "SELECT outcome NOT IN ('pending', 'confirming') "
        "AND (outcome <> 'matched' OR remote_start_at IS NOT NULL) FROM plug_ins "
        "WHERE charge_point_id = $1 ORDER BY id DESC LIMIT 1",
        cp,
        timeout=TIMEOUT * 3,
    )
    row = await db.fetchrow(
        "SELECT p.*, v.vin FROM plug_ins p LEFT JOIN vehicles v ON v.id = p.vehicle_id "
        "WHERE charge_point_id = $1 ORDER BY p.id DESC LIMIT 1",
        cp,
    )
    return dict(row)


def _now() -> datetime:
    return datetime.now(UTC)


def _latency(row: dict[str, Any]) -> float:
    return (row["remote_start_at"] - row["plugged_at"]).total_seconds()


async def test_a_busy_day_starts_every_paying_car_on_its_own_connector_and_bills_it(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(
            settings, db, _world(), match_window=5.0, match_give_up_after=8.0
        ) as env:
            paid = await env.create_account("valid")
            await env.link(paid, A1, A2, B1, SLOW, AT_TARGET, EARLY, LATE)
            await env.link(await env.create_account("suspended"), UNPAID)
            for cp, site in CHARGERS.items():
                await env.locate(cp, *SITES[site])

            # Morning: two cars side by side at A, one at B, an unlinked car at C and an
            # unpaid one at D, all in the same second.
            for vin_, cp in ((A1, "CP-A1"), (A2, "CP-A2"), (B1, "CP-B1")):
                env.runner.plug_in(vin_, cp, 1)
            env.runner.plug_in(UNLINKED, "CP-C1", 1)
            env.runner.plug_in(UNPAID, "CP-D1", 1)
            first = {cp: await _outcome(env, db, cp) for cp in ("CP-A1", "CP-A2", "CP-B1")}
            unlinked = await _outcome(env, db, "CP-C1")
            unpaid = await _outcome(env, db, "CP-D1")

            # Midday (past the morning's match window): a car whose cloud rate-limits its
            # reads, and one already at target.
            await asyncio.sleep(2.0)
            env.fake.faults.retry_after_s = 1
            slow_id = env.fake.world.vehicle(SLOW).smartcar_id
            env.fake.faults.force(
                "RATE_LIMIT:VEHICLE", times=3, endpoint="GET /charge", vehicle_id=slow_id
            )
            env.runner.plug_in(SLOW, "CP-E1", 1)
            at_target = await _plug_in(env, db, AT_TARGET, "CP-D2")
            slow = await _outcome(env, db, "CP-E1")

            # Afternoon: a driver unplugs early while the car's cloud rate-limits the final
            # battery read; another driver plugs in at the same moment at another site.
            early = await _plug_in(env, db, EARLY, "CP-B2")
            await env.wait_for(
                "SELECT count(*) = 1 FROM charging_sessions WHERE vin = $1 AND state = 'charging'",
                EARLY,
            )
            await env.runner.run_for(300)
            env.fake.faults.retry_after_s = 3
            early_id = env.fake.world.vehicle(EARLY).smartcar_id
            env.fake.faults.force(
                "RATE_LIMIT:VEHICLE", times=4, endpoint="GET /battery", vehicle_id=early_id
            )
            env.runner.unplug(EARLY)
            late = await _plug_in(env, db, LATE, "CP-A3")
            late_started_at = await env.wait_for(
                "SELECT remote_start_at FROM plug_ins WHERE id = $1", late["id"]
            )
            early_billed_at = await env.wait_for(
                "SELECT ended_at FROM charging_sessions WHERE vin = $1 AND state = 'completed'",
                EARLY,
                timeout=TIMEOUT * 3,
            )

            await env.wait_for(
                "SELECT count(*) >= 6 AND count(*) FILTER (WHERE ended_at IS NULL) = 0 "
                "FROM charging_sessions",
                timeout=TIMEOUT * 6,
            )
            sessions = [dict(r) for r in await db.fetch("SELECT * FROM charging_sessions")]
            transactions = [dict(r) for r in await db.fetch("SELECT * FROM transactions")]
            cables = list(env.runner.sessions)

    # Every plug-in got the outcome it should.
    assert {first[cp]["outcome"] for cp in first} <= {"matched", "confirmed"}
    assert "confirmed" in {first["CP-A1"]["outcome"], first["CP-A2"]["outcome"]}
    assert first["CP-B1"]["outcome"] == "matched"
    assert (unlinked["outcome"], unpaid["outcome"], at_target["outcome"]) == (
        "no_match",
        "unpaid",
        "at_target",
    )
    assert (slow["outcome"], slow["vin"]) == ("matched", SLOW)
    assert early["outcome"] == late["outcome"] == "matched"

    # 0 wrong starts: every transaction the chargers ran belongs to the cable it ran on,
    # and a car's own idTag only ever started the connector that car was plugged into.
    on_cable = {tx: cable for cable in cables for tx in cable.transaction_ids}
    assert len(on_cable) == len(transactions)
    by_tag = {s["id_tag"]: s["vin"] for s in sessions}
    for tx in transactions:
        cable = on_cable[tx["id"]]
        assert (cable.charger_id, cable.connector_id) == (tx["charge_point_id"], 1)
        if tx["id_tag"] in by_tag and tx["id_tag"].startswith("SC"):
            assert by_tag[tx["id_tag"]] == cable.vin
    # 0 wrong bills: each session's car is the car on its transaction's cable.
    billed = [s for s in sessions if s["state"] == "completed"]
    assert sorted(s["vin"] for s in billed) == sorted([A1, A2, B1, SLOW, EARLY, LATE])
    for session in billed:
        assert on_cable[session["transaction_id"]].vin == session["vin"]
        assert session["bill_amount"] > 0
    # A confirmation start that nobody confirmed would have been stopped, never billed.
    assert all(s["transaction_id"] is not None for s in billed)
    assert len({s["transaction_id"] for s in billed}) == len(billed)

    # Nobody waited on the unlinked car, the slow cloud or the rate-limited bill.
    assert _latency(first["CP-B1"]) < 3.0
    assert first["CP-B1"]["remote_start_at"] < unlinked["decided_at"]
    assert at_target["decided_at"] < slow["decided_at"]
    assert late_started_at < early_billed_at
    names = [e["event"] for e in logs]
    assert "bridge.confirmation_started" in names and "bridge.confirmation_succeeded" in names
    assert "bridge.no_match" in names and "bridge.payment_missing" in names
    assert "bridge.already_at_target" in names
    assert "bridge.task_failed" not in names and "bridge.event_failed" not in names


async def test_confirmation_start_nobody_confirms_is_stopped_and_billed_to_nobody(
    settings: Settings, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One linked car and an unlinked one plug in side by side: either may be on either
    # connector. Confirmation finds out; the start on the unlinked car's cable is stopped.
    world = World(
        vehicles=[car(A1, 0.70), car(UNLINKED, 0.40)],
        chargers=[charger("CP-A1"), charger("CP-A2")],
    )
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(settings, db, world, confirm_timeout=TIMEOUT / 3) as env:
            await env.link(await env.create_account(), A1)
            env.runner.plug_in(UNLINKED, "CP-A1", 1)
            env.runner.plug_in(A1, "CP-A2", 1)
            rival = _RivalReads(env, monkeypatch)
            await env.wait_for(
                "SELECT count(*) = 1 FROM charging_sessions WHERE state = 'completed'",
                timeout=TIMEOUT * 4,
            )
            assert env.bridge is not None
            ledger = env.bridge.client.ledger
            decision_calls = {p: ledger.made(p) for p in (1, 2)}
            await env.wait_for(
                "SELECT count(*) = 0 FROM transactions WHERE stop_received_at IS NULL"
                " AND charge_point_id = 'CP-A1'"
            )
            session = dict(await db.fetchrow("SELECT * FROM charging_sessions"))
            cables = list(env.runner.sessions)
            outcomes = dict(
                await db.fetch("SELECT charge_point_id, outcome FROM plug_ins ORDER BY id")
            )
    on_cable = {tx: cable.vin for cable in cables for tx in cable.transaction_ids}
    assert (session["charge_point_id"], session["vin"]) == ("CP-A2", A1)
    assert on_cable[session["transaction_id"]] == A1
    assert outcomes["CP-A2"] in ("matched", "confirmed")
    if outcomes["CP-A1"] == "unconfirmed":
        failed = [e for e in logs if e["event"] == "bridge.confirmation_failed"]
        assert failed and failed[0]["reason"] == "no_candidate_charging"
    else:
        assert outcomes["CP-A1"] == "no_match"
    # The plug-in that waits on the rival's confirmation reads nothing meanwhile (the car
    # is held, a read could not change its decision), so its own confirmation after that
    # one still fits its budget.
    assert rival.during and not any(rival.during), rival.during
    assert max(decision_calls.values()) <= 5, decision_calls


class _RivalReads:
    """The match reads each confirmation's rival made while that confirmation held the
    car: counted from a moment after the hold began (a read sent before it may land just
    after) to its release, hooked on the claim and release themselves, so no poll races
    them."""

    def __init__(self, env: BridgeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        assert env.bridge is not None
        self._ledger = env.bridge.client.ledger
        self.during: list[int] = []
        self._before: dict[int, int] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        claim, release = plug_ins.try_claim, plug_ins.release

        async def claimed(pool: Any, plug_in_id: int, vehicle_ids: list[int], kind: str) -> bool:
            won = await claim(pool, plug_in_id, vehicle_ids, kind)
            if won:
                rival = 3 - plug_in_id  # plug-ins 1 and 2
                self._timers[plug_in_id] = asyncio.get_running_loop().call_later(
                    0.3, lambda: self._before.__setitem__(plug_in_id, self._reads(rival))
                )
            return won

        async def released(pool: Any, plug_in_id: int, keep: int | None = None) -> None:
            timer = self._timers.pop(plug_in_id, None)
            if timer is not None:
                timer.cancel()  # a hold shorter than that counts nothing
            before = self._before.pop(plug_in_id, None)
            if before is not None:
                self.during.append(self._reads(3 - plug_in_id) - before)
            await release(pool, plug_in_id, keep=keep)

        monkeypatch.setattr(plug_ins, "try_claim", claimed)
        monkeypatch.setattr(plug_ins, "release", released)

    def _reads(self, plug_in_id: int) -> int:
        return self._ledger.decision_purposes.get(plug_in_id, {}).get("match", 0)


async def test_stop_that_arrives_while_the_bridge_is_down_is_billed_once_after_restart(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(A1, 0.30)], chargers=[charger("CP-A1")])
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(settings, db, world) as env:
            await env.link(await env.create_account(), A1)
            tx = await env.plug_in_until_charging(A1, "CP-A1")
            engine = env.bridge.engine
            await engine.close()  # the bridge is down; the central system keeps going
            env.runner.unplug(A1)
            await env.wait_for(
                "SELECT stop_received_at IS NOT NULL FROM transactions WHERE id = $1", tx
            )
            assert await db.fetchval("SELECT state FROM charging_sessions") == "charging"
            for _ in range(2):  # resumed twice: still billed once
                await engine.start()
                await env.wait_for("SELECT state = 'completed' FROM charging_sessions")
                await engine.close()
            await asyncio.sleep(0.2)
            session = await env.session(tx)
    reconciled = [e for e in logs if e["event"] == "bridge.session_reconciled"]
    assert len(reconciled) == 1
    assert session["stop_reason"] == "EVDisconnected" and session["grid_energy_wh"] > 0
    assert session["bill_amount"] is not None


async def test_an_event_the_bridge_cannot_handle_is_logged_and_the_next_plug_in_starts(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(A1, 0.60)], chargers=[charger("CP-A1")])
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(settings, db, world) as env:
            await env.link(await env.create_account(), A1)
            # A connector id the database cannot store: the handler fails on it.
            env.system.events.publish(
                ConnectorStatusChanged("CP-X", 2**40, "Preparing", "Available", "NoError", _now())
            )
            await env.plug_in_until_charging(A1, "CP-A1")
    failed = [e for e in logs if e["event"] == "bridge.event_failed"]
    assert [e["event_type"] for e in failed] == ["ConnectorStatusChanged"]
