"""``python -m bench fleet``: plug-and-charge at fleet scale (issue 16), ours only.

A compressed day against our central system with the Smartcar bridge on, over real
sockets: ``FLEET_CHARGERS`` chargers, each its own site with 2-4 AC connectors, the linked
cars (``CSMS_BENCH_FLEET_SIZES``, default 100 and 1,000; the makes in ``SILENT_MAKES``, about
a quarter of the fleet, send no webhooks and must be polled), and ``PLUG_INS_PER_CAR``
plug-ins per car over a 16-hour day (06:00-22:00) with a morning and an evening rush.
Every car charges at one of the chargers nearest its home, stays 30 min to 2 h and
leaves; the bridge matches it, starts, monitors, stops at its target and bills.

**Time.** The world runs at ``SPEED`` simulated seconds per real second, so the day takes
``DAY_S / SPEED`` real seconds. The Smartcar fake keeps the real clock (tokens, data age)
and gets its limits on the world's clock instead (``CostLimits.compressed``): the
application bucket holds Smartcar's 120 calls and refills at 2 per *simulated* minute
(``CSMS_BENCH_FLEET_REFILL`` sets another rate), a car is throttled after 6 calls in a
*simulated* minute (``Retry-After`` in whole real seconds, at least 1), 500 calls per car
and month. The bridge's own bucket is set to the same (``SMARTCAR_RATE_REFILL_PER_MINUTE``
= refill x ``SPEED``). Its matching timers stay real
seconds sized for real round trips (a webhook does not arrive 240 times faster), so
latencies are reported in real seconds.

**Linking** is not part of the day (a fleet links over months): a first server, with the
bridge's bucket unlimited and the fake's limits off, links every car through Smartcar
Connect, each car subscribing to the webhook. The day then runs on a second server on the
same database and ports, with the limits on from a full bucket.

What it prints, per fleet size: Smartcar calls per plug-in decision and per session-hour
(median, p95, max; a session shorter than an hour counts as one hour), split by cars with
and without webhooks; calls by purpose (``csms_smartcar_requests_total``); the 429s and
430s the fake sent; the share of plug-ins started automatically; wrong starts (a session
for another car than the one on the cable); and plug-in -> RemoteStart latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

from bench.common import Options
from bench.servers import ROOT, free_port, terminate
from simulators.smartcar_fake.limits import CostLimits
from simulators.smartcar_fake.server import RunningFake, run_smartcar_fake
from simulators.smartcar_fake.state import FakeConfig
from simulators.smartcar_fake.webhooks import CABLE_SIGNAL, CHARGING_SIGNAL
from simulators.world import World, distance_m
from simulators.world_drivers import Drivers, fetch_plug_ins, plug_in_report, set_up
from simulators.world_runner import WorldRunner

# Simulated seconds per real second (``CSMS_BENCH_FLEET_SPEED``): the day takes DAY_S / SPEED.
SPEED = float(os.environ.get("CSMS_BENCH_FLEET_SPEED", "240"))
# The application bucket's refill per simulated minute (``CSMS_BENCH_FLEET_REFILL``): 2 is
# Smartcar's published default; a plan with more (support raises it) is tried by setting it.
REFILL_PER_MINUTE = float(os.environ.get("CSMS_BENCH_FLEET_REFILL", "2"))
DAY_S = 16 * 3600.0  # 06:00 to 22:00
FLEET_CHARGERS = 100
PLUG_INS_PER_CAR = 0.55
# Makes whose cars send no webhooks in this world (Hyundai/Kia: the OEM allows little, §9).
SILENT_MAKES = frozenset({"HYUNDAI", "KIA", "NISSAN"})
DEFAULT_SIZES = (100, 1000)
QUICK_SIZES = (100,)
CLIENT_ID = "bench-fleet-client"
CLIENT_SECRET = "bench-fleet-secret"
AMT = "bench-fleet-management-token"
SECRET_KEY = "bench-fleet-secret-key-not-for-production"
# Budgets of issue 16.
DECISION_BUDGET = 5
SESSION_HOUR_BUDGET = {"webhooks": 12, "polling": 20}


# --- the day (pure) ---------------------------------------------------------------------------


def arrival_times(count: int, day_s: float, rng: random.Random) -> list[float]:
    """``count`` plug-in times over the day: a third spread evenly, a third around 08:00
    (sd 40 min), a third around 17:30 (sd 50 min); the day starts at 06:00."""
    times: list[float] = []
    while len(times) < count:
        kind = rng.random()
        if kind < 1 / 3:
            t = rng.uniform(0.0, day_s)
        elif kind < 2 / 3:
            t = rng.gauss(2 * 3600.0, 40 * 60.0)
        else:
            t = rng.gauss(11.5 * 3600.0, 50 * 60.0)
        # The last driver arrives 2 h before the end: every session closes within the day.
        if 0.0 <= t <= day_s - 2 * 3600.0:
            times.append(t)
    return sorted(times)


def fleet_world(cars: int, chargers: int, seed: int) -> World:
    """``chargers`` sites of one AC charger each, 2-4 connectors, and ``cars`` cars."""
    world = World.generate(chargers, cars, seed, per_site=1)
    rng = random.Random(f"{seed}:fleet-layout")
    layout = [
        replace(
            c,
            dc=False,
            connectors=rng.choice((2, 3, 4)),
            max_power_w=rng.choice((11_000.0, 22_000.0)),
        )
        for c in world.chargers.values()
    ]
    return World(world.vehicles.values(), layout)


def home_chargers(world: World, per_car: int = 3) -> dict[str, list[str]]:
    """Each car's ``per_car`` nearest chargers, nearest first: where its driver charges."""
    chargers = list(world.chargers.values())
    return {
        v.vin: [
            c.id
            for c in sorted(
                chargers, key=lambda c: distance_m(v.latitude, v.longitude, c.latitude, c.longitude)
            )[:per_car]
        ]
        for v in world.vehicles.values()
    }


def spread(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "median": None, "p95": None, "max": None}
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "count": len(ordered),
        "median": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "max": round(ordered[-1], 2),
    }


_METRIC = re.compile(r"^csms_smartcar_requests_total\{(?P<labels>.*)\}\s+(?P<value>\S+)$")


def calls_by_label(metrics_text: str, label: str) -> dict[str, int]:
    """Sum ``csms_smartcar_requests_total`` by one label, from Prometheus text."""
    found: Counter[str] = Counter()
    for line in metrics_text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        found[labels.get(label, "")] += round(float(match["value"]))
    return dict(sorted(found.items()))


# --- the central system -----------------------------------------------------------------------


class BridgeServer:
    """``python -m csms serve`` with the bridge on, on fixed ports and a given database."""

    def __init__(self, dsn: str, ocpp_port: int, http_port: int, log_path: Path) -> None:
        self.dsn = dsn
        self.ocpp_port = ocpp_port
        self.http_port = http_port
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_dir(self) -> Path:
        return self._log_path.parent

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cpu_seconds(self) -> float:
        assert self._process is not None
        with open(f"/proc/{self._process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _spawn(self, bridge_env: dict[str, str]) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(
            CSMS_DATABASE_URL=self.dsn,
            CSMS_OCPP_HOST="127.0.0.1",
            CSMS_OCPP_PORT=str(self.ocpp_port),
            CSMS_HTTP_HOST="127.0.0.1",
            CSMS_HTTP_PORT=str(self.http_port),
            # CSMS_BENCH_FLEET_LOG_LEVEL=info keeps every bridge decision, to diagnose one.
            CSMS_LOG_LEVEL=os.environ.get("CSMS_BENCH_FLEET_LOG_LEVEL", "warning"),
            CSMS_HEARTBEAT_INTERVAL="300",
            **bridge_env,
        )
        self._log = open(self._log_path, "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "csms", "serve"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def start(self, bridge_env: dict[str, str], timeout: float = 60.0) -> None:
        self._process = self._spawn(bridge_env)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"csms exited at start-up, see {self._log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.http_url}/healthz")).status_code < 500:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"csms not answering after {timeout}s, see {self._log_path}")

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def operator_token(self) -> str:
        env = dict(os.environ, CSMS_DATABASE_URL=self.dsn)
        done = subprocess.run(
            [sys.executable, "-m", "csms", "token", "create", f"bench-fleet-{os.getpid()}"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.strip().splitlines()[-1]


def bridge_env(fake: RunningFake, http_port: int, *, speed: float, linking: bool) -> dict[str, str]:
    """The bridge pointed at the fake (Vehicles API v3), limits on the world's clock."""
    redirect = f"http://127.0.0.1:{http_port}/smartcar/callback"
    bucket = ("1000000", "1000000") if linking else ("120", str(REFILL_PER_MINUTE * speed))
    return {
        "SMARTCAR_CLIENT_ID": CLIENT_ID,
        "SMARTCAR_CLIENT_SECRET": CLIENT_SECRET,
        "SMARTCAR_REDIRECT_URI": redirect,
        "SMARTCAR_API_URL": fake.api_url,
        "SMARTCAR_AUTH_URL": fake.auth_url,
        "SMARTCAR_CONNECT_URL": fake.connect_url,
        "SMARTCAR_V3_API_URL": fake.v3_api_url,
        "SMARTCAR_MANAGEMENT_API_URL": fake.management_url,
        "SMARTCAR_IAM_URL": fake.iam_url,
        "SMARTCAR_MANAGEMENT_TOKEN": AMT,
        "SMARTCAR_WEBHOOK_ID": fake.fake.webhooks.webhook_id,
        "CSMS_SECRET_KEY": SECRET_KEY,
        "SMARTCAR_RATE_BUCKET_SIZE": bucket[0],
        "SMARTCAR_RATE_REFILL_PER_MINUTE": bucket[1],
        "CSMS_BRIDGE_DECISION_READS": "4",
        "CSMS_BRIDGE_SESSION_CALL_BUDGET": "12",
        # Real seconds (see the module docstring): sized for real round trips.
        "CSMS_BRIDGE_WEBHOOK_LAG": "2",
        "CSMS_BRIDGE_MATCH_WINDOW": "8",
        "CSMS_BRIDGE_MATCH_SETTLE": "0.5",
        "CSMS_BRIDGE_MATCH_GIVE_UP_AFTER": "20",
        "CSMS_BRIDGE_CONFIRM_TIMEOUT": "10",
        "CSMS_BRIDGE_CONFIRM_POLL": "1",
        # Positions on the world's clock: 30 simulated minutes.
        "CSMS_BRIDGE_POSITION_TRUSTED": str(round(1800.0 / speed, 3)),
        # Five simulated minutes between monitoring passes.
        "CSMS_BRIDGE_POLL_INTERVAL": str(round(300.0 / speed, 3)),
    }


# --- one run ------------------------------------------------------------------------------------


@dataclass
class Day:
    runner: WorldRunner
    homes: dict[str, list[str]]
    rng: random.Random
    turned_away: int = 0

    def arrive(self, dwell_s: float) -> None:
        world = self.runner.world
        idle = [v.vin for v in world.vehicles.values() if not v.plugged_in]
        if not idle:
            self.turned_away += 1
            return
        vin = self.rng.choice(idle)
        for charger_id in self.homes[vin]:
            charger = world.chargers[charger_id]
            free = [
                n
                for n in range(1, charger.connectors + 1)
                if world.vehicle_at(charger_id, n) is None
            ]
            if free:
                self.runner.plug_in(vin, charger_id, free[0], dwell_s=dwell_s)
                return
        self.turned_away += 1  # every charger near home is taken: the driver goes elsewhere

    async def run(self, times: Sequence[float]) -> None:
        for at in times:
            wait = self.runner.clock.real_delay(at - self.runner.elapsed_s)
            if wait > 0:
                await asyncio.sleep(wait)
            self.arrive(self.rng.uniform(1800.0, 7200.0))


async def _wait_for(db: asyncpg.Connection, query: str, *args: Any, timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await db.fetchval(query, *args)):  # noqa: ASYNC110 - a query
            await asyncio.sleep(0.25)
    return value


@contextlib.asynccontextmanager
async def _fake(world: World, port: int, speed: float, redirect: str) -> AsyncIterator[RunningFake]:
    config = FakeConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=(redirect,))
    async with run_smartcar_fake(world, config=config, port=port) as fake:
        hooks = fake.fake.webhooks
        hooks.silent_makes = set(SILENT_MAKES)
        # §10's "Detect a charging session" webhook: triggers on charging and cable only;
        # SoC, location and the rest ride along as data.
        hooks.triggers = frozenset({str(CHARGING_SIGNAL["code"]), str(CABLE_SIGNAL["code"])})
        hooks.poll_interval_s = 0.1  # the OEM reports a change within ~25 simulated s
        hooks.duplicate_share = 0.05  # at least once
        hooks.max_reorder_delay_s = 0.2  # unordered, up to ~50 simulated s
        hooks.retry_scale = 1.0 / speed
        fake.fake.v3.v2_retired = True  # v2.0 is switched off (§14.6): v3 only
        yield fake


async def run_size(cars: int, options: Options, *, quick: bool) -> dict[str, Any]:
    assert options.database is not None
    seed = 16
    world = fleet_world(cars, FLEET_CHARGERS, seed)
    plug_ins = max(1, round(cars * PLUG_INS_PER_CAR))
    times = arrival_times(plug_ins, DAY_S, random.Random(f"{seed}:arrivals"))
    dsn = await asyncio.to_thread(options.database.fresh)  # it runs its own loop
    ocpp_port, http_port, sc_port = free_port(), free_port(), free_port()
    log_dir = options.log_dir or Path("/tmp")
    server = BridgeServer(dsn, ocpp_port, http_port, log_dir / f"bench-fleet-{cars}.log")
    results: dict[str, Any] = {"cars": cars, "chargers": FLEET_CHARGERS, "speed": SPEED}
    results["connectors"] = sum(c.connectors for c in world.chargers.values())
    results["polling_cars"] = sum(v.make in SILENT_MAKES for v in world.vehicles.values())
    drivers = Drivers(tuple(world.vehicles), (), ())
    redirect = f"http://127.0.0.1:{http_port}/smartcar/callback"
    async with _fake(world, sc_port, SPEED, redirect) as fake:
        # 1. Linking, limits off (a fleet links over months, not in its day).
        t0 = time.monotonic()
        await server.start(bridge_env(fake, http_port, speed=SPEED, linking=True))
        try:
            token = server.operator_token()
            fake.fake.webhooks.configure(f"{server.http_url}/smartcar/webhooks", AMT)
            if not await fake.fake.webhooks.verify():
                raise RuntimeError("the bridge did not answer the webhook's VERIFY")
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=server.http_url, headers=headers, timeout=60.0
            ) as api:
                await set_up(api, world, fake, drivers)
            db = await asyncpg.connect(dsn)
            try:
                watched = cars - results["polling_cars"]
                await _wait_for(
                    db, "SELECT count(*) >= $1 FROM vehicles WHERE webhook_seen_at IS NOT NULL",
                    watched, timeout=120.0,
                )  # fmt: skip
            finally:
                await db.close()
        finally:
            server.stop()
        results["link_s"] = round(time.monotonic() - t0, 1)
        results["link_calls"] = sum(fake.fake.costs.accepted.values())
        # 2. The day: limits at Smartcar's defaults, on the world's clock, from a full bucket.
        limits = replace(CostLimits.smartcar_defaults(), bucket_refill_per_minute=REFILL_PER_MINUTE)
        fake.fake.costs.configure(limits.compressed(SPEED))
        accepted_before = sum(fake.fake.costs.accepted.values())
        refused_before = Counter(fake.fake.costs.refused)
        await server.start(bridge_env(fake, http_port, speed=SPEED, linking=False))
        try:
            results.update(await _day(server, world, fake, drivers, times, token, quick=quick))
        finally:
            cpu = server.cpu_seconds()
            server.stop()
        results["server_cpu_s"] = round(cpu, 1)
        results["smartcar_calls_accepted"] = (
            sum(fake.fake.costs.accepted.values()) - accepted_before
        )
        refused = Counter(fake.fake.costs.refused)
        refused.subtract(refused_before)
        results["smartcar_refused"] = {k: v for k, v in sorted(refused.items()) if v}
    return results


async def _day(
    server: BridgeServer,
    world: World,
    fake: RunningFake,
    drivers: Drivers,
    times: Sequence[float],
    token: str,
    *,
    quick: bool,
) -> dict[str, Any]:
    runner = WorldRunner(
        f"ws://127.0.0.1:{server.ocpp_port}/ocpp",
        world=world,
        speed=SPEED,
        seed=16,
        smartcar_port=None,
        start=datetime.now(UTC) - timedelta(seconds=DAY_S + 600.0),
        charger_config={"MeterValueSampleInterval": "300"},
    )
    day = Day(runner, home_chargers(world), random.Random("16:drivers"))
    headers = {"Authorization": f"Bearer {token}"}
    t0, cpu0 = time.monotonic(), time.process_time()
    async with (
        runner,
        httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=60.0) as api,
    ):
        await runner.wait_booted(60.0)
        started = time.monotonic()
        await day.run(times)
        # The last drivers leave (at most 2 h after arriving), the bridge closes up.
        async with asyncio.timeout(runner.clock.real_delay(2.5 * 3600.0) + 60.0):
            while runner.summary()["plugged_in_now"]:  # noqa: ASYNC110 - world counters
                await asyncio.sleep(0.5)
        await asyncio.sleep(5.0)
        day_real_s = time.monotonic() - started
        records = await fetch_plug_ins(api)
        metrics = (await api.get("/metrics")).text
        (server.log_dir / f"bench-fleet-{len(world.vehicles)}.metrics").write_text(metrics)
        summary = runner.summary()
    report = plug_in_report(records, runner.sessions, drivers)
    if report["wrong_details"]:
        await _keep_wrong_starts(server, len(world.vehicles), report["wrong_details"])
    return {
        "day_real_s": round(day_real_s, 1),
        "wall_day_s": round(time.monotonic() - t0, 1),
        # The world, its chargers and the fake share this process: if it is saturated, the
        # bridge's latencies are the world's.
        "world_cpu_s": round(time.process_time() - cpu0, 1),
        "plug_ins_scheduled": len(times),
        "turned_away": day.turned_away,
        **_figures(records, runner, report),
        "calls_by_purpose": calls_by_label(metrics, "purpose"),
        "calls_by_outcome": calls_by_label(metrics, "outcome"),
        "sessions_started": summary["sessions_started"],
        "world_errors": summary["errors"],
    }


async def _keep_wrong_starts(
    server: BridgeServer, cars: int, details: list[dict[str, Any]]
) -> None:
    """Each wrong start with what the central system stored on its connector (plug-ins,
    bridge sessions, OCPP transactions), written next to the server's log: the database is
    dropped after the run."""
    db = await asyncpg.connect(server.dsn)
    try:
        for detail in details:
            where = (detail["record"]["charge_point_id"], detail["record"]["connector_id"])
            for key, query in (
                ("plug_ins", "SELECT p.*, v.vin FROM plug_ins p LEFT JOIN vehicles v "
                 "ON v.id = p.vehicle_id WHERE charge_point_id = $1 AND connector_id = $2"),
                ("sessions", "SELECT id, vin, id_tag, transaction_id, state, created_at, "
                 "ended_at, stop_reason, last_error FROM charging_sessions "
                 "WHERE charge_point_id = $1 AND connector_id = $2"),
                ("transactions", "SELECT id, id_tag, start_timestamp, start_received_at, "
                 "stop_timestamp, stop_received_at, stop_reason FROM transactions "
                 "WHERE charge_point_id = $1 AND connector_id = $2"),
            ):  # fmt: skip
                rows = await db.fetch(query + " ORDER BY 1", *where)
                detail[key] = [
                    {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in dict(r).items()}
                    for r in rows
                ]
            # The started car as the bridge knew it, and its plug-ins everywhere.
            session_id = detail["record"].get("session_id")
            for key, query in (
                ("started_car", "SELECT id, vin, unplugged_seen_at, plugged_seen_at, "
                 "plug_data_at, latitude, longitude, location_at, webhook_seen_at FROM vehicles "
                 "WHERE id = (SELECT vehicle_id FROM charging_sessions WHERE id = $1)"),
                ("started_car_plug_ins", "SELECT * FROM plug_ins WHERE vehicle_id = "
                 "(SELECT vehicle_id FROM charging_sessions WHERE id = $1)"),
                # Every plug-in around it, anywhere: the one that was the car's own, maybe.
                ("plug_ins_around", "SELECT p.id, p.charge_point_id, p.connector_id, "
                 "p.plugged_at, p.ended_at, p.outcome, p.reason, p.decided_at, v.vin "
                 "FROM plug_ins p LEFT JOIN vehicles v ON v.id = p.vehicle_id, "
                 "charging_sessions s WHERE s.id = $1 AND p.plugged_at BETWEEN "
                 "(SELECT plugged_at FROM plug_ins WHERE id = s.plug_in_id) - interval '30 s' "
                 "AND (SELECT plugged_at FROM plug_ins WHERE id = s.plug_in_id) + interval '30 s'"),
            ):  # fmt: skip
                rows = await db.fetch(query + " ORDER BY 1", session_id)
                detail[key] = [
                    {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in dict(r).items()}
                    for r in rows
                ]
    finally:
        await db.close()
    path = server.log_dir / f"bench-fleet-{cars}.wrong.json"
    path.write_text(json.dumps(details, indent=1, default=str))
    print(
        f"bench: {len(details)} wrong start(s) at {cars} cars, details in {path}", file=sys.stderr
    )


def _figures(
    records: list[dict[str, Any]], runner: WorldRunner, report: dict[str, Any]
) -> dict[str, Any]:
    by_transaction = {tx: cable for cable in runner.sessions for tx in cable.transaction_ids}
    decision: dict[str, list[float]] = {"all": [], "webhooks": [], "polling": []}
    per_hour: dict[str, list[float]] = {"all": [], "webhooks": [], "polling": []}
    per_session: dict[str, list[float]] = {"all": [], "webhooks": [], "polling": []}
    for record in records:
        transaction_id = record.get("transaction_id")
        cable = by_transaction.get(transaction_id) if transaction_id is not None else None
        kind = None
        if cable is not None:
            kind = "polling" if cable.vehicle.make in SILENT_MAKES else "webhooks"
        calls = float(record.get("decision_smartcar_calls") or 0)
        decision["all"].append(calls)
        if kind:
            decision[kind].append(calls)
        if record.get("session_id") is None or cable is None or cable.unplugged_at is None:
            continue
        session_calls = float(record.get("session_smartcar_calls") or 0)
        hours = (cable.unplugged_at - cable.plugged_at).total_seconds() / 3600.0
        for key in ("all", kind):
            assert key is not None
            per_session[key].append(session_calls + calls)
            per_hour[key].append((session_calls + calls) / max(1.0, hours))
    # The decisions that cost most, with what they spent their calls on: where a budget
    # overrun comes from.
    costliest = sorted(records, key=lambda r: -(r.get("decision_smartcar_calls") or 0))[:5]
    outcomes = report["outcomes"]
    plugged = len(runner.sessions)
    started = outcomes["matched"] + outcomes["confirmed"]
    reasons = Counter(f"{r['outcome']}:{r.get('reason')}" for r in records)
    return {
        "reasons": dict(reasons.most_common(12)),
        "plug_ins": plugged,
        "plug_ins_recorded": report["plug_ins_recorded"],
        "outcomes": {k: v for k, v in outcomes.items() if v},
        "auto_start_share": round(started / plugged, 3) if plugged else None,
        "wrong_starts": report["wrong"],
        "wrong_plug_ins": report["wrong_plug_ins"],
        "remote_start_latency_s": report["remote_start_latency_s"],
        "decision_calls": {k: spread(v) for k, v in decision.items()},
        "costliest_decisions": [
            {
                "plug_in_id": r.get("id"),
                "calls": r.get("decision_smartcar_calls"),
                "by_purpose": r.get("decision_smartcar_calls_by_purpose"),
                "outcome": f"{r['outcome']}:{r.get('reason')}",
            }
            for r in costliest
            if (r.get("decision_smartcar_calls") or 0) > DECISION_BUDGET
        ],
        "session_calls": {k: spread(v) for k, v in per_session.items()},
        "session_hour_calls": {k: spread(v) for k, v in per_hour.items()},
    }


def _within_budgets(result: dict[str, Any]) -> dict[str, bool]:
    hour = result["session_hour_calls"]
    refused = result["smartcar_refused"]
    return {
        "decision<=5": (result["decision_calls"]["all"]["max"] or 0) <= DECISION_BUDGET,
        "session_hour_webhooks<=12": (hour["webhooks"]["max"] or 0)
        <= SESSION_HOUR_BUDGET["webhooks"],
        "session_hour_polling<=20": (hour["polling"]["max"] or 0) <= SESSION_HOUR_BUDGET["polling"],
        "no_rate_limit": not any(k.startswith("RATE_LIMIT") for k in refused),
        "no_wrong_start": result["wrong_starts"] == 0,
    }


def run(options: Options) -> dict[str, Any]:
    sizes_env = os.environ.get("CSMS_BENCH_FLEET_SIZES")
    if sizes_env:
        sizes = tuple(int(s) for s in sizes_env.split(",") if s)
    else:
        sizes = QUICK_SIZES if options.quick else DEFAULT_SIZES
    results: dict[str, Any] = {"sizes": list(sizes), "load_average_start": list(os.getloadavg())}
    for cars in sizes:
        result = asyncio.run(run_size(cars, options, quick=options.quick))
        result["within_budgets"] = _within_budgets(result)
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        results[str(cars)] = result
    return results


def render(results: dict[str, Any]) -> str:
    lines = []
    for n in results["sizes"]:
        r = results[str(n)]
        lines.append(
            f"== fleet: {r['cars']:,} linked cars ({r['polling_cars']} without webhooks), "
            f"{r['chargers']} sites / {r['connectors']} connectors, {r['plug_ins']} plug-ins "
            f"(turned away {r['turned_away']}), day at x{r['speed']:.0f} in {r['day_real_s']} s; "
            f"load average {r['load_average']}"
        )
        for title, key in (
            ("calls per plug-in decision", "decision_calls"),
            ("calls per session (decision included)", "session_calls"),
            ("calls per session-hour", "session_hour_calls"),
        ):
            parts = [
                f"{kind} median {s['median']} p95 {s['p95']} max {s['max']} (n={s['count']})"
                for kind, s in r[key].items()
            ]
            lines.append(f"  {title}: " + "; ".join(parts))
        lines.append(f"  calls by purpose: {r['calls_by_purpose']}")
        if r.get("costliest_decisions"):
            lines.append(f"  decisions over budget: {r['costliest_decisions']}")
        lines.append(
            f"  Smartcar calls accepted {r['smartcar_calls_accepted']}, refused by the fake: "
            f"{r['smartcar_refused'] or 'none'}; by outcome (bridge): {r['calls_by_outcome']}"
        )
        latency = r["remote_start_latency_s"]
        lines.append(
            f"  auto-start share {r['auto_start_share']}, outcomes {r['outcomes']}, wrong starts "
            f"{r['wrong_starts']} {r['wrong_plug_ins'] or ''}; plug-in -> RemoteStart median "
            f"{latency['median']} s, max {latency['max']} s (real seconds)"
        )
        lines.append(f"  outcomes by reason: {r['reasons']}")
        lines.append(
            f"  linking {r['link_s']} s ({r['link_calls']} calls, limits off); server CPU "
            f"{r['server_cpu_s']} s, world process CPU {r['world_cpu_s']} s; "
            f"budgets: {r['within_budgets']}"
        )
    return "\n".join(lines)
