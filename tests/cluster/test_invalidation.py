"""Caches invalidated cluster-wide: a change through node A's API changes node B's answers.

Each node caches what its hot path reads (the handshake's security rows, every charger's
registration); a change on one node is broadcast on ``csms.invalidate.<topic>`` and the
others forget their copy. Id tags are read from PostgreSQL on every Authorize, so they
follow at once; they are here so that stays true. Every wait is bounded, and none is a
timing assertion: node B is asked again until its answer changes, or the test fails.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.cluster.nats_server import EmbeddedNats, free_port
from tests.cluster.conftest import Cluster, Node
from tests.conftest import TIMEOUT
from tests.ocpp_client import raw_charger


@pytest.fixture(scope="module")
async def two_nodes(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Node]]:
    folder = tmp_path_factory.mktemp("invalidation")
    server = EmbeddedNats(folder, port=free_port())
    server.start()
    cluster = Cluster(database_url, server.url, folder)
    try:
        yield await cluster.start(2, CSMS_UNKNOWN_CHARGERS="accept", CSMS_SECURITY_PROFILE="0")
    finally:
        await cluster.stop()
        server.close()


def _api(node: Node, token: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=node.http, headers=headers, timeout=TIMEOUT)


async def _handshake(node: Node, identity: str, password: str | None) -> int:
    """101 if the node lets the charger in, else the HTTP status it refused with."""
    headers = {}
    if password is not None:
        token = base64.b64encode(f"{identity}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    url = f"ws://127.0.0.1:{node.ocpp_port}/ocpp/{identity}"
    try:
        async with connect(
            url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=TIMEOUT,
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def _until_refused(node: Node, identity: str, password: str | None) -> int:
    """Connect until ``node`` refuses (it may let the charger in until the change arrives)."""
    async with asyncio.timeout(TIMEOUT):
        while (status := await _handshake(node, identity, password)) == 101:
            await asyncio.sleep(0.02)
    return status


async def test_a_profile_and_password_set_on_one_node_are_enforced_by_another(
    two_nodes: list[Node], api_token: str
) -> None:
    a, b = two_nodes
    # B knows the charger as profile 0 without a password (and has read it since).
    assert await _handshake(b, "CP-SEC", None) == 101
    async with _api(a, api_token) as api:
        provisioned = await api.post(
            "/api/charge-points/CP-SEC/security/password", json={"provision": True}
        )
        assert provisioned.status_code == 200, provisioned.text
        first = provisioned.json()["password"]
        raised = await api.put("/api/charge-points/CP-SEC/security/profile", json={"profile": 1})
        assert raised.status_code == 200, raised.text

    # B's copy said "profile 0": had it kept it, it would let a password-less charger in.
    assert await _until_refused(b, "CP-SEC", None) == 401
    assert await _handshake(b, "CP-SEC", first) == 101

    async with _api(a, api_token) as api:
        again = await api.post(
            "/api/charge-points/CP-SEC/security/password", json={"provision": True}
        )
        assert again.status_code == 200, again.text
        second = again.json()["password"]
    # B had just accepted the first password from its cache; it must stop doing so.
    assert await _until_refused(b, "CP-SEC", first) == 401
    assert await _handshake(b, "CP-SEC", second) == 101


async def _boot(charger: Any) -> str:
    answer = await charger.call_ok(
        "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
    )
    return str(answer["status"])


async def test_a_charger_rejected_on_one_node_is_rejected_by_the_node_holding_it(
    two_nodes: list[Node], api_token: str
) -> None:
    a, b = two_nodes
    async with raw_charger(b.ocpp_port, "CP-REG") as charger:
        assert await _boot(charger) == "Accepted"
        async with _api(a, api_token) as api:
            rejected = await api.post("/api/charge-points/CP-REG/reject")
            assert rejected.status_code == 200, rejected.text
        async with asyncio.timeout(TIMEOUT):
            while (status := await _boot(charger)) == "Accepted":
                await asyncio.sleep(0.02)
        assert status == "Rejected"


async def test_an_id_tag_blocked_on_one_node_is_refused_by_another(
    two_nodes: list[Node], api_token: str
) -> None:
    a, b = two_nodes
    async with _api(a, api_token) as api:
        created = await api.post("/api/id-tags", json={"id_tag": "TAG-X"})
        assert created.status_code == 201, created.text
        async with raw_charger(b.ocpp_port, "CP-TAG") as charger:
            assert await _boot(charger) == "Accepted"
            first = await charger.call_ok("Authorize", {"idTag": "TAG-X"})
            assert first["idTagInfo"]["status"] == "Accepted"
            blocked = await api.post("/api/id-tags/TAG-X/block")
            assert blocked.status_code == 200, blocked.text
            async with asyncio.timeout(TIMEOUT):
                while True:
                    answer = await charger.call_ok("Authorize", {"idTag": "TAG-X"})
                    if answer["idTagInfo"]["status"] != "Accepted":
                        break
                    await asyncio.sleep(0.02)
            assert answer["idTagInfo"]["status"] == "Blocked"
