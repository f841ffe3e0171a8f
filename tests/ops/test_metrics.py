"""/metrics: the hot-path API counts what it is told; scrape-time gauges read the system."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from csms.app import CentralSystem
from csms.config import Settings
from csms.db import id_tags
from csms.metrics import Metrics
from smartcar_bridge.metrics import SmartcarMetrics, smartcar_endpoint
from tests.ocpp_client import ocpp_charger
from tests.ops.conftest import report_status, sample_energy, start_charging, stop_charging


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by (name, labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scrape: dict, name: str, **labels: str) -> float | None:
    return scrape.get((name, frozenset(labels.items())))


def test_hot_path_calls_count_by_action_code_and_outcome() -> None:
    metrics = Metrics()
    metrics.observe_call("Heartbeat", 0.0004)
    metrics.observe_call("Heartbeat", 0.002)
    metrics.observe_call("MeterValues", 0.03)
    metrics.call_error("SecurityError")
    metrics.call_error("NotImplemented", direction="in")
    metrics.command_sent("Reset", "answered")
    metrics.command_sent("Reset", "not_connected")
    # The bridge's series live in the same registry (it adds them when it runs).
    smartcar = SmartcarMetrics(metrics.registry)
    smartcar.smartcar_call("/v2.0/vehicles/3f2a-77/battery", "ok", 0.4)
    smartcar.smartcar_call("/v2.0/vehicles/9b1c-01/battery", "VEHICLE_STATE", 1.2, "monitor")

    get = metrics.registry.get_sample_value
    assert get("csms_ocpp_messages_total", {"action": "Heartbeat", "direction": "in"}) == 2
    assert get("csms_ocpp_call_duration_seconds_count", {"action": "Heartbeat"}) == 2
    assert (
        get("csms_ocpp_call_duration_seconds_bucket", {"action": "Heartbeat", "le": "0.0005"}) == 1
    )
    assert get("csms_ocpp_call_duration_seconds_sum", {"action": "MeterValues"}) == pytest.approx(
        0.03
    )
    assert get("csms_ocpp_call_errors_total", {"code": "SecurityError", "direction": "out"}) == 1
    assert get("csms_ocpp_call_errors_total", {"code": "NotImplemented", "direction": "in"}) == 1
    assert get("csms_ocpp_commands_total", {"action": "Reset", "outcome": "answered"}) == 1
    assert get("csms_ocpp_commands_total", {"action": "Reset", "outcome": "not_connected"}) == 1
    # Only the answered command put a CALL on the wire.
    assert get("csms_ocpp_messages_total", {"action": "Reset", "direction": "out"}) == 1
    endpoint = "/v2.0/vehicles/{id}/battery"
    assert (
        get(
            "csms_smartcar_requests_total",
            {"endpoint": endpoint, "outcome": "ok", "purpose": "other"},
        )
        == 1
    )
    refused = {"endpoint": endpoint, "outcome": "VEHICLE_STATE", "purpose": "monitor"}
    assert get("csms_smartcar_requests_total", refused) == 1
    assert get("csms_smartcar_request_duration_seconds_count", {"endpoint": endpoint}) == 2


def test_labels_chargers_and_cars_choose_cannot_grow_the_series() -> None:
    metrics = Metrics()
    for n in range(100):
        metrics.observe_call(f"Vendor{n}", 0.001)
        metrics.call_error(f"Weird{n}")
    get = metrics.registry.get_sample_value
    assert get("csms_ocpp_messages_total", {"action": "other", "direction": "in"}) == 100
    assert get("csms_ocpp_call_errors_total", {"code": "other", "direction": "out"}) == 100
    assert get("csms_ocpp_messages_total", {"action": "Vendor1", "direction": "in"}) is None
    assert smartcar_endpoint("/v2.0/vehicles") == "/v2.0/vehicles"
    assert smartcar_endpoint("/oauth/token") == "/oauth/token"
    assert (
        smartcar_endpoint("/v2.0/vehicles/abc/charge/limit") == "/v2.0/vehicles/{id}/charge/limit"
    )


def test_two_systems_in_one_process_keep_separate_registries() -> None:
    first, second = Metrics(), Metrics()
    first.observe_call("Heartbeat", 0.001)
    get = second.registry.get_sample_value
    assert get("csms_ocpp_messages_total", {"action": "Heartbeat", "direction": "in"}) is None


async def test_scrape_shows_connections_sessions_energy_and_pool(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    await id_tags.upsert(system.pool, "TAG-M")
    async with (
        ocpp_charger(system.ocpp.port, "CP-M1") as first,
        ocpp_charger(system.ocpp.port, "CP-M2") as second,
    ):
        charging = await start_charging(first, "TAG-M", 1_000)
        await sample_energy(first, charging, 1_400, 55)
        done = await start_charging(second, "TAG-M", 20_000)
        await stop_charging(second, done, 27_500)

        response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scrape = samples(response.text)
    assert value(scrape, "csms_ocpp_connected_charge_points") == 2
    assert value(scrape, "csms_transactions_active") == 1
    # The bridge is off here: its series come with it (tests/api/test_bridge_routes.py).
    assert value(scrape, "csms_bridge_sessions_active") is None
    assert value(scrape, "csms_energy_delivered_wh_total") == 7_500
    assert value(scrape, "csms_metrics_database_ok") == 1
    size = value(scrape, "csms_db_pool_size")
    assert size is not None and size >= 1
    assert (
        0 <= value(scrape, "csms_db_pool_in_use") <= size <= value(scrape, "csms_db_pool_max_size")
    )
    assert value(scrape, "process_resident_memory_bytes") > 0


async def test_scrape_counts_ocpp_traffic_by_action(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    async with ocpp_charger(system.ocpp.port, "CP-T1") as cp:
        await cp.boot()
        await system.commands.send("CP-T1", "Reset", {"type": "Soft"})
        response = await http.get("/metrics")
    scrape = samples(response.text)
    assert value(scrape, "csms_ocpp_messages_total", action="BootNotification", direction="in") == 1
    assert value(scrape, "csms_ocpp_call_duration_seconds_count", action="BootNotification") == 1
    assert value(scrape, "csms_ocpp_commands_total", action="Reset", outcome="answered") == 1
    assert value(scrape, "csms_ocpp_messages_total", action="Reset", direction="out") == 1


async def test_scrape_without_a_database_still_answers_and_says_so(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient
) -> None:
    await db.execute("ALTER TABLE transactions RENAME TO transactions_away")
    try:
        response = await http.get("/metrics")
    finally:
        await db.execute("ALTER TABLE transactions_away RENAME TO transactions")
    scrape = samples(response.text)
    assert response.status_code == 200
    assert value(scrape, "csms_metrics_database_ok") == 0
    assert value(scrape, "csms_transactions_active") is None  # no stale value
    assert value(scrape, "csms_ocpp_connected_charge_points") == 0


def test_one_spelling_per_error_code_and_no_created_series() -> None:
    metrics = Metrics()
    metrics.call_error("FormatViolation")  # the 2.0 spelling
    metrics.call_error("FormationViolation")
    metrics.call_error("OccurrenceConstraintViolation", direction="in")
    metrics.call_error("OccurenceConstraintViolation", direction="in")
    metrics.auth_failed("http", "missing")
    text = generate_latest(metrics.registry).decode()
    get = metrics.registry.get_sample_value
    assert get("csms_ocpp_call_errors_total", {"code": "FormationViolation", "direction": "out"})
    assert (
        get("csms_ocpp_call_errors_total", {"code": "FormationViolation", "direction": "out"}) == 2
    )
    code = "OccurenceConstraintViolation"
    assert get("csms_ocpp_call_errors_total", {"code": code, "direction": "in"}) == 2
    assert "FormatViolation" not in text and "OccurrenceConstraintViolation" not in text
    assert "_created" not in text
    build = [s for s in samples(text) if s[0] == "csms_build_info"]
    assert len(build) == 1 and dict(build[0][1])["version"]


async def test_scrape_counts_connector_statuses_auth_failures_and_http_routes(
    system: CentralSystem, db: asyncpg.Connection, http: httpx.AsyncClient, api_token: str
) -> None:
    async with (
        ocpp_charger(system.ocpp.port, "CP-S1") as first,
        ocpp_charger(system.ocpp.port, "CP-S2") as second,
    ):
        for cp in (first, second):
            await cp.boot()
        await report_status(first, 1, "Available")
        await report_status(second, 1, "Faulted")
        await report_status(second, 2, "Available")
        await report_status(second, 0, "Available")  # the charger itself: not a connector
        assert (await http.get("/api/charge-points")).status_code == 401
        authorised = {"Authorization": f"Bearer {api_token}"}
        for charge_point_id in ("CP-S1", "CP-S2"):
            answer = await http.get(f"/api/charge-points/{charge_point_id}", headers=authorised)
            assert answer.status_code == 200
        missing = await http.get("/api/charge-points/CP-NONE", headers=authorised)
        assert missing.status_code == 404
        response = await http.get("/metrics")
    scrape = samples(response.text)
    assert value(scrape, "csms_connectors", status="Available") == 2
    assert value(scrape, "csms_connectors", status="Faulted") == 1
    assert value(scrape, "csms_connectors", status="Charging") == 0
    assert value(scrape, "csms_auth_failures_total", protocol="http", reason="missing") == 1
    route = "/api/charge-points/{charge_point_id}"
    assert value(scrape, "csms_http_requests_total", route=route, method="GET", status="2xx") == 2
    assert value(scrape, "csms_http_requests_total", route=route, method="GET", status="4xx") == 1
    # Labels carry the template, never a charger id.
    assert "CP-S1" not in response.text


async def test_refused_charger_handshakes_are_counted_by_reason(
    settings: Settings, db: asyncpg.Connection
) -> None:
    central = CentralSystem(replace(settings, security_profile=1))
    await central.start()
    try:
        with pytest.raises(InvalidStatus):
            async with ocpp_charger(central.ocpp.port, "CP-NOPASS"):
                pass
        get = central.metrics.registry.get_sample_value
        labels = {"protocol": "ocpp", "reason": "no_credentials"}
        assert get("csms_auth_failures_total", labels) == 1
    finally:
        await central.stop()
