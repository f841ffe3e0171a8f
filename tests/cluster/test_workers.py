"""`csms serve --workers N`: workers share the ports; the parent runs NATS and stops it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

import asyncpg
import httpx

from csms.cluster.nats_server import free_port
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger

CHARGERS = 16


async def test_two_workers_share_the_ports_and_route_commands_between_them(
    database_url: str, cluster_db: asyncpg.Connection, api_token: str, tmp_path: Path
) -> None:
    ocpp_port, http_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "CSMS_DATABASE_URL": database_url,
        "CSMS_DATA_DIR": str(tmp_path),
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": str(ocpp_port),
        "CSMS_HTTP_HOST": "127.0.0.1",
        "CSMS_HTTP_PORT": str(http_port),
    }
    env.pop("CSMS_NATS_URL", None)
    with log_path.open("wb") as log:
        parent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "serve", "--workers", "2", env=env, stderr=log
        )
    try:
        await _ready(http_port, cluster_db, workers=2)
        async with contextlib.AsyncExitStack() as stack:
            chargers = [
                await stack.enter_async_context(ocpp_charger(ocpp_port, f"CP-W{i}"))
                for i in range(CHARGERS)
            ]
            await asyncio.gather(*(c.boot() for c in chargers))
            ids = [c.id for c in chargers]
            async with asyncio.timeout(TIMEOUT):
                while True:
                    nodes = await cluster_db.fetch(
                        "SELECT connected_node FROM charge_points WHERE id = ANY($1) AND connected",
                        ids,
                    )
                    if len(nodes) == CHARGERS:
                        break
                    await asyncio.sleep(0.1)
            # The kernel spread them (SO_REUSEPORT): 16 on one worker would be 1 in 32,768.
            assert len({r["connected_node"] for r in nodes}) == 2
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                answers = await asyncio.gather(
                    *(
                        client.post(
                            f"http://127.0.0.1:{http_port}/api/charge-points/{cp}/commands/Reset",
                            json={"type": "Soft"},
                            headers={"Authorization": f"Bearer {api_token}"},
                        )
                        for cp in ids
                    )
                )
            assert [r.status_code for r in answers] == [200] * CHARGERS
    finally:
        parent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT * 2):
            status = await parent.wait()
    assert status == 0
    events = [
        json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")
    ]
    nats_url = next(e["nats_url"] for e in events if e["event"] == "cluster.workers_starting")
    port = int(nats_url.rsplit(":", 1)[1])
    with contextlib.suppress(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        raise AssertionError("the embedded NATS server outlived csms serve")
    assert sum(e["event"] == "csms.stopped" for e in events) == 2


async def _ready(http_port: int, db: asyncpg.Connection, workers: int) -> None:
    async with asyncio.timeout(TIMEOUT * 3), httpx.AsyncClient() as client:
        while await db.fetchval("SELECT count(*) FROM cluster_nodes") < workers:
            await asyncio.sleep(0.1)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{http_port}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
