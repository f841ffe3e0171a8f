"""The operators' dashboard: a static page at ``/`` and its fleet JSON under ``/api/dashboard/``.

The page is open (it holds no data); every data call it makes goes to ``/api/``, under the
operator-token guard. It polls rather than holding a server-sent-events stream:
``EventSource`` cannot send an ``Authorization`` header, so a stream would need the token
in its URL (where access logs and proxies keep it); a bounded page every few seconds is
cheap, survives proxies that buffer, and needs no reconnection logic.

Everything shown is read from the database (``csms/db/fleet.py``), so the counts, the
filters and the pages agree with each other for thousands of chargers; the only live state
kept here is ``DashboardFeed``, the last events from the bus. What the core does not own
(a plug-in's counts) comes in as ``csms.plugins.DashboardPanel``s: each adds its section
under its name and the cards the page draws (the page knows a card's shape, nothing more).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse

from csms.db import fleet
from csms.domain.events import Event, EventPort, MeterSampled
from csms.http.paging import MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor, jsonable
from csms.http.problems import problem
from csms.http.schemas import DashboardSummary, FleetPage, errors

if TYPE_CHECKING:
    import asyncpg

    from csms.plugins import DashboardPanel
    from csms.ports import PresencePort

log = structlog.get_logger()

STATIC = Path(__file__).parent / "static"
RECENT_EVENTS = 50


class DashboardFeed:
    """The last events from the event bus, for the dashboard's "recent events"."""

    def __init__(self, events: EventPort, size: int = RECENT_EVENTS) -> None:
        self._bus = events
        self._queue = events.observe()  # now, so nothing published before start is missed
        # (seq, event): turned into JSON only when the page asks; a reconnecting fleet
        # sends tens of thousands of events of which only the last few are ever shown.
        self.recent: deque[tuple[int, Any]] = deque(maxlen=size)
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
        # Meter samples are too frequent for the list; the session page charts them.
        if type(event) is not MeterSampled:
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


class SummaryCache:
    """The last summary per start-of-day, reused for ``max_age`` seconds.

    The summary scans the whole fleet; every open dashboard polls it. Concurrent requests
    wait for one read rather than each starting their own, so ten operators cost one.
    """

    def __init__(self, max_age: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self._max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._kept: dict[datetime, tuple[float, dict[str, Any]]] = {}

    async def get(
        self, since: datetime, read: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        async with self._lock:
            kept = self._kept.get(since)
            if kept is not None and self._clock() - kept[0] < self._max_age:
                return kept[1]
            body = await read()
            # Only a handful of distinct days are ever asked for (one per time zone).
            self._kept = {k: v for k, v in self._kept.items() if self._fresh(v[0])}
            self._kept[since] = (self._clock(), body)
            return body

    def _fresh(self, at: float) -> bool:
        return self._clock() - at < self._max_age


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
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
# Only files shipped in static/ are served, by exact name: no path ever reaches the disk.
_ASSETS = {
    path.name: _MEDIA_TYPES[path.suffix] for path in STATIC.iterdir() if path.suffix in _MEDIA_TYPES
}


def create_page_router() -> APIRouter:
    """``/`` and its assets: static and open, since they hold no data."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", headers=_PAGE_HEADERS)

    @router.get("/static/{name}", response_model=None)
    async def asset(name: str) -> FileResponse | JSONResponse:
        media_type = _ASSETS.get(name)
        if media_type is None:
            return problem(404, "Not found", f"no asset {name!r}")
        return FileResponse(STATIC / name, media_type=media_type, headers=_PAGE_HEADERS)

    return router


def _start_of_today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def create_api_router(
    pool: asyncpg.Pool,
    presence: PresencePort,
    clock: Callable[[], datetime],
    feed: DashboardFeed | None,
    panels: Mapping[str, DashboardPanel] | None = None,
) -> APIRouter:
    """``/api/dashboard/summary`` and ``/api/dashboard/chargers``, under the token guard."""
    router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])
    extra = dict(panels or {})
    cache = SummaryCache()
    no_store = {"Cache-Control": "no-store"}

    def live() -> dict[str, Any]:
        return {"node_id": presence.node_id, "live": presence.held_here()}

    @router.get(
        "/summary",
        response_model=DashboardSummary,
        responses=errors(422),
        summary="Fleet summary",
        description=(
            "Chargers by connection, registration and state; connectors by status (those "
            "of offline chargers as Offline); open transactions; the energy of transactions "
            "started since `since`; recent events; and each plug-in's section (the "
            "bridge's outcomes since `since`, when it runs) with its `cards`."
        ),
    )
    async def summary(
        since: datetime | None = Query(  # noqa: B008
            default=None,
            description="start of the operator's day, with a time zone; default 00:00 UTC",
        ),
    ) -> JSONResponse:
        if since is not None and since.tzinfo is None:
            detail = "invalid value for since: give a time zone (Z or +hh:mm)"
            return problem(422, "Invalid request", detail, field="since")
        since = since or _start_of_today()

        async def read() -> dict[str, Any]:
            body = await fleet.summary(pool, **live(), since=since)
            cards: list[dict[str, Any]] = []
            for name, panel in extra.items():
                section = body[name] = await panel.read(since)
                cards += panel.cards(section)
            body.update(
                cards=cards,
                generated_at=clock(),
                since=since,
                node_id=presence.node_id,
                events=feed.recent_entries() if feed is not None else [],
            )
            return jsonable(body)

        return JSONResponse(await cache.get(since, read), headers=no_store)

    @router.get(
        "/chargers",
        response_model=FleetPage,
        responses=errors(422),
        summary="Chargers, searched and filtered, one page at a time",
        description=(
            "Chargers by id with their derived `state` (offline whatever their connectors "
            "last said, then rejected, pending, faulted, charging, online), connectors, "
            "last-seen time and open transactions; `total` counts all that match."
        ),
    )
    async def chargers(
        search: str | None = Query(
            default=None, max_length=100, description="substring of id, vendor, model, serial"
        ),
        state: str | None = Query(
            default=None, pattern="^(" + "|".join(fleet.STATES) + ")$", description="filter"
        ),
        limit: int = Query(default=50, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> JSONResponse:
        try:
            after = str(decode_cursor("fleet", cursor)[0]) if cursor else None
        except (InvalidCursor, IndexError):
            return problem(422, "Invalid request", "invalid value for cursor", field="cursor")
        total, rows = await fleet.chargers(
            pool,
            fleet.ChargerFilter(search=search or None, state=state),
            **live(),
            after_id=after,
            limit=limit,
        )
        next_cursor = encode_cursor("fleet", rows[-1]["id"]) if len(rows) == limit else None
        body = {"total": total, "items": jsonable(rows), "next_cursor": next_cursor}
        return JSONResponse(body, headers=no_store)

    return router
