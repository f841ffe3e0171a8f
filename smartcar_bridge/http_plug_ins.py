"""``GET /api/plug-ins``: every plug-in the bridge recorded, its outcome and its timing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from csms.log import mask_vin
from smartcar_bridge import plug_in_store
from smartcar_bridge.bridge import Bridge


def create_router(bridge: Bridge) -> APIRouter:
    router = APIRouter()

    @router.get("/api/plug-ins")
    async def plug_ins(limit: int = Query(1000, ge=1, le=10_000)) -> list[dict[str, Any]]:
        """Newest first: outcome (matched, confirmed, no_match, unpaid, at_target,
        unconfirmed, dropped, pending, confirming), the car (masked VIN), the seconds
        from the charger's Preparing to our RemoteStartTransaction, and the Smartcar calls
        this process spent on the decision (in all and by purpose) and on the session."""
        rows = await plug_in_store.recent(bridge.pool, limit)
        ledger = bridge.client.ledger
        for row in rows:
            # Smartcar calls this process sent for the decision and for the session after it.
            row["decision_smartcar_calls"] = ledger.by_plug_in.get(row["id"], 0)
            row["decision_smartcar_calls_by_purpose"] = dict(
                ledger.decision_purposes.get(row["id"], {})
            )
            session_id = row["session_id"]
            row["session_smartcar_calls"] = (
                ledger.by_session.get(session_id, 0) if session_id is not None else None
            )
            row["vin"] = mask_vin(row["vin"]) if row["vin"] else None
            start = row["remote_start_at"]
            row["remote_start_latency_s"] = (
                round((start - row["plugged_at"]).total_seconds(), 3) if start else None
            )
        return rows

    return router
