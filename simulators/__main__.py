"""``python -m simulators world …``: one simulated world against a central system.

    python -m simulators world --csms ws://127.0.0.1:9000/ocpp --chargers 20 --vehicles 20 \\
        --smartcar-port 8090 --duration 600 --speed 60 --seed 1
    python -m simulators cards --vehicles 20 --seed 1     # the RFID cards the drivers tap

``python -m simulators.fleet`` (load generator) and ``python -m simulators.smartcar_fake``
(the fake alone) stay separate entry points.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog

from simulators.smartcar_fake.state import FakeConfig
from simulators.world_drivers import choose_drivers, fetch_plug_ins, plug_in_report, set_up
from simulators.world_runner import WorldRunner, build_world, card_for
from simulators.world_traffic import ScenarioFileError, parse_scenario

# An instance, not the class: on a slots dataclass the class attributes are descriptors.
_DEFAULTS = FakeConfig()

# Start-up (fake, sockets) and shutdown (close handshakes) on top of the simulated duration.
_REAL_SLACK_S = 30.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    world = commands.add_parser("world", help="run a simulated world against a central system")
    world.add_argument("--csms", default="ws://127.0.0.1:9000/ocpp", help="OCPP base URL")
    _world_shape(world)
    world.add_argument(
        "--smartcar-port", type=int, default=8090, help="fake Smartcar port (0: any, -1: none)"
    )
    world.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    world.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    world.add_argument(
        "--arrivals-per-hour", type=float, default=None, help="default: 2 per charger"
    )
    world.add_argument("--dwell", type=float, default=1800.0, help="mean stay, simulated s")
    world.add_argument("--rfid-share", type=float, default=0.5, help="share of drivers tapping")
    world.add_argument("--scenario", type=Path, help="JSON file of scripted events")
    world.add_argument("--meter-interval", type=int, help="MeterValueSampleInterval (sim s)")
    world.add_argument(
        "--leave-at-end", action="store_true", help="unplug every car at the end (ends sessions)"
    )
    world.add_argument("--max-real-seconds", type=float, help="hard bound on the run")
    world.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    world.add_argument("--json", action="store_true", help="also print the summary as JSON")
    # The Smartcar fake's registered application, as in the Smartcar Dashboard.
    world.add_argument("--client-id", default=_DEFAULTS.client_id)
    world.add_argument("--client-secret", default=_DEFAULTS.client_secret)
    world.add_argument(
        "--redirect-uri", action="append", help="registered redirect URI (repeatable)"
    )
    world.add_argument(
        "--csms-api",
        help="the central system's HTTP base URL: set charger locations, link the drivers' "
        "cars, and report every plug-in's outcome (needs --api-token)",
    )
    world.add_argument("--api-token", help="an operator token for --csms-api")
    world.add_argument(
        "--smartcar-limits",
        choices=("smartcar", "off"),
        default="smartcar",
        help="the fake's cost limits: Smartcar's published defaults (§9) on the simulated "
        "clock (bucket 120 refilled 2 per simulated minute, 6 calls per car and simulated "
        "minute, 500 per car and month), or none",
    )
    world.add_argument(
        "--link-share", type=float, default=0.95, help="share of cars whose driver links them"
    )
    world.add_argument("--unpaid", type=int, default=1, help="linked cars whose account can't pay")
    world.add_argument(
        "--login-all",
        action="store_true",
        help="Connect authorises every car of the world (one driver owning them all)",
    )
    world.set_defaults(run=_world)

    cards = commands.add_parser("cards", help="print the RFID card of every generated vehicle")
    _world_shape(cards)
    cards.set_defaults(run=_cards)
    return parser


def _world_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--vehicles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connectors", type=int, help="connectors per charger (default: mixed)")
    parser.add_argument("--dc-share", type=float, help="share of DC chargers (default: ~0.2)")
    parser.add_argument("--chargers-per-site", type=int, help="default: 8")


def _cards(args: argparse.Namespace) -> int:
    world = build_world(
        args.chargers, args.vehicles, args.seed, args.connectors, args.dc_share,
        args.chargers_per_site,
    )  # fmt: skip
    for vin in world.vehicles:
        print(card_for(vin))
    return 0


def _world(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level)
    bound = args.max_real_seconds or args.duration / args.speed + _REAL_SLACK_S
    try:
        summary = asyncio.run(_run_world(args, bound))
    except ScenarioFileError as exc:
        print(f"simulators: scenario {args.scenario}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"simulators: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))
    if summary["booted"] == 0:
        print(f"simulators: no charger was accepted by {args.csms}", file=sys.stderr)
        return 1
    return 0


async def _run_world(args: argparse.Namespace, bound_s: float) -> dict[str, Any]:
    config = {"MeterValueSampleInterval": str(args.meter_interval)} if args.meter_interval else {}
    runner = WorldRunner(
        args.csms,
        chargers=args.chargers,
        vehicles=args.vehicles,
        connectors=args.connectors,
        dc_share=args.dc_share,
        speed=args.speed,
        seed=args.seed,
        # The simulated day ends about now: charger timestamps never lie in the future.
        start=datetime.now(UTC) - timedelta(seconds=args.duration),
        smartcar_port=None if args.smartcar_port < 0 else args.smartcar_port,
        arrivals_per_hour=(
            2.0 * args.chargers if args.arrivals_per_hour is None else args.arrivals_per_hour
        ),
        mean_dwell_s=args.dwell,
        rfid_share=args.rfid_share,
        charger_config=config,
        chargers_per_site=args.chargers_per_site,
        traffic_paused=args.csms_api is not None,
        smartcar_limits="smartcar" if args.smartcar_limits == "smartcar" else None,
        smartcar_config=FakeConfig(
            client_id=args.client_id,
            client_secret=args.client_secret,
            redirect_uris=tuple(args.redirect_uri or _DEFAULTS.redirect_uris),
        ),
    )
    if args.scenario is not None:
        data = json.loads(args.scenario.read_text())
        runner.add_scenario(parse_scenario(data, list(runner.world.vehicles)))
    timed_out = False
    api = _api(args)
    drivers = choose_drivers(runner.world, args.link_share, args.unpaid, args.seed)
    # Ctrl-C (or SIGTERM) ends the simulated day early: the summary still comes, no traceback.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with runner:
        if runner.smartcar is not None:
            if args.login_all:
                runner.smartcar.fake.login(*runner.world.vehicles)
            print(f"fake Smartcar API at {runner.smartcar.api_url}", file=sys.stderr, flush=True)
        if api is not None and runner.smartcar is not None:
            await runner.wait_booted(_REAL_SLACK_S)
            await set_up(api, runner.world, runner.smartcar, drivers)
        runner.resume_traffic()
        try:
            async with asyncio.timeout(bound_s):
                await _until_stopped(runner.run_for(args.duration), stop)
                if args.leave_at_end and not stop.is_set():
                    await _until_stopped(runner.drain(_REAL_SLACK_S / 2), stop)
        except TimeoutError:
            timed_out = True
        summary = runner.summary()
        if api is not None:
            # Decisions still open (a window not yet passed) are reported as pending.
            summary["bridge"] = plug_in_report(await fetch_plug_ins(api), runner.sessions, drivers)
            await api.aclose()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    summary["timed_out"] = timed_out
    summary["interrupted"] = stop.is_set()
    return summary


def _api(args: argparse.Namespace) -> httpx.AsyncClient | None:
    if args.csms_api is None:
        return None
    headers = {"Authorization": f"Bearer {args.api_token}"} if args.api_token else {}
    return httpx.AsyncClient(base_url=args.csms_api, headers=headers, timeout=30.0)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work`` to its end, or cancel it when ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if task.done() and not task.cancelled() and (failure := task.exception()) is not None:
        raise failure


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a few readable lines."""
    efficiency = s["battery_gained_wh"] / s["energy_metered_wh"] if s["energy_metered_wh"] else 0
    lines = [
        f"world: {s['sim_seconds']:.0f} simulated s, {s['chargers']} chargers "
        f"({s['booted']} booted, {s['connected']} connected), {s['vehicles']} vehicles",
        f"  arrivals {s['arrivals']} (turned away {s['turned_away']}), plug-ins {s['plug_ins']}, "
        f"plugged in now {s['plugged_in_now']}, RFID taps {s['rfid_taps']}",
        f"  sessions started {s['sessions_started']}, stopped {s['sessions_stopped']}",
        f"  energy metered {s['energy_metered_wh']} Wh, battery gained "
        f"{s['battery_gained_wh']} Wh (efficiency {efficiency:.1%})",
        f"  messages sent {s['messages_sent']}, queued offline {s['queued_offline']}, "
        f"outages {s['outages']}, reconnects {s['reconnects']}",
        f"  errors: call errors {s['call_errors']}, timeouts {s['timeouts']}, "
        f"connect failures {s['connect_failures']}, world {s['errors']}",
    ]
    lines += [f"    {message}" for message in s["error_messages"]]
    if s.get("smartcar_url"):
        lines.append(f"  Smartcar fake {s['smartcar_url']}: {s['smartcar_requests']} requests")
    bridge = s.get("bridge")
    if bridge:
        o, latency = bridge["outcomes"], bridge["remote_start_latency_s"]
        lines.append(
            f"  plug-ins recorded by the bridge {bridge['plug_ins_recorded']} "
            f"(paying {bridge['paying_plug_ins']}, unlinked {bridge['unlinked_plug_ins']}): "
            f"matched {o['matched']}, confirmed {o['confirmed']}, no match {o['no_match']}, "
            f"unpaid {o['unpaid']}, at target {o['at_target']}, unconfirmed {o['unconfirmed']}, "
            f"dropped {o['dropped']}, pending {o['pending'] + o['confirming']}, "
            f"wrong {bridge['wrong']}"
        )
        lines.append(
            f"  plug-in -> RemoteStart: median {latency['median']} s, max {latency['max']} s "
            f"over {latency['count']} starts"
        )
        for outcome, spread in bridge["remote_start_latency_by_outcome_s"].items():
            lines.append(
                f"    {outcome}: median {spread['median']} s, max {spread['max']} s "
                f"({spread['count']})"
            )
    if s.get("timed_out"):
        lines.append("  (stopped by the real-time bound)")
    if s.get("interrupted"):
        lines.append("  (interrupted)")
    return "\n".join(lines)


def _configure_logging(level: str) -> None:
    # Logs on stderr, so stdout carries only the summary (and the --json line).
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
