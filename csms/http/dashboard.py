"""The operators' live dashboard: a static page at ``/`` and its JSON at ``/api/dashboard``.

The page is open (it holds no data); every data call it makes goes to ``/api/dashboard``,
under the operator-token guard of ``/api/``. The page polls every 2 s rather than holding
a server-sent-events stream: ``EventSource`` cannot send an ``Authorization`` header, so a
stream would need the token in its URL (where access logs and proxies keep it), and a
bounded snapshot every 2 s is cheap, survives proxies that buffer, and needs no
reconnection logic.

``DashboardFeed`` is an event-bus subscriber owned by the system: it keeps the last 50
events and the latest status, energy register and SoC per connector, so the snapshot shows
what happened before the batched writers reach the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse

from csms.domain.events import (
    ConnectorStatusChanged,
    Event,
    EventBus,
    MeterSampled,
    TransactionStarted,
    TransactionStopped,
)
from csms.log import mask_vin

if TYPE_CHECKING:
    from csms.app import CentralSystem

log = structlog.get_logger()

STATIC = Path(__file__).parent / "static"
RECENT_EVENTS = 50
ENERGY_REGISTER = "Energy.Active.Import.Register"


@dataclasses.dataclass(slots=True)
class ConnectorLive:
    status: str | None = None
    error_code: str | None = None
    status_at: datetime | None = None
    transaction_id: int | None = None
    energy_wh: float | None = None
    soc_percent: float | None = None


class DashboardFeed:
    """Recent events and the latest per-connector readings, from the event bus."""

    def __init__(self, events: EventBus, size: int = RECENT_EVENTS) -> None:
        self._bus = events
        self._queue = events.observe()  # now, so nothing published before start is missed
        # (seq, event): turned into JSON only when the page asks; a reconnecting fleet
        # sends tens of thousands of events of which only the last few are ever shown.
        self.recent: deque[tuple[int, Any]] = deque(maxlen=size)
        self.connectors: dict[str, dict[int, ConnectorLive]] = {}  # by charger, connector
        self._sequence = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboard-feed")

    async def close(self) -> None:
        self._bus.unsubscribe(self._queue)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                self.apply(event)
            except Exception:  # a bad event must not end the feed
                log.exception("dashboard.event_failed", event_type=type(event).__name__)

    def apply(self, event: Event) -> None:
        """Fold one event into the ring and the per-connector state."""
        if type(event) is MeterSampled:
            # Too frequent for the ring: keep only the latest reading.
            live = self._live(event.charge_point_id, event.connector_id)
            if event.transaction_id is not None:
                live.transaction_id = event.transaction_id
            if event.energy_wh is not None:
                live.energy_wh = event.energy_wh
            if event.soc_percent is not None:
                live.soc_percent = event.soc_percent
            return
        if type(event) is ConnectorStatusChanged:
            live = self._live(event.charge_point_id, event.connector_id)
            live.status, live.error_code, live.status_at = (
                event.status,
                event.error_code,
                event.at,
            )
        elif type(event) is TransactionStarted:
            # A new transaction: readings from before it say nothing about its energy.
            live = self._live(event.charge_point_id, event.connector_id)
            live.transaction_id, live.energy_wh = event.transaction_id, event.meter_start_wh
            live.soc_percent = None
        elif type(event) is TransactionStopped:
            for live in self.connectors.get(event.charge_point_id, {}).values():
                if live.transaction_id == event.transaction_id:
                    live.transaction_id = live.energy_wh = live.soc_percent = None
        self.recent.append((next(self._sequence), event))

    def recent_entries(self) -> list[dict[str, Any]]:
        """The kept events as JSON-ready dicts, newest first."""
        entries = []
        for seq, event in reversed(self.recent):
            entry: dict[str, Any] = {"seq": seq, "type": type(event).__name__}
            for field in dataclasses.fields(event):
                value = getattr(event, field.name)
                entry[field.name] = value.isoformat() if isinstance(value, datetime) else value
            entries.append(entry)
        return entries

    def reading(self, transaction: asyncpg.Record) -> ConnectorLive | None:
        """The latest reading on this open transaction's connector, if it is this one's."""
        live = self.connectors.get(transaction["charge_point_id"], {}).get(
            transaction["connector_id"]
        )
        if live is None or live.transaction_id not in (None, transaction["transaction_id"]):
            return None
        return live

    def has_energy(self, transaction: asyncpg.Record) -> bool:
        live = self.reading(transaction)
        return live is not None and live.energy_wh is not None

    def _live(self, charge_point_id: str, connector_id: int) -> ConnectorLive:
        by_connector = self.connectors.setdefault(charge_point_id, {})
        live = by_connector.get(connector_id)
        if live is None:
            live = by_connector[connector_id] = ConnectorLive()
        return live


# -- SQL (read-only; the bridge's tables are read, never written, from here) -------------

_CHARGERS_SQL = """
SELECT cp.id, cp.registration_status, cp.vendor, cp.model, cp.firmware_version,
       cp.last_seen_at, cp.connected, cp.connected_node,
       coalesce(json_agg(json_build_object(
           'connector_id', c.connector_id, 'status', c.status, 'error_code', c.error_code,
           'info', c.info, 'updated_at', c.updated_at) ORDER BY c.connector_id)
         FILTER (WHERE c.connector_id IS NOT NULL), '[]') AS connectors
FROM (SELECT * FROM charge_points ORDER BY id LIMIT $1) cp
LEFT JOIN connectors c ON c.charge_point_id = cp.id
GROUP BY cp.id, cp.registration_status, cp.vendor, cp.model, cp.firmware_version,
         cp.last_seen_at, cp.connected, cp.connected_node
ORDER BY cp.id
"""

_ACTIVE_TRANSACTIONS_SQL = """
SELECT id AS transaction_id, charge_point_id, connector_id, id_tag, meter_start_wh,
       start_timestamp
FROM transactions
WHERE stop_received_at IS NULL
ORDER BY start_timestamp DESC
LIMIT 500
"""

# Only for open transactions the feed has no reading for (e.g. just after a restart).
_LAST_REGISTER_SQL = """
SELECT DISTINCT ON (transaction_id) transaction_id, value
FROM meter_values
WHERE transaction_id = ANY($1::integer[]) AND measurand = $2 AND phase IS NULL
  AND value IS NOT NULL
ORDER BY transaction_id, sampled_at DESC
"""

_BRIDGE_SESSIONS_SQL = """
SELECT s.id, s.charge_point_id, s.connector_id, s.transaction_id, s.state, s.vin,
       s.target_soc_percent, s.start_soc_percent, s.last_soc_percent, s.created_at,
       v.make, v.model, v.year
FROM charging_sessions s
LEFT JOIN vehicles v ON v.id = s.vehicle_id
WHERE s.ended_at IS NULL
ORDER BY s.created_at DESC
LIMIT 500
"""


async def read_snapshot(
    pool: asyncpg.Pool, limit: int, has_energy: Callable[[asyncpg.Record], bool]
) -> dict[str, Any]:
    """Chargers with connectors, open transactions, their last energy register where
    ``has_energy`` says we lack it, and open bridge sessions."""
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        total = await connection.fetchval("SELECT count(*) FROM charge_points")
        chargers = await connection.fetch(_CHARGERS_SQL, limit)
        transactions = await connection.fetch(_ACTIVE_TRANSACTIONS_SQL)
        missing = [t["transaction_id"] for t in transactions if not has_energy(t)]
        registers = {}
        if missing:
            found = await connection.fetch(_LAST_REGISTER_SQL, missing, ENERGY_REGISTER)
            registers = {r["transaction_id"]: r["value"] for r in found}
        has_bridge = await connection.fetchval("SELECT to_regclass('charging_sessions')")
        sessions = await connection.fetch(_BRIDGE_SESSIONS_SQL) if has_bridge else []
    return {
        "registers": registers,
        "total_chargers": total,
        "chargers": chargers,
        "transactions": transactions,
        "sessions": sessions,
    }


# -- snapshot ----------------------------------------------------------------------------


async def snapshot(system: CentralSystem, limit: int) -> dict[str, Any]:
    """What the dashboard shows, as JSON-ready values."""
    feed: DashboardFeed = system.dashboard_feed
    rows = await read_snapshot(system.pool, limit, feed.has_energy)
    here = system.ocpp.connections
    chargers = [_charger(row, here, system.node_id, feed) for row in rows["chargers"]]
    sessions = [_session(row) for row in rows["sessions"]]
    by_transaction = {s["transaction_id"]: s for s in sessions if s["transaction_id"]}
    transactions = [
        _transaction(row, feed, rows["registers"], by_transaction) for row in rows["transactions"]
    ]
    return {
        "generated_at": system.clock().isoformat(),
        "node_id": system.node_id,
        "total_chargers": rows["total_chargers"],
        "connected_here": len(here),
        "chargers": chargers,
        "transactions": transactions,
        "sessions": sessions,
        "events": feed.recent_entries(),
    }


def _charger(
    row: asyncpg.Record, here: dict[str, Any], node_id: str, feed: DashboardFeed
) -> dict[str, Any]:
    charge_point_id = row["id"]
    # Our own registry is exact; another process's flag is the best we know about it.
    connected = charge_point_id in here or (row["connected"] and row["connected_node"] != node_id)
    connectors = {c["connector_id"]: c for c in _json(row["connectors"])}
    for connector_id, live in feed.connectors.get(charge_point_id, {}).items():
        if live.status is None or live.status_at is None:
            continue
        stored = connectors.get(connector_id)
        if stored is None or live.status_at >= datetime.fromisoformat(stored["updated_at"]):
            connectors[connector_id] = {
                "connector_id": connector_id,
                "status": live.status,
                "error_code": live.error_code,
                "info": (stored or {}).get("info"),
                "updated_at": live.status_at.isoformat(),
            }
    return {
        "id": charge_point_id,
        "connected": connected,
        "registration_status": row["registration_status"],
        "vendor": row["vendor"],
        "model": row["model"],
        "firmware_version": row["firmware_version"],
        "last_seen_at": _iso(row["last_seen_at"]),
        "connectors": [connectors[k] for k in sorted(connectors)],
    }


def _transaction(
    row: asyncpg.Record,
    feed: DashboardFeed,
    registers: dict[int, float],
    sessions: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    live = feed.reading(row)
    register = registers.get(row["transaction_id"])
    soc = None
    if live is not None:
        register = live.energy_wh if live.energy_wh is not None else register
        soc = live.soc_percent
    session = sessions.get(row["transaction_id"])
    if soc is None and session is not None:
        soc = session["soc_percent"]
    energy = None if register is None else max(int(register - row["meter_start_wh"]), 0)
    return {
        "transaction_id": row["transaction_id"],
        "charge_point_id": row["charge_point_id"],
        "connector_id": row["connector_id"],
        "id_tag": row["id_tag"],
        "meter_start_wh": row["meter_start_wh"],
        "started_at": _iso(row["start_timestamp"]),
        "energy_wh": energy,
        "soc_percent": soc,
        "vehicle": session["vehicle"] if session else None,
    }


def _session(row: asyncpg.Record) -> dict[str, Any]:
    name = " ".join(str(p) for p in (row["year"], row["make"], row["model"]) if p) or None
    return {
        "id": row["id"],
        "charge_point_id": row["charge_point_id"],
        "connector_id": row["connector_id"],
        "transaction_id": row["transaction_id"],
        "state": row["state"],
        "target_soc_percent": row["target_soc_percent"],
        "start_soc_percent": row["start_soc_percent"],
        "soc_percent": row["last_soc_percent"],
        "started_at": _iso(row["created_at"]),
        "vehicle": {"vin": mask_vin(row["vin"]), "name": name},
    }


def _json(value: Any) -> list[dict[str, Any]]:
    # asyncpg returns json as text unless a codec is set on the pool.
    if isinstance(value, str):
        return json.loads(value)
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- routes ------------------------------------------------------------------------------

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    # The page loads nothing from elsewhere; the token must not leak through a Referer.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def create_page_router() -> APIRouter:
    """``/`` and its two assets: static and open, since they hold no data."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", headers=_PAGE_HEADERS)

    @router.get("/static/{name}", response_model=None)
    async def asset(name: str) -> FileResponse | JSONResponse:
        media_type = _ASSETS.get(name)
        if media_type is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return FileResponse(STATIC / name, media_type=media_type, headers=_PAGE_HEADERS)

    return router


def create_api_router(system: CentralSystem) -> APIRouter:
    """``GET /api/dashboard``: mount it where the operator token is required."""
    router = APIRouter(tags=["dashboard"])

    @router.get("/api/dashboard")
    async def dashboard(limit: int = Query(default=500, ge=1, le=5000)) -> JSONResponse:
        return JSONResponse(await snapshot(system, limit), headers={"Cache-Control": "no-store"})

    return router
