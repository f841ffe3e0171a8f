"""Commands from any node reach the charger wherever it is connected."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx
from ocpp.routing import on
from ocpp.v16 import call_result
from websockets.asyncio.client import connect

from tests.cluster.conftest import Node, command
from tests.conftest import TIMEOUT
from tests.ocpp_client import TestCharger, ocpp_charger


async def test_command_to_a_charger_held_by_another_node_is_answered(
    three_nodes: list[Node], api_token: str
) -> None:
    a, b, c = three_nodes
    async with ocpp_charger(a.ocpp_port, "CP-ROUTED") as charger:
        await charger.boot()
        # Several at once, from both other nodes and the owner itself.
        answers = await asyncio.gather(
            *(
                command(node, api_token, "CP-ROUTED", "Reset", {"type": "Soft"})
                for node in (b, c, a)
            )
        )
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert all(r.json() == {"status": "Accepted"} for r in answers)
        assert [action for action, _ in charger.received] == ["Reset"] * 3


async def test_a_charger_connected_nowhere_is_409_at_once(
    three_nodes: list[Node], api_token: str
) -> None:
    a = three_nodes[0]
    # The command timeout is 60 s: answering within TIMEOUT means no one waited for it.
    async with asyncio.timeout(TIMEOUT):
        response = await command(a, api_token, "CP-NOWHERE", "Reset", {"type": "Soft"})
    assert response.status_code == 409
    assert "not connected" in response.json()["detail"]


async def test_the_owners_timeout_is_the_callers(three_nodes: list[Node], api_token: str) -> None:
    a, b, _ = three_nodes
    async with ocpp_charger(a.ocpp_port, "CP-SLOW") as charger:
        await charger.boot()
        charger.answer_delay = 3.0
        response = await command(b, api_token, "CP-SLOW", "Reset", {"type": "Soft"}, timeout=1)
        assert response.status_code == 504
        assert "within 1 s" in response.json()["detail"]


async def test_a_charger_moving_to_another_node_closes_the_old_socket_and_commands_follow(
    three_nodes: list[Node], api_token: str, db: asyncpg.Connection
) -> None:
    a, b, c = three_nodes
    async with ocpp_charger(a.ocpp_port, "CP-MOVING") as old:
        await old.boot()
        async with ocpp_charger(b.ocpp_port, "CP-MOVING") as new:
            await new.boot()
            async with asyncio.timeout(TIMEOUT):
                await old._connection.wait_closed()
            assert old._connection.close_code == 4000
            response = await command(c, api_token, "CP-MOVING", "Reset", {"type": "Hard"})
            assert response.status_code == 200
            assert [action for action, _ in new.received] == ["Reset"]
            assert old.received == []
            row = await db.fetchrow(
                "SELECT epoch, node_id FROM charger_ownership WHERE charge_point_id = $1",
                "CP-MOVING",
            )
            assert row is not None and row["epoch"] == 2 and row["node_id"] == b.node_id
            await asyncio.sleep(1.5)  # presence is written once a second
            connected = await db.fetchrow(
                "SELECT connected, connected_node FROM charge_points WHERE id = $1", "CP-MOVING"
            )
            assert connected is not None and tuple(connected) == (True, b.node_id)
    replaced = [e for e in a.logs() if e.get("event") == "ocpp.connection_replaced"]
    assert replaced and replaced[0]["charge_point_id"] == "CP-MOVING"
    assert replaced[0]["node_id"] == a.node_id and replaced[0]["by_node"] == b.node_id


async def test_readyz_metrics_and_logs_name_the_cluster(three_nodes: list[Node]) -> None:
    a = three_nodes[0]
    async with httpx.AsyncClient() as client:
        ready = (await client.get(f"{a.http}/readyz")).json()
        assert ready["checks"]["nats"] is True
        async with asyncio.timeout(TIMEOUT):
            while True:
                metrics = (await client.get(f"{a.http}/metrics")).text
                if "csms_cluster_nodes 3.0" in metrics:
                    break
                await asyncio.sleep(0.2)
    async with connect(f"ws://127.0.0.1:{a.ocpp_port}/ocpp/CP-LOGS", subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
        await asyncio.sleep(0.2)
    assert all(e.get("node_id") == a.node_id for e in a.logs())


async def test_a_registration_decided_on_one_node_reaches_the_node_holding_the_charger(
    three_nodes: list[Node], api_token: str
) -> None:
    a, b, _ = three_nodes
    async with ocpp_charger(b.ocpp_port, "CP-DECIDED") as charger:
        assert (await charger.boot()).status == "Pending"
        async with httpx.AsyncClient() as client:
            response = await client.put(
                f"{a.http}/api/charge-points/CP-DECIDED/registration",
                json={"status": "Accepted"},
                headers={"Authorization": f"Bearer {api_token}"},
            )
        assert response.status_code == 200
        # B forgot its cached "Pending" and, holding the socket, asks for a boot at once.
        async with asyncio.timeout(TIMEOUT):
            while (
                "TriggerMessage",
                {"requested_message": "BootNotification"},
            ) not in charger.received:
                await asyncio.sleep(0.05)
        assert (await charger.boot()).status == "Accepted"


class _KeyTakingCharger(TestCharger):
    @on("ChangeConfiguration")
    async def on_change_configuration(self, **payload: Any) -> Any:
        answer = call_result.ChangeConfiguration(status="Accepted")
        return await self._answer("ChangeConfiguration", payload, answer)


async def test_a_password_rotated_from_any_node_reaches_a_charger_held_by_another(
    three_nodes: list[Node], api_token: str
) -> None:
    a, _, c = three_nodes
    url = f"ws://127.0.0.1:{a.ocpp_port}/ocpp/CP-ROTATE"
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        charger = _KeyTakingCharger("CP-ROTATE", ws)
        serving = asyncio.create_task(charger.start())
        try:
            await charger.boot()
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.post(
                    f"{c.http}/api/charge-points/CP-ROTATE/security/password",
                    json={},
                    headers={"Authorization": f"Bearer {api_token}"},
                )
            assert response.status_code == 200, response.text
            password = response.json()["password"]
            assert charger.received == [
                ("ChangeConfiguration", {"key": "AuthorizationKey", "value": password})
            ]
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
