"""The Smartcar fake and the simulated charger see the same car: what Smartcar reports over
HTTP matches what the central system stores, and Smartcar START/STOP moves the charger."""

from __future__ import annotations

import asyncpg
import httpx

from csms.app import CentralSystem
from csms.db import id_tags
from simulators.smartcar_fake.testing import connect_vehicles
from simulators.world_runner import WorldRunner
from tests.conftest import TIMEOUT
from tests.e2e.test_world import csms_url, wait_until

REMOTE_TAG = "BRIDGE-0001"
STATUS = "SELECT status FROM connectors WHERE charge_point_id = $1 AND connector_id = 1"


async def test_smartcar_sees_the_session_the_charger_meters_and_stop_start_reach_the_charger(
    system: CentralSystem, db: asyncpg.Connection, api_token: str
) -> None:
    runner = WorldRunner(
        csms_url(system), chargers=1, vehicles=1, connectors=1, dc_share=0.0, speed=60.0, seed=5
    )
    (vin,) = runner.world.vehicles
    (charger_id,) = runner.charge_points
    vehicle = runner.world.vehicle(vin)
    vehicle.soc = 0.3
    await id_tags.upsert(db, REMOTE_TAG)  # type: ignore[arg-type]
    async with runner, httpx.AsyncClient(timeout=TIMEOUT) as client:
        assert runner.smartcar is not None
        tokens = await connect_vehicles(client, runner.smartcar, vin)
        car_url = f"{runner.smartcar.api_url}/vehicles/{vehicle.smartcar_id}"
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}

        async def smartcar(path: str) -> dict[str, object]:
            response = await client.get(f"{car_url}{path}", headers=headers)
            response.raise_for_status()
            body: dict[str, object] = response.json()
            return body

        async def command(action: str) -> None:
            response = await client.post(
                f"{car_url}/charge", headers=headers, json={"action": action}
            )
            assert response.status_code == 200, response.text

        await runner.wait_booted(TIMEOUT)
        session = runner.plug_in(vin, charger_id, 1)  # no card: waits for a remote start
        await wait_until(db, f"{STATUS} AND status = 'Preparing'", charger_id)
        assert await smartcar("/charge") == {"isPluggedIn": True, "state": "NOT_CHARGING"}

        # What the bridge will do: a RemoteStartTransaction through the operator command API.
        answer = await client.post(
            f"http://127.0.0.1:{system.http_port}/api/charge-points/{charger_id}"
            "/commands/RemoteStartTransaction",
            json={"connectorId": 1, "idTag": REMOTE_TAG},
            headers={"Authorization": f"Bearer {api_token}"},
        )
        assert answer.status_code == 200 and answer.json()["status"] == "Accepted"
        await wait_until(db, f"{STATUS} AND status = 'Charging'", charger_id)
        await runner.run_for(120)
        assert await smartcar("/charge") == {"isPluggedIn": True, "state": "CHARGING"}
        battery = await smartcar("/battery")
        # The car keeps charging while we read: the same SoC within a tick's worth.
        assert abs(battery["percentRemaining"] - vehicle.soc) < 0.002  # type: ignore[operator]
        assert vehicle.soc > 0.3

        await command("STOP")
        await wait_until(db, f"{STATUS} AND status = 'SuspendedEV'", charger_id)
        paused_wh = session.grid_wh
        await runner.run_for(60)
        assert session.grid_wh == paused_wh  # the car takes nothing while stopped
        assert await smartcar("/charge") == {"isPluggedIn": True, "state": "NOT_CHARGING"}

        await command("START")
        await wait_until(db, f"{STATUS} AND status = 'Charging'", charger_id)
        await runner.run_for(60)
        assert session.grid_wh > paused_wh

        runner.unplug(vin)
        await wait_until(db, "SELECT stop_reason FROM transactions")
        assert await smartcar("/charge") == {"isPluggedIn": False, "state": "NOT_CHARGING"}

    tx = await db.fetchrow("SELECT * FROM transactions")
    assert tx["id_tag"] == REMOTE_TAG and tx["stop_reason"] == "EVDisconnected"
    metered_wh = tx["meter_stop_wh"] - tx["meter_start_wh"]
    assert abs(metered_wh - session.grid_wh) <= 1
    assert 0.85 <= session.battery_wh / metered_wh <= 1.0
