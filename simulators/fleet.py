"""A fleet of simulated charge points in one process: the load generator for benchmarks.

    async with Fleet("ws://127.0.0.1:9000/ocpp", chargers=1000, connectors=2) as fleet:
        await fleet.wait_booted(timeout=60)
        await asyncio.sleep(30)
        print(fleet.summary())

CLI: ``python -m simulators.fleet --csms ws://127.0.0.1:9000/ocpp --chargers 100 --duration 60``.
The drivers tap the cards given by ``--id-tags`` (default ``FLEET0001``): a central system
answers unknown cards Invalid, so register them first (``csms idtag add FLEET0001``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from typing import Any

from simulators.charge_point import ChargePoint
from simulators.cp_faults import Faults
from simulators.cp_runtime import SimClock, Stats

# The card every driver taps unless --id-tags says otherwise; README: `csms idtag add FLEET0001`.
DEFAULT_ID_TAGS = ("FLEET0001",)


class SimpleEV:
    """A plain battery for load generation: constant acceptance until full."""

    __slots__ = ("_soc", "capacity_wh", "max_w")

    def __init__(self, capacity_wh: float, soc_percent: float, max_w: float) -> None:
        self.capacity_wh = capacity_wh
        self._soc = soc_percent
        self.max_w = max_w

    def acceptance_w(self) -> float:
        return 0.0 if self._soc >= 100.0 else self.max_w

    def absorb(self, grid_wh: float) -> float:
        battery_wh = grid_wh * 0.92  # charging losses
        self._soc = min(100.0, self._soc + battery_wh / self.capacity_wh * 100.0)
        return battery_wh

    @property
    def soc_percent(self) -> float:
        return self._soc


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Fleet:
    """N charge points with M connectors each, identities ``{prefix}0001`` …, one shared Stats.

    ``session_share`` of the connectors get a car plugged in and a card tapped at a random
    moment in the first ``session_window_s`` simulated seconds after their boot; the driver
    taps one of ``id_tags`` (random 8-hex-digit cards when empty).
    """

    def __init__(
        self,
        csms_url: str,
        *,
        chargers: int,
        connectors: int = 1,
        prefix: str = "SIM-",
        speed: float = 1.0,
        ramp_per_s: float = 200.0,
        heartbeat_interval: int | None = None,
        meter_interval: int | None = None,
        nonconforming: float = 0.0,
        seed: int | None = None,
        session_share: float = 0.0,
        session_window_s: float = 60.0,
        dc_share: float = 0.0,
        call_timeout_s: float = 30.0,
        id_tags: tuple[str, ...] = (),
    ) -> None:
        self.csms_url = csms_url
        self.chargers = chargers
        self.connectors = connectors
        self.prefix = prefix
        self.ramp_per_s = ramp_per_s
        self.session_share = session_share
        self.session_window_s = session_window_s
        self.id_tags = id_tags
        self.taps = 0
        self.clock = SimClock(speed)
        self.stats = Stats(seed)
        self.charge_points: list[ChargePoint] = []
        self._rng = random.Random(seed)
        # One Faults object for all: nothing in it is mutated unless drop_after_messages is set.
        self._faults = Faults(
            nonconforming=nonconforming, ignore_boot_interval=heartbeat_interval is not None
        )
        self._config: dict[str, str] = {}
        if heartbeat_interval is not None:
            self._config["HeartbeatInterval"] = str(heartbeat_interval)
        if meter_interval is not None:
            self._config["MeterValueSampleInterval"] = str(meter_interval)
        self._seed = seed
        self._dc_share = dc_share
        self._call_timeout_s = call_timeout_s
        self._ramp: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.started_at = 0.0

    def identity(self, index: int) -> str:
        return f"{self.prefix}{index:04d}"

    async def start(self) -> None:
        """Create every charge point and start them at ``ramp_per_s`` in the background."""
        for index in range(1, self.chargers + 1):
            dc = self._rng.random() < self._dc_share
            self.charge_points.append(
                ChargePoint(
                    self.identity(index),
                    self.csms_url,
                    connectors=self.connectors,
                    dc=dc,
                    max_power_w=50_000.0 if dc else 11_000.0,
                    config=self._config,
                    clock=self.clock,
                    faults=self._faults,
                    stats=self.stats,
                    seed=self._seed,
                    call_timeout_s=self._call_timeout_s,
                )
            )
        self.started_at = time.monotonic()
        self._ramp = asyncio.get_running_loop().create_task(self._ramp_up(), name="fleet-ramp")

    async def _ramp_up(self) -> None:
        interval = 1.0 / self.ramp_per_s if self.ramp_per_s > 0 else 0.0
        begin = time.monotonic()
        for n, cp in enumerate(self.charge_points):
            cp.start()
            # Pace against the start time so slow iterations do not lower the rate.
            delay = begin + (n + 1) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif n % 100 == 99:
                await asyncio.sleep(0)
        if self.session_share > 0:
            self._plan_sessions()

    def _plan_sessions(self) -> None:
        loop = asyncio.get_running_loop()
        for cp in self.charge_points:
            for connector_id in range(1, self.connectors + 1):
                if self._rng.random() >= self.session_share:
                    continue
                rng = self._rng
                delay = self.clock.real_delay(rng.uniform(0, self.session_window_s))
                tag = rng.choice(self.id_tags) if self.id_tags else f"{rng.getrandbits(32):08X}"
                ev = SimpleEV(60_000.0, rng.uniform(10, 70), rng.choice([7_400.0, 11_000.0]))
                timer = loop.call_later(delay, self._begin_session, cp, connector_id, ev, tag)
                self._timers.append(timer)

    def _begin_session(
        self, cp: ChargePoint, connector_id: int, ev: SimpleEV, id_tag: str, tries: int = 20
    ) -> None:
        if cp.connector(connector_id).ev is not None:
            return
        if cp.registration != "Accepted":
            # Not booted yet (slow central system): retry a little later, a bounded number of times.
            if tries > 0:
                timer = asyncio.get_running_loop().call_later(
                    cp.clock.real_delay(5.0),
                    self._begin_session,
                    *(cp, connector_id, ev, id_tag, tries - 1),
                )
                self._timers.append(timer)
            return
        cp.plug_in(connector_id, ev)
        cp.tap(connector_id, id_tag)
        self.taps += 1

    @property
    def booted(self) -> int:
        return sum(1 for cp in self.charge_points if cp.registration == "Accepted")

    @property
    def connected(self) -> int:
        return sum(1 for cp in self.charge_points if cp.connected)

    async def wait_booted(self, timeout: float, share: float = 1.0) -> int:
        """Wait (real seconds) until ``share`` of the fleet is Accepted; returns how many are."""
        wanted = int(self.chargers * share)
        deadline = time.monotonic() + timeout
        # Polling a 5,000-element count every 50 ms is cheaper than an event per charger.
        while self.booted < wanted and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.booted

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._ramp is not None:
            self._ramp.cancel()
            try:
                await self._ramp
            except asyncio.CancelledError:
                pass
        await asyncio.gather(*(cp.stop() for cp in self.charge_points))

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def summary(self) -> dict[str, Any]:
        """Aggregated statistics plus fleet size, boot count and process RSS."""
        return {
            "chargers": self.chargers,
            "connectors": self.connectors,
            "booted": self.booted,
            "connected": self.connected,
            "elapsed_s": round(time.monotonic() - self.started_at, 3),
            "taps": self.taps,
            "sessions_started": self.stats.results["StartTransaction"],
            "rss_mb": round(rss_mb(), 1),
            **self.stats.summary(),
        }


async def run_fleet(args: argparse.Namespace) -> dict[str, Any]:
    """Run for ``--duration`` real seconds, or until SIGINT/SIGTERM; the summary either way."""
    fleet = Fleet(
        args.csms,
        chargers=args.chargers,
        connectors=args.connectors,
        prefix=args.prefix,
        speed=args.speed,
        ramp_per_s=args.ramp,
        heartbeat_interval=args.heartbeat_interval,
        meter_interval=args.meter_interval,
        nonconforming=args.nonconforming,
        seed=args.seed,
        session_share=args.sessions,
        session_window_s=args.duration * args.speed / 2,
        id_tags=args.id_tags,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C ends the run early and still prints what happened, without a traceback.
        loop.add_signal_handler(sig, stop.set)
    try:
        async with fleet:
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except TimeoutError:
                pass
            summary = fleet.summary()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    summary["interrupted"] = stop.is_set()
    return summary


def _id_tags(value: str) -> tuple[str, ...]:
    tags = tuple(tag.strip() for tag in value.split(",") if tag.strip())
    if not tags:
        raise argparse.ArgumentTypeError("give at least one id tag, e.g. FLEET0001,FLEET0002")
    return tags


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.fleet",
        description="Run a fleet of simulated OCPP 1.6J chargers. Drivers tap the --id-tags "
        "cards; the central system must know them (csms idtag add FLEET0001), or it answers "
        "Invalid and the connectors stay in Preparing.",
    )
    parser.add_argument("--csms", required=True, help="base URL, e.g. ws://127.0.0.1:9000/ocpp")
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--connectors", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0, help="real seconds (Ctrl-C: stop)")
    parser.add_argument("--prefix", default="SIM-")
    parser.add_argument("--ramp", type=float, default=200.0, help="charge points started per s")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--heartbeat-interval", type=int, default=None)
    parser.add_argument("--meter-interval", type=int, default=None)
    parser.add_argument("--nonconforming", type=float, default=0.0)
    parser.add_argument("--sessions", type=float, default=0.5, help="share of connectors used")
    parser.add_argument(
        "--id-tags",
        type=_id_tags,
        default=DEFAULT_ID_TAGS,
        metavar="TAG[,TAG...]",
        help=f"cards the drivers tap (default: {','.join(DEFAULT_ID_TAGS)})",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.sessions > 0:
        print(
            f"fleet: drivers tap {', '.join(args.id_tags)}; the central system must know "
            f"{'it' if len(args.id_tags) == 1 else 'them'} "
            f"(csms idtag add {args.id_tags[0]})",
            file=sys.stderr,
            flush=True,
        )
    summary = asyncio.run(run_fleet(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    if summary["taps"] and not summary["sessions_started"]:
        print(
            f"fleet: {summary['taps']} taps and no session started: the central system "
            f"refused the cards; add them with `csms idtag add {args.id_tags[0]}`",
            file=sys.stderr,
        )
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as readable lines: sizes, sessions, then one line per action."""
    lines = [
        f"chargers={summary['chargers']} booted={summary['booted']} "
        f"reconnects={summary['reconnects']} rss_mb={summary['rss_mb']}"
        f"{' (interrupted)' if summary.get('interrupted') else ''}",
        f"  taps={summary['taps']} sessions_started={summary['sessions_started']} "
        f"elapsed_s={summary['elapsed_s']}",
    ]
    for action, count in sorted(summary["sent"].items()):
        latency = summary["latency"].get(action, {})
        errors = summary["call_errors"].get(action, 0)
        lines.append(
            f"  {action:<28} sent={count:<8} errors={errors:<6} "
            f"p50={latency.get('p50_ms', 0):.2f}ms p99={latency.get('p99_ms', 0):.2f}ms"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
