"""A node killed with -9, and NATS restarted: chargers move on, nothing answered is lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from csms.cluster.nats_server import EmbeddedNats
from tests.cluster.conftest import NODE_TIMEOUT, Node, StartNodes, command
from tests.conftest import TIMEOUT
from tests.ocpp_client import RawCharger, ocpp_charger

ENERGY = "Energy.Active.Import.Register"
SAMPLES = 30


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _metering_charger(
    charge_point_id: str, nodes: list[Node], answered: list[int], killed: asyncio.Event
) -> int:
    """Boot, start a transaction, then send SAMPLES meter values, moving to the next node
    (as a load balancer would send it) whenever its connection drops; resends the value
    whose answer it did not get, as real firmware does."""
    pending: dict[str, object] | None = None
    transaction_id: int | None = None
    wh = 1000
    for node in nodes:
        url = f"ws://127.0.0.1:{node.ocpp_port}/ocpp/{charge_point_id}"
        try:
            async with connect(url, subprotocols=["ocpp1.6"], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
                charger = RawCharger(ws)
                await charger.call_ok(
                    "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
                )
                if transaction_id is None:
                    transaction_id = await charger.start_transaction(wh, _now())
                while len(answered) < SAMPLES:
                    if pending is None:
                        wh += 10
                        pending = {
                            "connectorId": 1,
                            "transactionId": transaction_id,
                            "meterValue": [
                                {
                                    "timestamp": _now(),
                                    "sampledValue": [
                                        {"value": str(wh), "measurand": ENERGY, "unit": "Wh"}
                                    ],
                                }
                            ],
                        }
                    await charger.call_ok("MeterValues", pending)
                    answered.append(wh)
                    pending = None
                    await asyncio.sleep(0.1 if not killed.is_set() else 0.02)
                assert transaction_id is not None
                return transaction_id
        except (ConnectionClosed, OSError):
            continue
    raise AssertionError(f"{charge_point_id} ran out of nodes")


async def test_kill_9_of_a_node_moves_its_chargers_and_loses_no_meter_value(
    start_nodes: StartNodes, cluster_db: asyncpg.Connection, api_token: str
) -> None:
    a, b = await start_nodes(2)
    killed = asyncio.Event()
    answered: dict[str, list[int]] = {f"CP-K{i}": [] for i in range(4)}
    tasks = {
        cp: asyncio.create_task(_metering_charger(cp, [a, b], values, killed))
        for cp, values in answered.items()
    }
    # One more that never comes back: the dead node must not leave it shown connected.
    async with ocpp_charger(a.ocpp_port, "CP-GONE") as gone:
        await gone.boot()
        async with asyncio.timeout(TIMEOUT):
            while min(len(v) for v in answered.values()) < 5:
                await asyncio.sleep(0.05)
        a.kill()
        killed.set()
        async with asyncio.timeout(TIMEOUT * 2):
            transactions = {cp: await task for cp, task in tasks.items()}
    for cp, transaction_id in transactions.items():
        rows = await cluster_db.fetch(
            "SELECT value FROM meter_values WHERE transaction_id = $1 AND measurand = $2",
            transaction_id,
            ENERGY,
        )
        stored = [int(r["value"]) for r in rows]
        assert set(answered[cp]) <= set(stored), cp  # every answered value is stored
        assert len(answered[cp]) == SAMPLES
    async with asyncio.timeout(NODE_TIMEOUT * 2 + TIMEOUT):
        while True:
            rows = await cluster_db.fetch(
                "SELECT id, connected, connected_node FROM charge_points WHERE id LIKE 'CP-%'"
            )
            state = {r["id"]: (r["connected"], r["connected_node"]) for r in rows}
            moved = all(
                state.get(cp) == (False, None) or state.get(cp, (0, 0))[1] == b.node_id
                for cp in answered
            )
            if state.get("CP-GONE") == (False, None) and moved:
                break
            await asyncio.sleep(0.2)


async def test_commands_fail_clearly_while_nats_is_down_and_recover_after(
    start_nodes: StartNodes, nats_server: EmbeddedNats, api_token: str
) -> None:
    a, b = await start_nodes(2)
    async with ocpp_charger(a.ocpp_port, "CP-NATS") as charger:
        await charger.boot()
        assert (
            await command(b, api_token, "CP-NATS", "Reset", {"type": "Soft"})
        ).status_code == 200
        nats_server.close()
        async with httpx.AsyncClient() as client:
            async with asyncio.timeout(TIMEOUT):
                while (await client.get(f"{b.http}/readyz")).status_code != 503:
                    await asyncio.sleep(0.05)
            ready = (await client.get(f"{b.http}/readyz")).json()
            assert ready["failed"] == ["nats"]
        async with asyncio.timeout(TIMEOUT):  # at once, not after the 60 s command timeout
            routed = await command(b, api_token, "CP-NATS", "Reset", {"type": "Soft"})
        assert routed.status_code == 503
        assert "NATS" in routed.json()["detail"]
        # The node holding the socket still commands its own charger.
        assert (
            await command(a, api_token, "CP-NATS", "Reset", {"type": "Soft"})
        ).status_code == 200
        nats_server.start()
        await asyncio.gather(a.ready(), b.ready())
        async with asyncio.timeout(TIMEOUT):
            while True:
                response = await command(b, api_token, "CP-NATS", "Reset", {"type": "Soft"})
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
        assert len(charger.received) >= 3
