"""``python -m bench [SCENARIO ...] [--quick] [--servers ...] [--profile DIR]``.

Runs each scenario against our server, the bare-``ocpp`` reference and the raw
``websockets`` ceiling (both on uvloop, as ours), one server at a time, prints a table
per scenario and finally one line of JSON with every figure (prefixed ``BENCH_JSON``).
Without scenario names it runs all but ``scale`` (the closed-loop fleet of issue 4,
which ``mix`` supersedes as the realistic load).
``fuzz`` (hostile frames, ours only) runs only when named.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cluster, fleet, fuzz, heartbeat, memory, meter_values, mix, scale, storm
from bench.common import Options
from bench.load import raise_fd_limit
from bench.report import render
from bench.servers import DEFAULT_SERVERS, SERVERS, Database, kind_of

SCENARIOS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "heartbeat": heartbeat.run,
    "storm": storm.run,
    "mix": mix.run,
    "memory": memory.run,
    "meter_values": meter_values.run,
    "scale": scale.run,
    # Hostile input (issue 14): ours only; not in the default set, run it by name.
    "fuzz": fuzz.run,
    "cluster": cluster.run,  # one process vs --workers N, local vs routed commands
    # Plug-and-charge at fleet scale (issue 16): ours only, minutes; run it by name.
    "fleet": fleet.run,
}
DEFAULT_SCENARIOS = ("heartbeat", "storm", "mix", "memory", "meter_values", "cluster")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], default=[])
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (< ~2 min)")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, of {','.join(SERVERS)} (the -asyncio ones on the default loop)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("CSMS_BENCH_PG"),
        help="admin DSN of a PostgreSQL for our server (default: local 127.0.0.1:5432 if it "
        "answers, else embedded)",
    )
    parser.add_argument("--embedded", action="store_true", help="always use embedded PostgreSQL")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/client to cores")
    parser.add_argument("--profile", type=Path, help="py-spy each server into this directory")
    parser.add_argument("--logs", type=Path, help="where server logs go (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = args.scenarios or list(DEFAULT_SCENARIOS)
    servers = tuple(s for s in args.servers.split(",") if s)
    if unknown := set(servers) - set(SERVERS):
        print(f"unknown servers: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    # Inherited by every server and load worker we start: 10,000 sockets need the room.
    fd_limit = raise_fd_limit()
    database = Database(args.pg, force_embedded=args.embedded)
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="csms-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    options = Options(
        quick=args.quick,
        pin=not args.no_pin,
        servers=servers,
        database=database,
        profile_dir=args.profile,
        log_dir=log_dir,
    )
    report: dict[str, Any] = {
        "quick": args.quick,
        "cpus": len(os.sched_getaffinity(0)),
        "pinned": options.server_cpus is not None,
        "fd_limit": fd_limit,
        "profiled": args.profile is not None,
        "load_average": _load_average(),
    }
    started = time.monotonic()
    try:
        if any(kind_of(server) == "ours" for server in servers):  # ours-gather alone too
            database.open()
            report["database"] = database.kind
        print(
            f"bench: {', '.join(names)}; servers {', '.join(servers)}; logs in {log_dir}; "
            f"load average {report['load_average']}"
        )
        for name in names:
            t0 = time.monotonic()
            try:
                results = SCENARIOS[name](options)
            except Exception as exc:  # one failed scenario must not hide the others
                traceback.print_exc()
                results = {"error": f"{type(exc).__name__}: {exc}"}
            results["wall_s"] = round(time.monotonic() - t0, 1)
            report[name] = results
            print(render(name, results), flush=True)
            print(flush=True)
    finally:
        database.close()
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["load_average_end"] = _load_average()
    print(f"load average at start {report['load_average']}, at end {report['load_average_end']}")
    print("BENCH_JSON " + json.dumps(report, separators=(",", ":")), flush=True)
    return 1 if any("error" in report[n] for n in names) else 0


def _load_average() -> list[float]:
    # Figures taken on a busy machine are disturbed; the report says how busy it was.
    return [round(x, 2) for x in os.getloadavg()]


if __name__ == "__main__":
    sys.exit(main())
