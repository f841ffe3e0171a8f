"""Target 3: reconnect storm — N chargers connect at the same moment.

Each charger: TCP + WebSocket handshake, BootNotification, then one StatusNotification
per connector (0, 1, 2), one CALL at a time. The figure is the time from the first
connect to the last answer. Run twice on the same server: ``first_contact`` (chargers
the server has never seen) and ``reconnect`` (the same chargers again after they all
dropped, as after a network outage), which is the one the target is about.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Options, identities, maybe_profile, ratio, server_and_client
from bench.load import merge, percentiles_ms
from bench.servers import listen_overflows

DRAIN_S = 2.0  # let the server notice every disconnect before the reconnect wave
TIMEOUT_S = 60.0


def run(options: Options) -> dict[str, Any]:
    chargers = 2000 if options.quick else 10_000
    results: dict[str, Any] = {"chargers": chargers, "connectors": 2}
    for kind in options.servers:
        results[kind] = _measure(options, kind, chargers)
    for wave in ("first_contact", "reconnect"):
        for other in ("raw", "reference"):
            results[f"ours_vs_{other}_{wave}"] = ratio(
                results.get("ours", {}).get(wave, {}).get("seconds"),
                results.get(other, {}).get(wave, {}).get("seconds"),
            )
    return results


def _measure(options: Options, kind: str, chargers: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with server_and_client(options, kind, identities("STORM-", chargers)) as (server, client):
        dropped = 0
        for wave in ("first_contact", "reconnect"):
            cpu = server.cpu_seconds()
            overflows = listen_overflows()
            with maybe_profile(options, server, f"storm-{wave}") as profile:
                phase = merge(
                    client.command(
                        "connect",
                        TIMEOUT_S + 30,
                        with_status=True,
                        timeout=TIMEOUT_S,
                        concurrency=0,
                    )
                )
            latencies = phase["latencies"]
            result[wave] = {
                "seconds": round(phase["elapsed"], 2),
                # Robust to other load on the machine: the server's own CPU for the wave.
                "server_cpu_s": round(server.cpu_seconds() - cpu, 2),
                # The load generator's, to show it is not what limits the wave.
                "client_cpu_s": round(phase["client_cpu_s"], 2),
                "answered": phase["ok"],
                # SYNs the kernel dropped (accept queue full): each waits >= 1 s to retry.
                "listen_overflows": _delta(listen_overflows(), overflows),
                "errors": phase["errors"],
                "connect_p99_ms": percentiles_ms(latencies.get("Connect", []))["p99_ms"],
                "boot_p99_ms": percentiles_ms(latencies.get("BootNotification", []))["p99_ms"],
                # What the server itself logged as dropped (ours only: the others are silent).
                "handshakes_dropped_logged": (
                    server.count_log_events("ocpp.handshake_dropped") - dropped
                    if kind == "ours"
                    else None
                ),
                **({"profile": profile} if profile else {}),
            }
            if kind == "ours":
                dropped += result[wave]["handshakes_dropped_logged"]
            client.command("close", 60)
            time.sleep(DRAIN_S)
        result["peak_rss_mb"] = round(server.peak_rss_kb() / 1024, 1)
    return result


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before
