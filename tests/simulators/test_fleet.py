"""A fleet of simulated chargers against the reference central system."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from bench.reference_server import ReferenceServer
from simulators.fleet import Fleet, SimpleEV

TIMEOUT = 20.0
ROOT = Path(__file__).resolve().parents[2]


async def test_fleet_of_200_boots_heartbeats_and_charges() -> None:
    async with ReferenceServer() as server:
        fleet = Fleet(
            server.url,
            chargers=200,
            connectors=2,
            speed=50.0,
            ramp_per_s=2_000.0,
            heartbeat_interval=5,  # 0.1 s real at 50x
            meter_interval=10,
            session_share=0.5,
            session_window_s=10.0,
            seed=3,
        )
        async with fleet:
            assert await fleet.wait_booted(TIMEOUT) == 200
            assert {cp.identity for cp in fleet.charge_points} == set(server.charge_points)
            stats, first = fleet.stats, fleet.charge_points[0]
            # Shared statistics: two heartbeats per charger, and most planned sessions running.
            await first.wait_for(lambda: stats.results["Heartbeat"] >= 400, TIMEOUT)
            await first.wait_for(lambda: stats.results["StartTransaction"] >= 150, TIMEOUT)
            await first.wait_for(lambda: stats.results["MeterValues"] >= 150, TIMEOUT)
            summary = fleet.summary()
    assert summary["booted"] == 200
    assert summary["sent"]["BootNotification"] == 200
    # After boot: connector 0 and both connectors report, once each at least.
    assert summary["sent"]["StatusNotification"] >= 600
    assert summary["sent"]["Authorize"] >= summary["sent"]["StartTransaction"] >= 150
    assert summary["call_errors"] == {}
    latency = summary["latency"]["Heartbeat"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert summary["reconnects"] == 0
    assert summary["rss_mb"] > 0
    assert fleet.identity(7) == "SIM-0007"


def test_simple_ev_stops_accepting_when_full() -> None:
    ev = SimpleEV(capacity_wh=1_000.0, soc_percent=99.0, max_w=7_000.0)
    assert ev.acceptance_w() == 7_000.0
    assert ev.absorb(100.0) == 92.0
    assert ev.soc_percent == 100.0
    assert ev.acceptance_w() == 0.0


async def test_cli_prints_a_json_summary() -> None:
    async with ReferenceServer() as server:
        command = [
            sys.executable,
            "-m",
            "simulators.fleet",
            "--csms",
            server.url,
            "--chargers",
            "20",
            "--connectors",
            "1",
            "--duration",
            "1.5",
            "--heartbeat-interval",
            "1",
            "--seed",
            "1",
            "--json",
        ]
        process = await _run(command)
    assert process.returncode == 0, process.stderr
    summary = json.loads(process.stdout)
    assert summary["booted"] == 20
    assert summary["sent"]["Heartbeat"] >= 20


async def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return subprocess.CompletedProcess(
        command, proc.returncode or 0, stdout.decode(), stderr.decode()
    )
