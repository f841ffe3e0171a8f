"""Logs are a product surface: the real `csms serve` writes one JSON event per line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from datetime import datetime

import httpx

from tests.conftest import TIMEOUT
from tests.ocpp_client import raw_charger


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_writes_one_json_event_per_line_with_bound_context(
    database_url: str, db: object
) -> None:
    ocpp_port, http_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "CSMS_DATABASE_URL": database_url,
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": str(ocpp_port),
        "CSMS_HTTP_HOST": "127.0.0.1",
        "CSMS_HTTP_PORT": str(http_port),
        "CSMS_LOG_FORMAT": "json",
        "CSMS_LOG_LEVEL": "info",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(TIMEOUT * 3):
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{http_port}/healthz")).is_success:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        async with raw_charger(ocpp_port, "CP-LOG") as charger:
            await charger.call_ok(
                "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
            )
            await charger.call_ok(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "T",
                    "meterStart": 0,
                    "timestamp": "2026-11-25T10:00:00",
                },
            )
            await charger.send_raw("{broken")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT * 3):
            _, err = await process.communicate()
    assert process.returncode == 0
    events = [json.loads(line) for line in err.decode().splitlines()]
    names = [e["event"] for e in events]
    for expected in (
        "csms.started",
        "ocpp.connected",
        "ocpp.boot",
        "ocpp.transaction_started",
        "ocpp.nonconforming",
        "ocpp.bad_frame",
        "ocpp.disconnected",
        "csms.stopped",
    ):
        assert expected in names
    for event in events:
        assert event["timestamp"].endswith("Z")
        datetime.fromisoformat(event["timestamp"])
        assert event["event"].count(".") == 1
        if event["event"].startswith("ocpp.") and event["event"] != "ocpp.listening":
            assert event["charge_point_id"] == "CP-LOG", event
    started = next(e for e in events if e["event"] == "ocpp.transaction_started")
    assert (started["connector_id"], started["transaction_id"]) == (1, 1)
