"""Every /api/ route refuses a request without a live operator token."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI

from csms.app import CentralSystem
from csms.db import operator_tokens
from tests.conftest import TIMEOUT


def _api_routes(app: FastAPI) -> list[tuple[str, str]]:
    # The OpenAPI document is FastAPI's public, flattened view of every included router.
    paths = app.openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    )


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _live_routes(system: CentralSystem) -> list[tuple[str, str]]:
    # The running server's own table (core, bridge and any router wired in later), so a
    # route added anywhere is checked without touching this file.
    return _api_routes(system._http.config.app)  # type: ignore[union-attr]


async def test_the_route_table_has_the_operator_api(api_system: CentralSystem) -> None:
    paths = {path for _, path in _live_routes(api_system)}
    assert {"/api/charge-points", "/api/transactions", "/api/id-tags", "/api/accounts"} <= paths
    assert {"/api/vehicles/{vehicle_id}", "/api/sessions"} <= paths


async def _revoked_token(db: asyncpg.Connection) -> str:
    token = await operator_tokens.create(db, "revoked-one")
    assert await operator_tokens.revoke(db, "revoked-one")
    return token


@pytest.mark.parametrize("credential", ["none", "wrong", "revoked", "not-bearer"])
async def test_every_api_route_refuses_without_a_live_token(
    api_system: CentralSystem, base_url: str, db: asyncpg.Connection, credential: str
) -> None:
    headers = {
        "none": {},
        "wrong": {"Authorization": f"Bearer {operator_tokens.new_token()}"},
        "revoked": {"Authorization": f"Bearer {await _revoked_token(db)}"},
        "not-bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
    }[credential]
    answered = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        for method, path in _live_routes(api_system):
            response = await client.request(method, _concrete(path), headers=headers, json={})
            answered[(method, path)] = (
                response.status_code,
                response.headers.get("content-type"),
                response.headers.get("www-authenticate", "").split(" ")[0],
            )
    assert len(answered) >= 25
    expected = (401, "application/problem+json", "Bearer")
    assert {route: got for route, got in answered.items() if got != expected} == {}


async def test_unknown_api_paths_are_refused_before_routing(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        response = await client.get("/api/no-such-thing")
    assert response.status_code == 401


async def test_open_endpoints_need_no_token(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        health = await client.get("/healthz")
        connect = await client.get("/smartcar/connect", params={"account_id": 999})
    assert health.status_code == 200
    assert connect.status_code == 404  # reached the route: unknown account, not 401


async def test_a_failed_attempt_is_logged_without_the_token(base_url: str) -> None:
    wrong = operator_tokens.new_token()
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
            await client.get("/api/charge-points", headers={"Authorization": f"Bearer {wrong}"})
            await client.get("/api/transactions")
    failures = [e for e in logs if e["event"] == "http.auth_failed"]
    assert [(e["reason"], e["path"]) for e in failures] == [
        ("unknown", "/api/charge-points"),
        ("missing", "/api/transactions"),
    ]
    assert all(e["remote"] == "127.0.0.1" for e in failures)
    assert wrong not in repr(logs) and wrong[5:15] not in repr(logs)


async def test_a_revoked_token_stops_working_at_once(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    token = await operator_tokens.create(db, "short-lived")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/charge-points", headers=headers)).status_code == 200
    await operator_tokens.revoke(db, "short-lived")
    assert (await api.get("/api/charge-points", headers=headers)).status_code == 401


async def test_last_use_is_recorded_at_most_once_a_minute(
    api: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    assert await db.fetchval("SELECT last_used_at FROM operator_tokens") is None
    await api.get("/api/charge-points")
    first = await db.fetchval("SELECT last_used_at FROM operator_tokens")
    assert first is not None
    for _ in range(3):
        await api.get("/api/charge-points")
    assert await db.fetchval("SELECT last_used_at FROM operator_tokens") == first


async def test_only_a_hash_of_the_token_is_stored(api_token: str, db: asyncpg.Connection) -> None:
    stored = await db.fetchval("SELECT token_hash FROM operator_tokens")
    assert stored == operator_tokens.token_hash(api_token)
    assert api_token.encode() not in stored
