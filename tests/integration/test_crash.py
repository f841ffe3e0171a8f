"""kill -9 of ``csms serve`` mid-traffic: after restart and resend, nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.fuzz import stderr_problems
from tests.conftest import TIMEOUT

CHARGERS = 4
BASE = datetime(2026, 11, 25, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _serve(
    database_url: str, port: int, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``csms serve`` as its own process (killed at the end if still running)."""
    variables = {
        "CSMS_DATABASE_URL": database_url,
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": str(port),
        "CSMS_HTTP_HOST": "127.0.0.1",
        "CSMS_HTTP_PORT": "0",
        "CSMS_LOG_LEVEL": "info",
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "serve", env={**os.environ, **variables}, stderr=out
        )
    try:
        async with asyncio.timeout(TIMEOUT * 3):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                assert process.returncode is None, f"csms serve exited, see {log}"
                await asyncio.sleep(0.05)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(TIMEOUT * 3):
                await process.wait()


class Charger:
    """Start, three MeterValues, Stop, again and again; remembers what was acknowledged."""

    def __init__(self, index: int) -> None:
        self.id = f"CP-CRASH-{index}"
        self.index = index
        self.clock = 0
        self.values = 0
        self.messages = 0
        self.transaction_id: int | None = None
        self.step = 0
        self.acknowledged: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.unanswered: list[tuple[str, dict[str, Any]]] = []
        self.ws: ClientConnection | None = None

    def _timestamp(self) -> str:
        self.clock += 1
        return (BASE + timedelta(seconds=self.clock)).isoformat().replace("+00:00", "Z")

    def next_call(self) -> tuple[str, dict[str, Any]]:
        self.step = (self.step + 1) % 5
        if self.step == 1 or self.transaction_id is None:
            self.step = 1
            start = {"connectorId": 1, "idTag": "T", "meterStart": self.clock, "timestamp": ""}
            start["timestamp"] = self._timestamp()
            return "StartTransaction", start
        if self.step < 4:
            self.values += 1
            sampled = [{"value": f"{self.values}.{self.index}{k}"} for k in range(3)]
            return "MeterValues", {
                "connectorId": 1,
                "transactionId": self.transaction_id,
                "meterValue": [{"timestamp": self._timestamp(), "sampledValue": sampled}],
            }
        return "StopTransaction", {
            "transactionId": self.transaction_id,
            "meterStop": self.clock + 100,
            "timestamp": self._timestamp(),
        }

    async def connect(self, port: int) -> None:
        self.ws = await connect(
            f"ws://127.0.0.1:{port}/ocpp/{self.id}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            open_timeout=TIMEOUT,
        )

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        self.messages += 1
        message_id = f"{self.id}-{self.messages}"
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        async with asyncio.timeout(TIMEOUT):
            answer = json.loads(await self.ws.recv())
        assert answer[:2] == [3, message_id], answer
        self.acknowledged.append((action, payload, answer[2]))
        if action == "StartTransaction":
            self.transaction_id = answer[2]["transactionId"]
        elif action == "StopTransaction":
            self.transaction_id = None
        return answer[2]

    async def run_until_killed(self) -> None:
        while True:
            action, payload = self.next_call()
            try:
                await self.call(action, payload)
            except (ConnectionClosed, OSError):
                self.unanswered.append((action, payload))
                return

    async def resend_and_finish(self, port: int) -> None:
        """Reconnect; resend what went unanswered and the last answers, as if lost too."""
        await self.connect(port)
        lost = [(a, p) for a, p, _ in self.acknowledged[-3:]] + self.unanswered
        for action, payload in lost:
            await self.call(action, payload)
        if self.transaction_id is not None:
            await self.call("StopTransaction", self.next_stop())
        assert self.ws is not None
        await self.ws.close()

    def next_stop(self) -> dict[str, Any]:
        return {
            "transactionId": self.transaction_id,
            "meterStop": self.clock + 100,
            "timestamp": self._timestamp(),
        }


async def test_kill_9_mid_traffic_then_resend_loses_nothing_and_stores_nothing_twice(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port, log = _free_port(), tmp_path / "serve.log"
    chargers = [Charger(i) for i in range(CHARGERS)]
    async with _serve(database_url, port, log) as first:
        for charger in chargers:
            await charger.connect(port)
        running = [asyncio.create_task(c.run_until_killed()) for c in chargers]
        async with asyncio.timeout(TIMEOUT * 3):
            while min(len(c.acknowledged) for c in chargers) < 12:
                await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # mid-exchange: some calls stored, not answered
        await first.wait()
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*running)
    assert all(c.unanswered for c in chargers), "every charger had a call in flight"
    async with _serve(database_url, port, log):
        await asyncio.gather(*(c.resend_and_finish(port) for c in chargers))

    for charger in chargers:
        await _assert_stored_once(db, charger)
    assert stderr_problems(log.read_text().splitlines()) == []


async def _assert_stored_once(db: asyncpg.Connection, charger: Charger) -> None:
    acknowledged = charger.acknowledged
    values = {
        sampled["value"]
        for action, payload, _ in acknowledged
        if action == "MeterValues"
        for entry in payload["meterValue"]
        for sampled in entry["sampledValue"]
    }
    stored = Counter(
        r["raw_value"]
        for r in await db.fetch(
            "SELECT raw_value FROM meter_values WHERE charge_point_id = $1", charger.id
        )
    )
    assert set(stored) == values, "every acknowledged sampled value is stored"
    assert set(stored.values()) == {1}, "none twice"
    starts = {p["timestamp"] for a, p, _ in acknowledged if a == "StartTransaction"}
    rows = await db.fetch(
        "SELECT id, start_timestamp, stop_received_at FROM transactions WHERE charge_point_id = $1",
        charger.id,
    )
    assert len(rows) == len(starts), "one transaction per start, resent or not"
    answered = {answer["transactionId"] for a, _, answer in acknowledged if a == "StartTransaction"}
    assert {r["id"] for r in rows} == answered
    assert all(r["stop_received_at"] is not None for r in rows), "every session stopped"
    assert await db.fetchval("SELECT count(*) FROM orphan_stops") == 0
