"""The live dashboard: its JSON snapshot, its token guard, and the page in a real browser."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import httpx

from csms.app import CentralSystem
from csms.config import Settings
from csms.db import id_tags
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger
from tests.ops.conftest import report_status, sample_energy, start_charging, stop_charging

VIN = "WVWZZZE1ZMP012345"
MASKED_VIN = "***********012345"


async def link_vehicle_session(db: asyncpg.Connection, charge_point_id: str, tx: int) -> None:
    """What the bridge records when it matched a car and started the transaction."""
    account = await db.fetchval("INSERT INTO accounts (name) VALUES ('Ada') RETURNING id")
    link = await db.fetchval(
        "INSERT INTO smartcar_links (account_id, smartcar_user_id, access_token_enc,"
        " refresh_token_enc, access_expires_at, refresh_expires_at)"
        " VALUES ($1, 'user-1', '\\x00', '\\x00', now(), now()) RETURNING id",
        account,
    )
    vehicle = await db.fetchval(
        "INSERT INTO vehicles (smartcar_vehicle_id, link_id, account_id, vin, make, model, year,"
        " id_tag) VALUES ('sc-1', $1, $2, $3, 'VOLKSWAGEN', 'ID.3', 2022, 'SC-TAG') RETURNING id",
        link,
        account,
        VIN,
    )
    await db.execute(
        "INSERT INTO charging_sessions (charge_point_id, connector_id, vehicle_id, account_id,"
        " vin, id_tag, transaction_id, state, target_soc_percent, last_soc_percent)"
        " VALUES ($1, 1, $2, $3, $4, 'SC-TAG', $5, 'charging', 80, 61)",
        charge_point_id,
        vehicle,
        account,
        VIN,
        tx,
    )


async def test_dashboard_api_refuses_requests_without_a_token(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    response = await http.get("/api/dashboard")
    assert response.status_code == 401
    assert (await http.get("/")).status_code == 200  # the page itself holds no data


async def test_dashboard_snapshot_shows_live_status_energy_vehicle_and_events(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient, api_token: str
) -> None:
    await id_tags.upsert(system.pool, "TAG-D")
    async with (
        ocpp_charger(system.ocpp.port, "CP-D1") as first,
        ocpp_charger(system.ocpp.port, "CP-D2") as second,
    ):
        tx = await start_charging(first, "TAG-D", 10_000)
        await sample_energy(first, tx, 12_345, 58)
        await link_vehicle_session(db, "CP-D1", tx)
        done = await start_charging(second, "TAG-D", 0)
        await stop_charging(second, done, 500)
        await report_status(second, 1, "Available")

        response = await http.get(
            "/api/dashboard", headers={"Authorization": f"Bearer {api_token}"}
        )

    assert response.status_code == 200
    body = response.json()
    chargers = {c["id"]: c for c in body["chargers"]}
    assert set(chargers) == {"CP-D1", "CP-D2"}
    assert all(c["connected"] for c in chargers.values())
    assert [(c["connector_id"], c["status"]) for c in chargers["CP-D1"]["connectors"]] == [
        (1, "Charging")
    ]
    assert chargers["CP-D2"]["connectors"][0]["status"] == "Available"
    [active] = body["transactions"]
    assert active["transaction_id"] == tx
    assert active["energy_wh"] == 2_345
    assert active["soc_percent"] == 58  # the charger's own SoC, fresher than the car's 61
    assert active["vehicle"] == {"vin": MASKED_VIN, "name": "2022 VOLKSWAGEN ID.3"}
    assert [s["state"] for s in body["sessions"]] == ["charging"]
    types = [e["type"] for e in body["events"]]
    assert types[0] == "ConnectorStatusChanged"  # newest first
    assert {"ChargePointConnected", "TransactionStarted", "TransactionStopped"} <= set(types)
    assert "MeterSampled" not in types  # too chatty for the list; folded into energy/SoC
    assert VIN not in response.text


async def test_dashboard_after_a_restart_reads_energy_from_the_database(
    settings: Settings, db: asyncpg.Connection, api_token: str
) -> None:
    before = CentralSystem(settings)
    await before.start()
    try:
        await id_tags.upsert(before.pool, "TAG-R")
        async with ocpp_charger(before.ocpp.port, "CP-R") as cp:
            tx = await start_charging(cp, "TAG-R", 5_000)
            await sample_energy(cp, tx, 6_200, 30)
    finally:
        await before.stop()  # flushes the meter values; the transaction stays open

    after = CentralSystem(settings)
    await after.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{after.http_port}") as http:
            response = await http.get(
                "/api/dashboard", headers={"Authorization": f"Bearer {api_token}"}
            )
    finally:
        await after.stop()
    body = response.json()
    [charger] = body["chargers"]
    assert charger["connected"] is False
    assert charger["connectors"][0]["status"] == "Charging"  # the last status stored
    [active] = body["transactions"]
    assert (active["transaction_id"], active["energy_wh"]) == (tx, 1_200)


async def run_chromium(chromium: Path, profile: Path, *args: str) -> bytes:
    """Run headless Chromium in a subprocess without blocking the loop serving the app."""
    process = await asyncio.create_subprocess_exec(
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        "--virtual-time-budget=5000",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(6 * TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout


async def test_dashboard_page_renders_live_chargers_in_headless_chromium(
    system: CentralSystem,
    db: asyncpg.Connection,
    api_token: str,
    chromium: Path,
    tmp_path: Path,
) -> None:
    await id_tags.upsert(system.pool, "TAG-B")
    url = f"http://127.0.0.1:{system.http_port}/?token={api_token}"
    screenshot = tmp_path / "dashboard.png"
    async with (
        ocpp_charger(system.ocpp.port, "CP-BROWSER-1") as first,
        ocpp_charger(system.ocpp.port, "CP-BROWSER-2") as second,
    ):
        tx = await start_charging(first, "TAG-B", 1_000)
        await sample_energy(first, tx, 4_500, 40)
        await link_vehicle_session(db, "CP-BROWSER-1", tx)
        await second.boot()
        await report_status(second, 1, "Available")

        dom = (await run_chromium(chromium, tmp_path / "dom", "--dump-dom", url)).decode()
        await run_chromium(chromium, tmp_path / "shot", f"--screenshot={screenshot}", url)

    assert 'data-charger-id="CP-BROWSER-1"' in dom
    assert 'data-charger-id="CP-BROWSER-2"' in dom
    assert re.search(r'class="status status-Charging">Charging<', dom)
    assert re.search(r'class="status status-Available">Available<', dom)
    assert "3.50 kWh" in dom  # 4500 - 1000 Wh
    assert MASKED_VIN in dom and VIN not in dom
    assert "Transaction Started" in dom  # the recent-events list
    assert 'id="login" class="login" hidden' in dom  # the token from ?token= was accepted
    assert api_token not in dom
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


async def test_dashboard_page_asks_for_a_token_when_the_stored_one_is_refused(
    system: CentralSystem, db: asyncpg.Connection, chromium: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{system.http_port}/?token=not-a-real-token"
    dom = (await run_chromium(chromium, tmp_path / "dom", "--dump-dom", url)).decode()
    assert "The token was refused" in dom
    assert 'id="content" hidden' in dom
