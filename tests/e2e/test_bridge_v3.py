"""Plug-and-charge over Smartcar v3 specifics, end to end: long-running commands followed to
their outcome, a failed command execution, and a bridge still on v2.0 after the switch-off."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import structlog

from csms.config import Settings
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import one_car_linked

VIN_A = "5YJ3E1EA7KF000001"


def _events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


async def _until(logs: list[dict], name: str) -> dict:
    async with asyncio.timeout(TIMEOUT * 2):
        while not _events(logs, name):
            await asyncio.sleep(0.05)
    return _events(logs, name)[0]


@pytest.mark.smartcar_api("3")
async def test_long_running_start_and_stop_are_followed_and_the_session_completes(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.70) as env:
            (subscription,) = env.fake.v3.subscriptions.values()  # subscribed at link time
            assert subscription.vehicle_id == env.fake.world.vehicle(VIN_A).smartcar_id
            env.fake.v3.command_mode, env.fake.v3.command_duration_s = "pending", 0.5
            # The car waits for Smartcar's START: the charger alone does not make it draw.
            env.fake.world.vehicle(VIN_A).charging_enabled = False
            env.runner.plug_in(VIN_A, "CP-A", 1)
            tx = await env.wait_for(
                "SELECT transaction_id FROM charging_sessions WHERE state = 'completed'",
                timeout=40,
            )
            session = await env.session(tx)
    assert session["stop_reason"] == "target_soc" and session["grid_energy_wh"] > 0
    polls = [e for e in logs if e["event"] == "smartcar.request" and "/commands/exec_" in e["path"]]
    assert polls, "the 202 executions were never followed"
    confirmed = {e["action"] for e in _events(logs, "bridge.car_charge_confirmed")}
    assert "START" in confirmed
    assert not any(e["path"].startswith("/v2.0") for e in _events(logs, "smartcar.request"))


@pytest.mark.smartcar_api("3")
async def test_start_whose_execution_fails_is_reported_and_the_charger_side_still_closes(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.40) as env:
            env.fake.v3.command_mode, env.fake.v3.command_duration_s = "stream", 0.2
            env.fake.v3.execution_failures.append("VEHICLE_STATE:CHARGE_FAULT")
            env.fake.world.vehicle(VIN_A).charging_enabled = False
            env.runner.plug_in(VIN_A, "CP-A", 1)
            await env.wait_for("SELECT transaction_id FROM charging_sessions")
            failed = await _until(logs, "bridge.smartcar_failed")
            env.runner.unplug(VIN_A)
            await env.wait_for(
                "SELECT state = 'completed' FROM charging_sessions", timeout=TIMEOUT * 3
            )
    failures = [e for e in _events(logs, "bridge.smartcar_failed") if e.get("code")]
    assert failed and any(e["code"] == "CHARGE_FAULT" for e in failures)
    assert not _events(logs, "bridge.car_charge_confirmed")


@pytest.mark.smartcar_api("2")
async def test_bridge_on_v2_after_the_switch_off_says_once_that_v3_is_needed(
    settings: Settings, db: asyncpg.Connection
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with one_car_linked(settings, db, VIN_A, 0.40) as env:
            env.fake.v3.v2_retired = True  # Smartcar switches v2.0 off under a running bridge
            env.runner.plug_in(VIN_A, "CP-A", 1)
            retired = await _until(logs, "bridge.smartcar_version_retired")
            # A new driver linking now gets a clear page, not a generic failure.
            env.fake.login(VIN_A)
            page = await env.http.get(
                "/smartcar/connect",
                params={"account_id": await env.create_account()},
                follow_redirects=True,
            )
            await asyncio.sleep(0.5)
    assert page.status_code == 503 and "switch to v3" in page.text
    assert retired["api_version"] == "2" and "SMARTCAR_API_VERSION=3" in retired["action"]
    assert len(_events(logs, "bridge.smartcar_version_retired")) == 1
    assert await db.fetchval("SELECT count(*) FROM charging_sessions") == 0
