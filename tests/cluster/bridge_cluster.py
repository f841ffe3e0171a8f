"""The bridge in a real cluster on 127.0.0.1: ``csms serve`` nodes with the bridge on, the
embedded NATS, one PostgreSQL, the Smartcar fake over HTTP and simulated chargers sharing
one World; chargers reach the nodes through a round-robin TCP balancer, as behind a load
balancer, so a charger whose node dies reconnects to another."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from csms.cluster.nats_server import EmbeddedNats, free_port
from simulators.smartcar_fake.server import RunningFake, run_smartcar_fake
from simulators.smartcar_fake.state import FakeConfig
from simulators.world import World
from simulators.world_runner import WorldRunner
from tests.cluster.conftest import Node, _node_env
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import AMT, CLIENT_ID, CLIENT_SECRET, SECRET_KEY, SPEED

BRIDGE_TABLES = "bridge_leases, bridge_rate_buckets, bridge_vehicle_holds, smartcar_app_tokens"


class Balancer:
    """Round-robin TCP to the nodes; a node that refuses the connection (dead) is skipped."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.ports)):
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            pipes = [
                asyncio.create_task(_copy(reader, upstream[1])),
                asyncio.create_task(_copy(upstream[0], writer)),
            ]
            self._pipes.update(pipes)
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                    self._pipes.discard(pipe)
                for stream in (writer, upstream[1]):
                    with contextlib.suppress(Exception):
                        stream.close()
            return
        writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@dataclass
class BridgeCluster:
    nodes: list[Node]
    runner: WorldRunner
    smartcar: RunningFake
    db: asyncpg.Connection
    token: str

    @property
    def fake(self) -> Any:
        return self.smartcar.fake

    def client(self, node: Node) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=node.http, timeout=TIMEOUT, headers={"Authorization": f"Bearer {self.token}"}
        )

    async def link(self, node: Node, *vins: str) -> None:
        """An account with valid payment, and its cars through Smartcar Connect."""
        async with self.client(node) as http:
            response = await http.post(
                "/api/accounts",
                json={"name": "Driver", "payment_status": "valid", "tariff_per_kwh": "0.30"},
            )
            assert response.status_code == 201, response.text
            self.fake.login(*vins)
            response = await http.get(
                "/smartcar/connect",
                params={"account_id": response.json()["id"]},
                follow_redirects=True,
            )
            assert response.status_code == 200, response.text

    async def wait_for(self, query: str, *args: object, timeout: float = TIMEOUT * 3) -> Any:
        async with asyncio.timeout(timeout):
            while not (value := await self.db.fetchval(query, *args)):
                for node in self.nodes:
                    process = node.process
                    assert process is None or process.returncode in (None, -9), node.logs()[-20:]
                await asyncio.sleep(0.05)
        return value

    def node_by_id(self, node_id: str) -> Node:
        return next(node for node in self.nodes if node.node_id == node_id)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for node in self.nodes for e in node.logs() if e.get("event") == name]


def _bridge_env(smartcar: RunningFake, redirect: str, **extra: str) -> dict[str, str]:
    return {
        "SMARTCAR_CLIENT_ID": CLIENT_ID,
        "SMARTCAR_CLIENT_SECRET": CLIENT_SECRET,
        "SMARTCAR_REDIRECT_URI": redirect,
        "CSMS_SECRET_KEY": SECRET_KEY,
        "SMARTCAR_API_URL": smartcar.api_url,
        "SMARTCAR_AUTH_URL": smartcar.auth_url,
        "SMARTCAR_CONNECT_URL": smartcar.connect_url,
        "SMARTCAR_MANAGEMENT_TOKEN": AMT,
        "SMARTCAR_API_VERSION": "3",
        "SMARTCAR_V3_API_URL": smartcar.v3_api_url,
        "SMARTCAR_MANAGEMENT_API_URL": smartcar.management_url,
        "SMARTCAR_IAM_URL": smartcar.iam_url,
        "SMARTCAR_WEBHOOK_ID": smartcar.fake.webhooks.webhook_id,
        "SMARTCAR_COMMAND_TIMEOUT": str(TIMEOUT),
        "SMARTCAR_RATE_BUCKET_SIZE": "100000",
        "CSMS_BRIDGE_POLL_INTERVAL": "1",
        "CSMS_BRIDGE_START_TIMEOUT": str(TIMEOUT),
        "CSMS_BRIDGE_MATCH_GIVE_UP_AFTER": str(TIMEOUT),
        "CSMS_BRIDGE_MATCH_WINDOW": "3",
        "CSMS_BRIDGE_MATCH_SETTLE": "0.3",
        "CSMS_BRIDGE_CONFIRM_TIMEOUT": str(TIMEOUT / 2),
        "CSMS_BRIDGE_CONFIRM_POLL": "0.2",
        "CSMS_BRIDGE_DECISION_READS": "50",
        **extra,
    }


@contextlib.asynccontextmanager
async def bridge_cluster(
    database_url: str,
    db: asyncpg.Connection,
    token: str,
    world: World,
    folder: Path,
    *,
    nodes: int = 3,
    charger_node: int | None = None,
    **extra: str,
) -> AsyncIterator[BridgeCluster]:
    """``charger_node``: every charger connects to that node; None: through the balancer."""
    await db.execute(f"TRUNCATE charger_ownership, cluster_nodes, {BRIDGE_TABLES}")
    nats = EmbeddedNats(folder, port=free_port())
    nats.start()
    envs = [_node_env(database_url, nats.url, {}) for _ in range(nodes)]
    redirect = f"http://127.0.0.1:{envs[0]['CSMS_HTTP_PORT']}/smartcar/callback"
    config = FakeConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=(redirect,))
    started: list[Node] = []
    balancer: Balancer | None = None
    try:
        async with run_smartcar_fake(world, config=config) as smartcar:
            smartcar.fake.v3.v2_retired = True
            bridge = _bridge_env(smartcar, redirect, **extra)
            started = [
                Node(f"node{n}", {**env, **bridge}, folder / f"node{n}.log")
                for n, env in enumerate(envs)
            ]
            await asyncio.gather(*(node.start() for node in started))
            if charger_node is None:
                balancer = Balancer([node.ocpp_port for node in started])
                await balancer.start()
                ocpp_port = balancer.port
            else:
                ocpp_port = started[charger_node].ocpp_port
            runner = WorldRunner(
                f"ws://127.0.0.1:{ocpp_port}/ocpp",
                world=world,
                speed=SPEED,
                seed=3,
                smartcar_port=None,
                charger_config={"MeterValueSampleInterval": "60"},
            )
            async with runner:
                await runner.wait_booted(TIMEOUT)
                yield BridgeCluster(started, runner, smartcar, db, token)
    finally:
        await asyncio.gather(*(node.stop() for node in started))
        if balancer is not None:
            await balancer.close()
        nats.close()
