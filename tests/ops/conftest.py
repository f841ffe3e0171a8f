"""Fixtures for the operations tests: an HTTP client on the running system, chargers."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus

from csms.app import CentralSystem
from tests.conftest import TIMEOUT
from tests.ocpp_client import TestCharger

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
async def http(system: CentralSystem) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{system.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        yield client


async def report_status(cp: TestCharger, connector_id: int, status: str) -> None:
    await cp.call(
        call.StatusNotification(
            connector_id=connector_id,
            error_code=ChargePointErrorCode.no_error,
            status=ChargePointStatus(status),
            timestamp=now_iso(),
        )
    )


async def start_charging(cp: TestCharger, id_tag: str, meter_start_wh: int) -> int:
    """Boot, go Available → Charging on connector 1 and start a transaction; its id."""
    await cp.boot()
    await report_status(cp, 1, "Available")
    started = await cp.call(
        call.StartTransaction(
            connector_id=1, id_tag=id_tag, meter_start=meter_start_wh, timestamp=now_iso()
        )
    )
    await report_status(cp, 1, "Charging")
    return started.transaction_id


async def sample_energy(cp: TestCharger, transaction_id: int, energy_wh: int, soc: int) -> None:
    sampled = [
        {"value": str(energy_wh)},
        {"value": str(soc), "measurand": "SoC", "unit": "Percent"},
    ]
    await cp.call(
        call.MeterValues(
            connector_id=1,
            transaction_id=transaction_id,
            meter_value=[{"timestamp": now_iso(), "sampledValue": sampled}],
        )
    )


async def stop_charging(cp: TestCharger, transaction_id: int, meter_stop_wh: int) -> None:
    await cp.call(
        call.StopTransaction(
            meter_stop=meter_stop_wh, timestamp=now_iso(), transaction_id=transaction_id
        )
    )
    await report_status(cp, 1, "Finishing")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Chromium at /usr/bin/chromium, installed by scripts/ensure-chromium if missing."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        result = subprocess.run(
            [str(ROOT / "scripts" / "ensure-chromium")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode == 0 and CHROMIUM.exists():
            return CHROMIUM
        # The script's last line says why, in one line: that is the skip reason.
        lines = result.stderr.strip().splitlines() or [f"exited {result.returncode}"]
        pytest.skip(f"no Chromium: {lines[-1]}")
    pytest.skip("Chromium install (scripts/ensure-chromium) took longer than 15 minutes")
