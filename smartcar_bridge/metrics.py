"""The bridge's Prometheus series, added to the core's registry when the bridge runs.

Smartcar paths are reduced to endpoints (the vehicle id becomes ``{id}``), so a car cannot
grow the number of series. Open sessions are counted at scrape time (``refresh``, hooked
into the core's ``Metrics.on_refresh``), not as they change.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from csms.metrics import ScrapeTimeRead

# Smartcar calls go to a car's cloud: hundreds of ms to tens of seconds (commands: minutes).
SMARTCAR_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 310.0)

_ID_PARENTS = frozenset({"vehicles", "connections", "subscriptions", "webhooks", "users"})


def smartcar_endpoint(path: str) -> str:
    """``/v2.0/vehicles/<uuid>/battery`` → ``/v2.0/vehicles/{id}/battery``: one series per route."""
    parts = path.split("/")
    for index in range(len(parts) - 1):
        # v3 (smartcar-api.md §14) adds ids after connections/subscriptions/webhooks/users.
        if parts[index] in _ID_PARENTS and parts[index + 1]:
            parts[index + 1] = "{id}"
        elif parts[index] == "commands" and parts[index + 1].startswith("exec_"):
            parts[index + 1] = "{execution_id}"
    return "/".join(parts)


class SmartcarMetrics:
    """``csms_smartcar_requests_total`` and ``csms_smartcar_request_duration_seconds``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "csms_smartcar_requests",
            "Smartcar HTTP attempts by endpoint, outcome (ok or the error type) and purpose "
            "(stop, final_read, start, confirm, session_read, monitor, match, link, other).",
            ["endpoint", "outcome", "purpose"],
            registry=registry,
        )
        self.duration = Histogram(
            "csms_smartcar_request_duration_seconds",
            "Smartcar HTTP attempt latency by endpoint.",
            ["endpoint"],
            buckets=SMARTCAR_BUCKETS,
            registry=registry,
        )

    def smartcar_call(
        self, path: str, outcome: str, seconds: float, purpose: str = "other"
    ) -> None:
        """One Smartcar HTTP attempt: ``outcome`` is ``ok`` or the error's type."""
        endpoint = smartcar_endpoint(path)
        self.requests.labels(endpoint, outcome, purpose).inc()
        self.duration.labels(endpoint).observe(seconds)


_OPEN_SESSIONS = "SELECT count(*) FROM charging_sessions WHERE ended_at IS NULL"


class SessionsCollector(Collector):
    """``csms_bridge_sessions_active``: read in ``refresh`` (at most every ``min_interval``),
    left out of the scrape while the last read failed rather than repeating a stale value."""

    def __init__(self, pool: asyncpg.Pool, *, min_interval: float = 5.0, timeout: float = 2.0):
        async def read() -> int:
            return int(await pool.fetchval(_OPEN_SESSIONS, timeout=timeout))

        self._open = ScrapeTimeRead(read, min_interval=min_interval)

    async def refresh(self) -> None:
        await self._open.refresh()

    def collect(self) -> Iterator[Metric]:
        if (open_sessions := self._open.value) is not None:
            yield GaugeMetricFamily(
                "csms_bridge_sessions_active",
                "Open Smartcar plug-and-charge sessions.",
                value=open_sessions,
            )

    def describe(self) -> list[Metric]:
        return []  # dynamic, like the core's SystemCollector
