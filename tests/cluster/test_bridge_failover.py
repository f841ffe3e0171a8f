"""The bridge's work survives a node killed with -9, and webhooks reach the node working on
the plug-in wherever they arrive: real ``csms serve`` processes (bridge_cluster.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg

from simulators.world import World
from tests.cluster.bridge_cluster import bridge_cluster
from tests.conftest import TIMEOUT
from tests.e2e.bridge_env import car, charger

VINS = ("5YJ3E1EA0KF000001", "5YJ3E1EA0KF000002", "5YJ3E1EA0KF000003")


async def test_kill_9_of_the_node_holding_sessions_mid_charge_stops_and_bills_them_once(
    database_url: str, db: asyncpg.Connection, api_token: str, tmp_path: Path
) -> None:
    world = World(
        vehicles=[car(vin, 0.40) for vin in VINS],
        chargers=[charger(f"CP-{n}") for n in range(1, 4)],
    )
    async with bridge_cluster(database_url, db, api_token, world, tmp_path) as cluster:
        await cluster.link(cluster.nodes[1], *VINS)
        # One after the other, so each plug-in has one candidate: a direct match.
        for n, vin in enumerate(VINS, start=1):
            cluster.runner.plug_in(vin, f"CP-{n}", 1)
            await cluster.wait_for(
                "SELECT count(*) = $1 FROM charging_sessions WHERE state = 'charging'", n
            )
        leases = await db.fetch(
            "SELECT l.node_id, s.id FROM bridge_leases l JOIN charging_sessions s "
            "ON l.kind = 'session' AND l.work_id = s.id"
        )
        chargers = await db.fetch(
            "SELECT connected_node FROM charge_points WHERE id LIKE 'CP-%' AND connected"
        )
        # A node holding sessions (the most, then the most chargers) dies mid-charge.
        sessions_on = Counter(r["node_id"] for r in leases)
        chargers_on = Counter(r["connected_node"] for r in chargers)
        victim = cluster.node_by_id(
            max(sessions_on, key=lambda n: (sessions_on[n], chargers_on[n]))
        )
        held = sorted(r["id"] for r in leases if r["node_id"] == victim.node_id)
        moved = sorted(
            r["id"]
            for r in await db.fetch(
                "SELECT id FROM charge_points WHERE connected_node = $1", victim.node_id
            )
        )
        assert held, "the victim holds at least one session"
        victim.kill()

        # Every session (the victim's taken over by another node) stops at its target.
        await cluster.wait_for(
            "SELECT count(*) = 3 FROM charging_sessions WHERE state = 'completed'",
            timeout=TIMEOUT * 8,
        )
        sessions = await db.fetch(
            "SELECT id, stop_reason, end_soc_percent, target_soc_percent, bill_amount, "
            "bill_energy_wh, grid_energy_wh, meter_start_wh, meter_stop_wh, transaction_id "
            "FROM charging_sessions ORDER BY id"
        )
        for session in sessions:
            assert session["stop_reason"] == "target_soc", dict(session)
            assert session["end_soc_percent"] >= session["target_soc_percent"]
            assert session["bill_amount"] is not None and session["bill_amount"] > 0
            grid = session["meter_stop_wh"] - session["meter_start_wh"]
            assert session["grid_energy_wh"] == grid
        # Billed exactly once: one reconciliation per session over every node's log.
        reconciled = Counter(e["session_id"] for e in cluster.events("bridge.session_reconciled"))
        assert reconciled == Counter({s["id"]: 1 for s in sessions})
        taken = {e["work_id"] for e in cluster.events("bridge.work_taken_over")}
        assert set(held) <= taken
        # Its chargers reconnected to the living nodes.
        living = {node.node_id for node in cluster.nodes if node is not victim}
        for charge_point_id in moved:
            node_id = await cluster.wait_for(
                "SELECT connected_node FROM charge_points WHERE id = $1 AND connected",
                charge_point_id,
            )
            assert node_id in living
        # No meter value lost: every MeterValues a charger had answered is stored.
        stored = await db.fetchval(
            "SELECT count(DISTINCT (charge_point_id, connector_id, sampled_at, context)) "
            "FROM meter_values WHERE charge_point_id LIKE 'CP-%'"
        )
        assert stored >= cluster.runner.stats.results["MeterValues"] > 0
        for session in sessions:
            last = await db.fetchval(
                "SELECT max(value::numeric) FROM meter_values WHERE transaction_id = $1 "
                "AND measurand = 'Energy.Active.Import.Register'",
                session["transaction_id"],
            )
            # The register never ran past the stop (the stop's integer Wh rounds it).
            assert last is not None and last <= session["meter_stop_wh"] + 1


async def test_a_preparing_on_one_node_and_the_cars_webhook_on_another_start_the_session(
    database_url: str, db: asyncpg.Connection, api_token: str, tmp_path: Path
) -> None:
    vin = VINS[0]
    world = World(vehicles=[car(vin, 0.40)], chargers=[charger("CP-W")])
    async with bridge_cluster(
        database_url,
        db,
        api_token,
        world,
        tmp_path,
        charger_node=0,  # the charger, so its Preparing, is on node 0
        CSMS_BRIDGE_WEBHOOK_LAG=str(TIMEOUT),
    ) as cluster:
        webhooks = cluster.fake.webhooks
        webhooks.poll_interval_s, webhooks.retry_scale = 0.2, 0.01
        webhooks.configure(
            f"{cluster.nodes[0].http}/smartcar/webhooks", "application-management-token"
        )
        assert await webhooks.verify()
        await cluster.link(cluster.nodes[0], vin)
        # The first delivery makes it a webhook car: never read for a plug-in decision.
        await cluster.wait_for("SELECT webhook_seen_at IS NOT NULL FROM vehicles")
        webhooks.poll_interval_s = 3600.0  # from now on the test says when the car reports
        await asyncio.sleep(0.3)  # the poller's current sleep ends; the next is long
        cluster.runner.plug_in(vin, "CP-W", 1)
        owner = await cluster.wait_for(
            "SELECT l.node_id FROM bridge_leases l JOIN plug_ins p "
            "ON l.kind = 'plug_in' AND l.work_id = p.id"
        )
        # The car's webhook goes to a node that is not working on the plug-in.
        other = next(node for node in cluster.nodes[1:] if node.node_id != owner)
        webhooks.configure(f"{other.http}/smartcar/webhooks", "application-management-token")
        assert await webhooks.verify()
        (event_id,) = webhooks.emit_changes()
        transaction_id = await cluster.wait_for(
            "SELECT transaction_id FROM charging_sessions WHERE state = 'charging'"
        )
        row = await db.fetchrow(
            "SELECT s.vin, s.charge_point_id, p.outcome, p.reason FROM charging_sessions s "
            "JOIN plug_ins p ON p.session_id = s.id WHERE s.transaction_id = $1",
            transaction_id,
        )
        assert (row["vin"], row["charge_point_id"], row["outcome"]) == (vin, "CP-W", "matched")
        started = await db.fetchrow("SELECT id_tag FROM transactions WHERE id = $1", transaction_id)
        assert started is not None
        # The match was decided by the plug-in's node, from the webhook another node got.
        matched = [
            e
            for e in cluster.node_by_id(owner).logs()
            if e.get("event") == "bridge.vehicle_matched"
        ]
        assert matched
        assert not [e for e in other.logs() if e.get("event") == "bridge.vehicle_matched"]
        received = [e for e in other.logs() if e.get("event") == "bridge.webhook_received"]
        assert event_id in {e["event_id"] for e in received}
