"""Shared fixtures: a real PostgreSQL, a fresh database per run, the real server per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
import structlog

from csms.app import CentralSystem, migrate_database
from csms.config import Settings
from csms.db import operator_tokens
from csms.db.embedded import EmbeddedPostgres
from csms.log import configure_logging

# One knob to stretch every wait on a slow machine, instead of sprinkled sleeps.
TIMEOUT = 10.0 * float(os.environ.get("CSMS_TEST_TIMEOUT_SCALE", "1"))

TABLES = (
    "charge_points, connectors, status_history, id_tags, transactions, orphan_stops, "
    "meter_values, data_transfers, charge_point_notifications, commands, "
    "accounts, smartcar_links, vehicles, charger_locations, charging_sessions, soc_samples, "
    "smartcar_webhook_events, session_energy_samples, operator_tokens, local_list_pushes, "
    "security_events, charger_certificates, security_notifications, plug_ins, vehicle_claims"
)


@pytest.fixture(scope="session")
def admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: CSMS_TEST_DATABASE_URL if set, else an embedded one."""
    url = os.environ.get("CSMS_TEST_DATABASE_URL")
    if url:
        yield url
        return
    folder = Path(tmp_path_factory.mktemp("pg"))
    # As root, pgserver runs PostgreSQL as its own user, which must reach the folder.
    folder.chmod(0o755)
    folder.parent.chmod(0o755)
    embedded = EmbeddedPostgres(folder)
    embedded.start()
    yield embedded.dsn_for("postgres")
    embedded.close()


@pytest.fixture(scope="session")
async def database_url(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database for this test run, migrated, dropped at the end."""
    name = f"csms_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(admin_dsn, name)
    await migrate_database(dsn)
    try:
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _with_database(dsn: str, name: str) -> str:
    # Works for both URL forms: postgresql://u@h:p/db and postgresql://u:@/db?host=/sock
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, tables emptied before the test."""
    connection = await asyncpg.connect(database_url)
    await connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    yield connection
    await connection.close()


@pytest.fixture
async def api_token(db: asyncpg.Connection) -> str:
    """A live operator token for /api/ routes (created the way `csms token create` does)."""
    return await operator_tokens.create(db, "tests")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return replace(
        Settings(),
        database_url=database_url,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        http_host="127.0.0.1",
        http_port=0,
        heartbeat_interval=300,
        command_timeout=3.0,
    )


@pytest.fixture
async def system(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[CentralSystem]:
    central = CentralSystem(settings)
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


@pytest.fixture(autouse=True)
def _logging() -> None:
    configure_logging("json", "debug")
    structlog.configure(cache_logger_on_first_use=False)


@pytest.fixture(autouse=True)
async def _fail_on_unhandled_loop_errors() -> AsyncIterator[None]:
    """Fail any test that leaves an unhandled exception in the event loop."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled errors in the event loop: {errors}"
