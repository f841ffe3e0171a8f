"""The bridge's operator routes: accounts, vehicles (unlink reaches Smartcar), sessions."""

from __future__ import annotations

import asyncpg
import httpx

from csms.config import Settings
from simulators.world import World
from tests.e2e.bridge_env import bridge_env, car, charger

VIN_A = "5YJ3E1EA7KF000001"
VIN_B = "5YJ3E1EA7KF000002"


async def test_accounts_are_listed_and_filtered(api: httpx.AsyncClient) -> None:
    for name, payment in (("Ada Fleet", "valid"), ("Bob", "none"), ("Ada Home", "suspended")):
        created = await api.post("/api/accounts", json={"name": name, "payment_status": payment})
        assert created.status_code == 201
    every = (await api.get("/api/accounts")).json()
    assert [a["name"] for a in every] == ["Ada Fleet", "Bob", "Ada Home"]
    valid = (await api.get("/api/accounts", params={"payment_status": "valid"})).json()
    assert [a["name"] for a in valid] == ["Ada Fleet"]
    named = (await api.get("/api/accounts", params={"name": "ada"})).json()
    assert [a["name"] for a in named] == ["Ada Fleet", "Ada Home"]
    one = (await api.get(f"/api/accounts/{every[1]['id']}")).json()
    assert (one["name"], one["vehicles"]) == ("Bob", [])
    assert (await api.get("/api/accounts/999999")).status_code == 404
    bad = await api.get("/api/accounts", params={"payment_status": "rich"})
    assert bad.status_code == 422 and bad.json()["field"] == "payment_status"


async def test_unlinking_a_car_blocks_its_tag_and_revokes_smartcar_access(
    settings: Settings, db: asyncpg.Connection
) -> None:
    world = World(vehicles=[car(VIN_A, 0.70), car(VIN_B, 0.50)], chargers=[charger("CP-A")])
    async with bridge_env(settings, db, world) as env:
        account = await env.create_account("valid", "0.30")
        await env.link(account, VIN_A, VIN_B)

        env.runner.plug_in(VIN_A, "CP-A", 1)
        tx = await env.wait_for(
            "SELECT transaction_id FROM charging_sessions WHERE state = 'completed'", timeout=30
        )
        sessions = (await env.http.get("/api/sessions", params={"account_id": account})).json()
        assert [s["transaction_id"] for s in sessions["items"]] == [tx]
        assert sessions["items"][0]["vin"].endswith("000001")
        assert (await env.http.get("/api/sessions", params={"active": "true"})).json()[
            "items"
        ] == []

        cars = (await env.http.get("/api/vehicles", params={"vin": VIN_B})).json()
        assert len(cars) == 1 and cars[0]["vin"] == "*" * 11 + "000002"
        vehicle_b = cars[0]
        smartcar_b = await db.fetchval(
            "SELECT smartcar_vehicle_id FROM vehicles WHERE id = $1", vehicle_b["id"]
        )

        unlinked = await env.http.delete(f"/api/vehicles/{vehicle_b['id']}")
        assert unlinked.status_code == 200, unlinked.text
        assert unlinked.json()["active"] is False
        assert unlinked.json()["smartcar"] == {"disconnected": True}
        # The Connect grants: what both v2.0 tokens and v3 connections stand on.
        grants = [c.grant for c in env.fake.tokens.codes.values()]
        assert grants and all(smartcar_b not in grant.vehicle_ids for grant in grants)
        assert (
            await db.fetchval("SELECT status FROM id_tags WHERE id_tag = $1", vehicle_b["id_tag"])
            == "Blocked"
        )
        active = (await env.http.get("/api/vehicles")).json()
        assert [v["vin"][-6:] for v in active] == ["000001"]
        inactive = (await env.http.get("/api/vehicles", params={"active": "false"})).json()
        assert [v["id"] for v in inactive] == [vehicle_b["id"]]
        assert (await env.http.delete("/api/vehicles/999999")).status_code == 404
