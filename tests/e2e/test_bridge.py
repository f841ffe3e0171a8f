"""Plug-and-charge end to end: link once, plug in, and the session runs itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import structlog

from csms.config import Settings
from csms.domain.events import TransactionStopped
from simulators.world import World
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import bridge_env, car, charger, one_car_linked

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


async def _completed_session(env: object, timeout: float = 30) -> dict:
    tx = await env.wait_for(  # type: ignore[attr-defined]
        "SELECT transaction_id FROM charging_sessions WHERE state = 'completed'", timeout=timeout
    )
    return await env.session(tx)  # type: ignore[attr-defined]


async def test_car_without_valid_payment_is_left_to_the_rfid_flow(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(VIN_A, 0.40)], chargers=[charger("CP-A")])
    with structlog.testing.capture_logs() as logs:
        async with bridge_env(settings, db, world) as env:
            account = await env.create_account("suspended")
            await env.link(account, VIN_A)
            env.runner.plug_in(VIN_A, "CP-A", 1)
            await env.wait_for(
                "SELECT status = 'Preparing' FROM connectors WHERE charge_point_id = 'CP-A' "
                "AND connector_id = 1"
            )
            async with asyncio.timeout(TIMEOUT):
                while not _events(logs, "bridge.payment_missing"):
                    await asyncio.sleep(0.05)
            # The car's idTag is blocked at the chargers while payment is not valid.
            status = await db.fetchval("SELECT status FROM id_tags")
    assert status == "Blocked"
    assert await db.fetchval("SELECT count(*) FROM charging_sessions") == 0
    assert await db.fetchval("SELECT count(*) FROM transactions") == 0


async def test_car_already_at_target_gets_no_session(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.85) as env:
            env.runner.plug_in(VIN_A, "CP-A", 1)
            async with asyncio.timeout(TIMEOUT):
                while not _events(logs, "bridge.already_at_target"):
                    await asyncio.sleep(0.05)
    assert _events(logs, "bridge.already_at_target")[0]["soc_percent"] == 85.0
    assert await db.fetchval("SELECT count(*) FROM charging_sessions") == 0


async def test_two_cars_plugged_in_side_by_side_are_told_apart_by_a_confirmation_start(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(
        vehicles=[car(VIN_A, 0.40), car(VIN_B, 0.40)],
        chargers=[charger("CP-A"), charger("CP-B")],
    )
    with structlog.testing.capture_logs() as logs:
        # The production read budget: 4 cars per decision, re-reads keeping a reserve. A
        # confirmation takes the match's reading as the cars' state before its start when
        # it is at most 3 polls old; production polls every 10 s, so it is, and the
        # decision pays for the last round only (2 match reads + 2).
        async with bridge_env(settings, db, world, decision_reads=4, confirm_poll=1.0) as env:
            await env.link(await env.create_account(), VIN_A, VIN_B)
            env.runner.plug_in(VIN_A, "CP-A", 1)
            env.runner.plug_in(VIN_B, "CP-B", 1)
            await env.wait_for(
                "SELECT count(*) = 2 FROM charging_sessions WHERE state = 'charging'",
                timeout=TIMEOUT * 3,
            )
            rows = await db.fetch("SELECT charge_point_id, vin FROM charging_sessions ORDER BY 1")
    assert [(r["charge_point_id"], r["vin"]) for r in rows] == [("CP-A", VIN_A), ("CP-B", VIN_B)]
    assert _events(logs, "bridge.ambiguous_match")
    assert _events(logs, "bridge.confirmation_succeeded")


async def test_simultaneous_plug_ins_at_two_sites_each_get_the_right_car(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(
        vehicles=[car(VIN_A, 0.70, lat=52.0, lon=13.0), car(VIN_B, 0.72, lat=48.1, lon=11.5)],
        chargers=[charger("CP-A", lat=52.0, lon=13.0), charger("CP-B", lat=48.1, lon=11.5)],
    )
    async with bridge_env(settings, db, world) as env:
        await env.link(await env.create_account(), VIN_A, VIN_B)
        await env.locate("CP-A", 52.0, 13.0)
        await env.locate("CP-B", 48.1, 11.5)
        env.runner.plug_in(VIN_A, "CP-A", 1)
        env.runner.plug_in(VIN_B, "CP-B", 1)
        await env.wait_for(
            "SELECT count(*) = 2 FROM charging_sessions WHERE state = 'completed'", timeout=40
        )
        rows = await db.fetch(
            "SELECT charge_point_id, vin, stop_reason FROM charging_sessions ORDER BY 1"
        )
    assert [(r["charge_point_id"], r["vin"], r["stop_reason"]) for r in rows] == [
        ("CP-A", VIN_A, "target_soc"),
        ("CP-B", VIN_B, "target_soc"),
    ]


async def test_driver_unplugging_early_closes_the_session_from_the_charger(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.30) as env:
            await env.plug_in_until_charging(VIN_A)
            await env.runner.run_for(600)
            env.runner.unplug(VIN_A)
            session = await _completed_session(env)
    assert session["stop_reason"] == "EVDisconnected"
    assert session["grid_energy_wh"] > 0
    assert session["end_soc_percent"] < 80
    assert _events(logs, "bridge.stopped_by_charger")


async def test_access_token_expiring_mid_session_is_refreshed(
    settings: Settings, db: asyncpg.Connection
) -> None:
    # v2.0: the per-vehicle token lives 2 s; v3: the application token does.
    ttl = {"access_token_ttl_s": 2.0, "app_token_ttl_s": 2.0}
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.70, **ttl) as env:
            env.runner.plug_in(VIN_A, "CP-A", 1)
            session = await _completed_session(env)
            version = env.api_version
    assert session["stop_reason"] == "target_soc"
    if version == "2":
        assert _events(logs, "bridge.token_refreshed")
    else:
        assert len(_events(logs, "bridge.app_token_renewed")) >= 2
    assert not _events(logs, "bridge.reauth_required")
    assert not _events(logs, "bridge.app_token_refused")


async def test_refused_refresh_marks_the_link_and_the_charger_keeps_working(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.30) as env:
            await env.plug_in_until_charging(VIN_A)
            if env.api_version == "2":
                # The driver revoked us at Smartcar: every refresh is refused from now on.
                for token in list(env.fake.tokens.refresh_tokens):
                    env.fake.tokens.revoke_refresh_token(token)
                env.fake.tokens.expire_access_tokens()
            else:
                # v3: the operator's secret was rotated away in the Dashboard, so every
                # application token request is refused; no driver action would help.
                env.fake.v3.client_secret = "rotated-in-the-dashboard"
                env.fake.v3.expire_app_tokens()
            # Far from its target, the session reads the car no more (SoC is predicted from
            # the meter): the final reading after the unplug is the call that finds out.
            env.runner.unplug(VIN_A)
            session = await _completed_session(env)
            version = env.api_version
            if version == "2":
                await env.wait_for(
                    "SELECT status = 'reauth_required' FROM smartcar_links", timeout=TIMEOUT * 2
                )
    assert _events(logs, "bridge.reauth_required" if version == "2" else "bridge.app_token_refused")
    # Billed from the charger's meter even without the car's final SoC.
    assert session["bill_basis"] == "charger" and session["grid_energy_wh"] > 0


async def test_smartcar_429_and_5xx_bursts_are_retried_and_the_session_completes(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.70) as env:
            env.fake.faults.retry_after_s = 1
            env.fake.faults.force("RATE_LIMIT:VEHICLE", times=2, endpoint="GET /charge")
            env.fake.faults.force("SERVER:INTERNAL", times=3, endpoint="GET /battery")
            env.runner.plug_in(VIN_A, "CP-A", 1)
            session = await _completed_session(env, timeout=40)
    assert session["stop_reason"] == "target_soc"
    failures = [e for e in logs if e["event"] == "smartcar.request_failed"]
    assert {e["status"] for e in failures} >= {429, 500}


async def test_restart_mid_session_resumes_monitoring_and_stops_at_target(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.60) as env:
            await env.plug_in_until_charging(VIN_A)
            await env.restart()
            session = await _completed_session(env, timeout=40)
    assert _events(logs, "bridge.session_resumed")
    assert session["stop_reason"] == "target_soc"
    assert session["end_soc_percent"] >= 80


async def test_new_transaction_on_the_connector_closes_a_session_whose_stop_never_came(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.30) as env:
            tx = await env.plug_in_until_charging(VIN_A)
            # The charger lost its transaction (no StopTransaction will ever come) and
            # starts another one on the same connector.
            # The central system closes the forgotten one (tests/integration/
            # test_transaction_integrity.py) and says so; the bridge rests on that.
            env.system.events.publish(
                TransactionStopped(
                    "CP-A",
                    tx,
                    0,
                    "Superseded",
                    datetime.now(UTC),
                    closed_by_central_system=True,
                    superseded_by=tx + 1000,
                )
            )
            await env.wait_for(
                "SELECT state = 'failed' FROM charging_sessions WHERE transaction_id = $1", tx
            )
            row = await db.fetchrow(
                "SELECT stop_reason, last_error, ended_at FROM charging_sessions "
                "WHERE transaction_id = $1",
                tx,
            )
    assert row["stop_reason"] == "Superseded" and row["ended_at"] is not None
    assert str(tx + 1000) in row["last_error"]
    assert _events(logs, "bridge.session_superseded")
