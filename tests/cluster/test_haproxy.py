"""deploy/haproxy.cfg in front of two nodes: chargers and operators through one address."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from csms.cluster.nats_server import free_port
from tests.cluster.conftest import Node, StartNodes
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy")

pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (scripts/ensure-haproxy installs it)"
)


@contextlib.asynccontextmanager
async def _haproxy(nodes: list[Node], folder: Path) -> AsyncIterator[tuple[int, int]]:
    assert HAPROXY is not None
    ocpp_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "CSMS_LB_OCPP_BIND": f"127.0.0.1:{ocpp_port}",
        "CSMS_LB_TLS_BIND": f"127.0.0.1:{free_port()}",
        "CSMS_LB_HTTP_BIND": f"127.0.0.1:{http_port}",
        "CSMS_LB_STATS_SOCKET": str(folder / "haproxy.sock"),
    }
    for index, node in enumerate(nodes, start=1):
        env[f"CSMS_NODE{index}_HOST"] = "127.0.0.1"
        env[f"CSMS_NODE{index}_OCPP_PORT"] = str(node.ocpp_port)
        env[f"CSMS_NODE{index}_TLS_PORT"] = str(free_port())  # no TLS in this test
        env[f"CSMS_NODE{index}_HTTP_PORT"] = str(node.http_port)
    process = await asyncio.create_subprocess_exec(
        HAPROXY,
        "-db",
        "-f",
        str(CONFIG),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(folder / "haproxy.log").open("wb"),
    )
    try:
        await _until_up(f"http://127.0.0.1:{http_port}/readyz", process)
        yield ocpp_port, http_port
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


async def _until_up(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(TIMEOUT), httpx.AsyncClient() as client:
        while True:
            assert process.returncode is None, "haproxy exited: see haproxy.log"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)


async def test_chargers_and_commands_through_haproxy_survive_a_node_stopping(
    start_nodes: StartNodes, api_token: str, tmp_path: Path
) -> None:
    nodes = await start_nodes(2)
    async with _haproxy(nodes, tmp_path) as (ocpp_port, http_port):
        api = f"http://127.0.0.1:{http_port}"
        headers = {"Authorization": f"Bearer {api_token}"}
        url = f"{api}/api/charge-points/CP-LB/commands/Reset"
        async with ocpp_charger(ocpp_port, "CP-LB") as charger:
            await charger.boot()
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                # Round robin: these reach both nodes, one of which routes over NATS.
                answers = [
                    await client.post(url, json={"type": "Soft"}, headers=headers) for _ in range(4)
                ]
            assert [r.status_code for r in answers] == [200] * 4
        holder = next(
            n
            for n in nodes
            if any(
                e.get("event") == "ocpp.connected" and e.get("charge_point_id") == "CP-LB"
                for e in n.logs()
            )
        )
        await holder.stop()  # rolling it: the charger reconnects through HAProxy to the other
        async with asyncio.timeout(TIMEOUT):
            while True:
                with contextlib.suppress(OSError, Exception):
                    async with ocpp_charger(ocpp_port, "CP-LB") as charger:
                        await charger.boot()
                        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                            response = await client.post(
                                url, json={"type": "Soft"}, headers=headers
                            )
                        if response.status_code == 200:
                            break
                await asyncio.sleep(0.2)
        assert charger.received == [("Reset", {"type": "Soft"})]
