"""`csms serve` with the bridge absent: its package cannot even be imported.

The server runs in a child process whose ``smartcar_bridge`` import fails, on a database
that never had the bridge's migrations; ``CSMS_PLUGINS=none`` says not to look for it.
Chargers boot, authorise and charge; the operator API, the dashboard and /metrics answer;
nothing of the bridge is mounted or described.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from csms.cluster.nats_server import free_port
from csms.db import operator_tokens
from tests.conftest import TIMEOUT, _with_database
from tests.ocpp_client import raw_charger

# Importing the bridge fails in the child, as it would were the package not installed.
_SERVE = """
import sys
sys.modules["smartcar_bridge"] = None
from csms.cli import main
sys.exit(main(["serve"]))
"""


def _read(path: Path) -> str:
    return path.read_text()


@pytest.fixture
async def core_only_database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"csms_core_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def serve(database_url: str, log_path: Path) -> AsyncIterator[tuple[int, int]]:
    ocpp_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "CSMS_DATABASE_URL": database_url,
        "CSMS_PLUGINS": "none",
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": str(ocpp_port),
        "CSMS_HTTP_HOST": "127.0.0.1",
        "CSMS_HTTP_PORT": str(http_port),
        # Were the bridge looked for, these would switch it on.
        "SMARTCAR_CLIENT_ID": "would-be-bridge",
    }
    env.pop("CSMS_NATS_URL", None)
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SERVE, env=env, stdout=log, stderr=log
        )
    try:
        async with asyncio.timeout(TIMEOUT * 2), httpx.AsyncClient() as client:
            while True:
                assert process.returncode is None, _read(log_path)
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{http_port}/readyz")).is_success:
                        break
                await asyncio.sleep(0.05)
        yield ocpp_port, http_port
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT * 2):
                await process.wait()


async def test_the_core_serves_and_charges_without_the_bridge(
    core_only_database: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "serve.log"
    async with serve(core_only_database, log_path) as (ocpp_port, http_port):
        db = await asyncpg.connect(core_only_database)
        try:
            token = await operator_tokens.create(db, "no-bridge")
            versions = [
                r["version"] for r in await db.fetch("SELECT version FROM schema_migrations")
            ]
            assert versions and not any(v.startswith("bridge/") for v in versions)
        finally:
            await db.close()
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{http_port}"
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=TIMEOUT) as api:
            created = await api.post("/api/id-tags", json={"id_tag": "TAG-CORE"})
            assert created.status_code == 201, created.text
            async with raw_charger(ocpp_port, "CP-CORE") as charger:
                boot = await charger.call_ok(
                    "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
                )
                assert boot["status"] == "Accepted"
                authorize = await charger.call_ok("Authorize", {"idTag": "TAG-CORE"})
                assert authorize["idTagInfo"]["status"] == "Accepted"
                tx = await charger.start_transaction(100, "2026-12-01T10:00:00Z", id_tag="TAG-CORE")
                await charger.call_ok(
                    "StopTransaction",
                    {"transactionId": tx, "meterStop": 1100, "timestamp": "2026-12-01T11:00:00Z"},
                )
                # The command port reaches it (this raw charger never answers: 504).
                reset = await api.post(
                    "/api/charge-points/CP-CORE/commands/Reset",
                    json={"type": "Soft"},
                    params={"timeout": 1},
                )
                assert reset.status_code == 504, reset.text
                call = await charger.receive()
                assert call[0] == 2 and call[2] == "Reset"

            transactions = await api.get("/api/transactions")
            assert [t["id"] for t in transactions.json()["items"]] == [tx]
            detail = await api.get(f"/api/transactions/{tx}")
            assert detail.status_code == 200, detail.text
            summary = (await api.get("/api/dashboard/summary")).json()
            assert summary["cards"] == [] and "bridge" not in summary
            assert summary["transactions"]["open"] == 0
            metrics = (await api.get("/metrics")).text
            assert "csms_transactions_active" in metrics and "smartcar" not in metrics
            assert "csms_bridge" not in metrics
            schema = (await api.get("/openapi.json")).json()
            assert not any(p.startswith(("/api/accounts", "/smartcar")) for p in schema["paths"])
            listing = schema["paths"]["/api/transactions"]["get"]["parameters"]
            assert not {"vin", "account_id"} & {p["name"] for p in listing}
            assert "bridge" not in {tag["name"] for tag in schema.get("tags", [])}
            # Not a "bridge is off" answer either: the core knows no such route.
            assert (await api.get("/api/accounts")).status_code == 404
            assert "bridge_off" not in (await api.get("/api/accounts")).text
    events = _read(log_path)
    assert "csms.started" in events and "bridge." not in events and "Traceback" not in events
