"""Keepalive: a silent dead peer is dropped; a quiet charger that answers pings is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import structlog

from csms.app import CentralSystem
from csms.config import Settings
from tests.conftest import TIMEOUT
from tests.ocpp_client import raw_charger

HANDSHAKE = (
    "GET /ocpp/{cp} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
)


@pytest.fixture
async def quick_keepalive(
    settings: Settings, db: asyncpg.Connection
) -> AsyncIterator[CentralSystem]:
    system = CentralSystem(replace(settings, ws_ping_interval=0.2, ws_ping_timeout=1.0))
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


async def test_peer_that_never_answers_is_dropped_after_the_timeout(
    quick_keepalive: CentralSystem,
) -> None:
    system = quick_keepalive
    with structlog.testing.capture_logs() as logs:
        # A charger whose network died: the upgrade completed, then nothing at all.
        reader, writer = await asyncio.open_connection("127.0.0.1", system.ocpp.port)
        writer.write(HANDSHAKE.format(cp="CP-DEAD").encode())
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
            while "CP-DEAD" not in system.ocpp.connections:
                await asyncio.sleep(0.02)
            while "CP-DEAD" in system.ocpp.connections:
                await asyncio.sleep(0.05)
        writer.close()
    dead = [e for e in logs if e["event"] == "ocpp.connection_dead"]
    assert dead and dead[0]["charge_point_id"] == "CP-DEAD"


async def test_quiet_charger_that_answers_pings_is_kept(quick_keepalive: CentralSystem) -> None:
    system = quick_keepalive
    async with raw_charger(system.ocpp.port, "CP-QUIET") as charger:
        await charger.call_ok(
            "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        # Three times the timeout with no OCPP traffic: the client library answers pings.
        await asyncio.sleep(3.0)
        assert "CP-QUIET" in system.ocpp.connections
        assert "currentTime" in await charger.call_ok("Heartbeat", {})
