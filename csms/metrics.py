"""Prometheus metrics: cheap hot-path hooks, plus gauges read only when scraped.

One ``Metrics`` per ``CentralSystem``, each with its own ``CollectorRegistry``, so several
systems in one process (tests) never collide. The hot-path methods (``observe_call``,
``call_error``, ``command_sent``) cost a dict lookup and a pre-bound child's ``inc`` or
``observe``: label children are bound once per action, never per message. Anything that can
be read from state we already hold (connections, the pool, the database) is read at scrape
time by ``SystemCollector`` instead of being counted as it happens.

Action labels are limited to the OCPP 1.6 action names (anything else is ``other``), so a
charger cannot grow the number of series. A plug-in adds its own series to ``registry`` and,
for what it reads at scrape time, a callback with ``on_refresh``.
"""

from __future__ import annotations

import asyncio
import platform
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

import asyncpg
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

log = structlog.get_logger()

# ``*_created`` series double every counter and histogram for a timestamp no dashboard uses.
disable_created_metrics()

# OCPP 1.6 (+ security whitepaper) action names, in both directions: the only label values.
OCPP16_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "DeleteCertificate",
        "DiagnosticsStatusNotification",
        "ExtendedTriggerMessage",
        "FirmwareStatusNotification",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLog",
        "GetLocalListVersion",
        "Heartbeat",
        "InstallCertificate",
        "LogStatusNotification",
        "MeterValues",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SecurityEventNotification",
        "SendLocalList",
        "SetChargingProfile",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "SignedUpdateFirmware",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)
OTHER = "other"

# OCPP-J 4.2.3 error codes, one label each: the 1.6 spelling ("FormationViolation",
# "OccurenceConstraintViolation"), with the later spellings counted under it.
CALL_ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)
CALL_ERROR_ALIASES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}

# Connector statuses of OCPP 1.6 (7.7 ChargePointStatus): every one is reported, 0 or not.
CONNECTOR_STATUSES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
)

# Handling an OCPP call is usually sub-millisecond; a slow database shows up in seconds.
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def action_label(action: str) -> str:
    return action if action in OCPP16_ACTIONS else OTHER


class OcppTraffic(Collector):
    """Messages per action and direction, and handling latency per action.

    Plain lists and ints rather than ``prometheus_client`` metric objects: this runs once per
    message, and without their locks and checks an observation costs a fifth as much. Safe
    because every caller and the scrape run on the event loop's thread.
    """

    def __init__(self) -> None:
        # Per action: one count per bucket (the last is +Inf), then the sum of seconds.
        self.calls_in: dict[str, list[float]] = {
            action: [0] * (len(CALL_BUCKETS) + 1) + [0.0] for action in (*OCPP16_ACTIONS, OTHER)
        }
        self.calls_out: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "csms_ocpp_messages",
            "OCPP CALLs by action and direction (in: from chargers, out: our commands).",
            labels=["action", "direction"],
        )
        duration = HistogramMetricFamily(
            "csms_ocpp_call_duration_seconds",
            "Time to handle a charger's CALL and send the answer, by action.",
            labels=["action"],
        )
        for action, stats in sorted(self.calls_in.items()):
            counts, total = stats[:-1], stats[-1]
            count = sum(counts)
            if not count:
                continue  # 30-odd idle actions would be noise in every scrape
            messages.add_metric([action, "in"], count)
            cumulative, buckets = 0.0, []
            for bound, bucket in zip((*CALL_BUCKETS, float("inf")), counts, strict=True):
                cumulative += bucket
                buckets.append((_le(bound), cumulative))
            duration.add_metric([action], buckets, total)
        for action, count in sorted(self.calls_out.items()):
            messages.add_metric([action, "out"], count)
        yield messages
        yield duration

    def describe(self) -> list[Any]:
        return []


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class Metrics:
    """The registry and the counters the OCPP side, the command API and plug-ins feed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.traffic = OcppTraffic()
        registry.register(self.traffic)
        self.call_errors = Counter(
            "csms_ocpp_call_errors",
            "CALLERRORs by code (out: we answered with one, in: a charger answered with one).",
            ["code", "direction"],
            registry=registry,
        )
        self.commands = Counter(
            "csms_ocpp_commands",
            "Central-system commands by action and outcome "
            "(answered, call_error, timeout, not_connected).",
            ["action", "outcome"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "csms_auth_failures",
            "Refused authentications by protocol (ocpp: a charger's handshake, http: an "
            "operator token) and reason.",
            ["protocol", "reason"],
            registry=registry,
        )
        self.http_requests = Counter(
            "csms_http_requests",
            "HTTP requests by route template, method and status class (2xx, 4xx, ...).",
            ["route", "method", "status"],
            registry=registry,
        )
        build = Gauge(
            "csms_build_info",
            "Always 1; the labels say which build runs.",
            ["version", "python"],
            registry=registry,
        )
        build.labels(_version(), platform.python_version()).set(1)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        # Pre-bound children: the hot path does one dict lookup, never .labels().
        self._errors_out = {code: self.call_errors.labels(code, "out") for code in CALL_ERROR_CODES}
        self._errors_in = {code: self.call_errors.labels(code, "in") for code in CALL_ERROR_CODES}
        for alias, code in CALL_ERROR_ALIASES.items():
            self._errors_out[alias], self._errors_in[alias] = (
                self._errors_out[code],
                self._errors_in[code],
            )
        self.system: SystemCollector | None = None
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    # -- hot path -------------------------------------------------------------------------

    def observe_call(self, action: str, seconds: float) -> None:
        """A charger's CALL was handled and answered (result or error) in ``seconds``."""
        # Inlined (no call into OcppTraffic): this runs for every message.
        stats = self.traffic.calls_in.get(action) or self.traffic.calls_in[OTHER]
        stats[bisect_left(CALL_BUCKETS, seconds)] += 1
        stats[-1] += seconds

    def call_error(self, code: str, direction: str = "out") -> None:
        """A CALLERROR with ``code`` was sent (``out``) or received in answer to a command."""
        errors = self._errors_out if direction == "out" else self._errors_in
        child = errors.get(code)
        if child is None:
            child = self.call_errors.labels(OTHER, direction)
        child.inc()

    def command_sent(self, action: str, outcome: str) -> None:
        """A command finished: ``answered`` or a ``CommandError.outcome``."""
        action = action_label(action)
        self.commands.labels(action, outcome).inc()
        if outcome not in ("not_connected", "queue_timeout"):  # a CALL went out on the wire
            calls_out = self.traffic.calls_out
            calls_out[action] = calls_out.get(action, 0) + 1

    def auth_failed(self, protocol: str, reason: str) -> None:
        """A charger's handshake (``ocpp``) or an operator token (``http``) was refused."""
        self.auth_failures.labels(protocol, reason).inc()

    def http_request(self, route: str, method: str, status: int) -> None:
        """One HTTP request answered; ``route`` is the template, never the concrete path."""
        self.http_requests.labels(route, method, f"{status // 100}xx").inc()

    # -- scrape time ----------------------------------------------------------------------

    def watch_system(self, pool: asyncpg.Pool, connected: Callable[[], int]) -> None:
        """Add the gauges read at scrape time from the pool, the registry and the database."""
        if self.system is not None:
            self.registry.unregister(self.system)
        self.system = SystemCollector(pool, connected)
        self.registry.register(self.system)

    async def refresh(self) -> None:
        """Read what needs the database; call before ``generate_latest(self.registry)``."""
        if self.system is not None:
            await self.system.refresh()
        for refresh in self._refreshers:
            await refresh()

    def on_refresh(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Have ``refresh`` read (for a plug-in's collector) before every scrape."""
        self._refreshers.append(refresh)


def _version() -> str:
    try:
        return metadata.version("csms")
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


_TOTALS_SQL = """
SELECT
    (SELECT count(*) FROM transactions WHERE stop_received_at IS NULL) AS active_transactions,
    (SELECT coalesce(sum(meter_stop_wh - meter_start_wh), 0) FROM transactions
      WHERE stop_received_at IS NOT NULL AND meter_stop_wh >= meter_start_wh
        AND NOT meter_anomaly) AS energy_delivered_wh
"""
# Connector 0 is the whole charger (1.6 §4.9), not a place to plug in.
_CONNECTORS_SQL = """
SELECT status, count(*) AS connectors FROM connectors WHERE connector_id > 0 GROUP BY status
"""


async def read_totals(pool: asyncpg.Pool, timeout: float) -> dict[str, int]:
    """Counts and sums over the whole system, in one round trip."""
    async with asyncio.timeout(timeout):  # covers waiting for a free connection too
        async with pool.acquire() as connection:
            row = await connection.fetchrow(_TOTALS_SQL)
            by_status = await connection.fetch(_CONNECTORS_SQL)
    assert row is not None
    totals = {key: int(value) for key, value in row.items()}
    for status in CONNECTOR_STATUSES:
        totals[f"connectors:{status}"] = 0
    for record in by_status:
        # A status outside 1.6's list (normalised on the way in, so rare) is counted as other.
        status = record["status"] if record["status"] in CONNECTOR_STATUSES else OTHER
        key = f"connectors:{status}"
        totals[key] = totals.get(key, 0) + int(record["connectors"])
    return totals


T = TypeVar("T")


class ScrapeTimeRead(Generic[T]):
    """A database read made at scrape time, at most once per ``min_interval`` however many
    scrapers there are. ``value`` is None while the last read failed, so a collector leaves
    its series out rather than repeating a stale value (plug-ins' collectors use it too)."""

    def __init__(self, read: Callable[[], Awaitable[T]], *, min_interval: float = 5.0) -> None:
        self._read = read
        self._min_interval = min_interval
        self.value: T | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._read_at < self._min_interval:
                return
            try:
                self.value = await self._read()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("metrics.totals_unavailable", error=repr(exc))
                self.value = None
            self._read_at = time.monotonic()


class SystemCollector(Collector):
    """Gauges computed when scraped: connections, pool use, and totals from SQL.

    The SQL runs in ``refresh`` (async, at most once per ``min_interval`` however many
    scrapers there are); ``collect`` only reads what is held. If the last read failed, the
    SQL-derived series are left out rather than repeating stale values, and
    ``csms_metrics_database_ok`` says so.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        connected: Callable[[], int],
        *,
        min_interval: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        self._pool = pool
        self._connected = connected
        self._totals = ScrapeTimeRead(lambda: read_totals(pool, timeout), min_interval=min_interval)

    async def refresh(self) -> None:
        await self._totals.refresh()

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "csms_ocpp_connected_charge_points",
            "Chargers with an open WebSocket to this process.",
            self._connected(),
        )
        pool = self._pool
        size, idle = pool.get_size(), pool.get_idle_size()
        yield _gauge("csms_db_pool_size", "Open database connections.", size)
        yield _gauge("csms_db_pool_in_use", "Database connections checked out.", size - idle)
        yield _gauge("csms_db_pool_max_size", "The pool's connection limit.", pool.get_max_size())
        totals = self._totals.value
        yield _gauge(
            "csms_metrics_database_ok",
            "1 if the last scrape-time database read succeeded.",
            int(totals is not None),
        )
        if totals is None:
            return
        yield _gauge(
            "csms_transactions_active",
            "Open OCPP transactions (all processes).",
            totals["active_transactions"],
        )
        connectors = GaugeMetricFamily(
            "csms_connectors",
            "Connectors (connector 0 excluded) by their last reported status, all chargers.",
            labels=["status"],
        )
        for key, count in totals.items():
            if key.startswith("connectors:"):
                connectors.add_metric([key.removeprefix("connectors:")], count)
        yield connectors
        energy = CounterMetricFamily(
            "csms_energy_delivered_wh",
            "Energy delivered by completed transactions (meterStop - meterStart, Wh).",
        )
        energy.add_metric([], totals["energy_delivered_wh"])
        yield energy

    def describe(self) -> list[Any]:
        return []  # dynamic: nothing to check for name clashes at registration


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
