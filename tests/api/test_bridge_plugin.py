"""What the bridge adds through its plug-in when it is on: routes and their tag, metrics,
the dashboard's section and card. The core knows none of it (tests/unit/test_boundary.py)."""

from __future__ import annotations

import httpx

from csms.app import CentralSystem
from smartcar_bridge.plugin import RunningBridge


async def test_the_running_bridge_registers_its_routes_metrics_and_card(
    api_system: CentralSystem, api: httpx.AsyncClient
) -> None:
    assert isinstance(api_system.plugins["smartcar"], RunningBridge)

    document = (await api.get("/openapi.json")).json()
    assert {"/api/accounts", "/api/sessions", "/smartcar/connect", "/api/plug-ins"} <= set(
        document["paths"]
    )
    tags = [tag["name"] for tag in document["tags"]]
    assert "bridge" in tags and tags[-1] == "operations"

    metrics = (await api.get("/metrics")).text
    assert "csms_bridge_sessions_active 0.0" in metrics
    assert "# TYPE csms_smartcar_requests_total counter" in metrics

    summary = (await api.get("/api/dashboard/summary")).json()
    assert summary["bridge"] == {"ended": {}, "ended_by_reason": [], "open": {}}
    assert summary["cards"] == [
        {
            "id": "bridge",
            "label": "plug & charge today",
            "value": "0 completed",
            "note": "0 failed · 0 in progress",
        }
    ]
