"""Every simulator and demo command line in the README runs, as printed.

The command lines are read from README.md's ``sh`` blocks, so the README cannot drift from
the code. The only change made to them: the fixed ports (9000, 8080, 8090, 9100) become the
test system's ephemeral ports or free ones, because other runs share this machine. Each run is
bounded; long-running ones (the fake, the reference server, the fleet) are stopped with
SIGINT, as an operator's Ctrl-C would, and must end cleanly.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from csms.app import CentralSystem
from tests.conftest import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
# The programs the README's lines start with, and what runs them here.
PROGRAMS = {".venv/bin/python": [sys.executable], ".venv/bin/csms": [sys.executable, "-m", "csms"]}
SIMULATORS = ("simulators", "simulators.fleet", "simulators.smartcar_fake")


def readme_commands() -> Iterator[list[str]]:
    """Every command line of the README's ``sh`` blocks: continuations joined, comments cut."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                yield words


def simulator_commands() -> list[list[str]]:
    """The README's lines that run a simulator, the reference server or a demo."""
    found = []
    for words in readme_commands():
        if words[:2] in (["make", "demo"], ["make", "demo-bridge"]):
            found.append(words)
        elif words[0] == ".venv/bin/python" and (
            words[1] == "-m" and (words[2] in SIMULATORS or words[2] == "bench.reference_server")
        ):
            found.append(words)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def localise(words: list[str], ports: dict[int, int]) -> list[str]:
    """The command with its program resolved and the README's ports swapped for ours."""
    argv = [*PROGRAMS.get(words[0], [words[0]]), *words[1:]]
    pattern = re.compile(r"(?<![0-9])(" + "|".join(str(p) for p in ports) + r")(?![0-9])")
    return [pattern.sub(lambda m: str(ports[int(m.group(1))]), word) for word in argv]


def by_program(program: str) -> list[str]:
    matches = [w for w in simulator_commands() if program in " ".join(w[:4])]
    assert len(matches) == 1, f"expected one README line running {program}: {matches}"
    return matches[0]


def test_every_simulator_command_in_the_readme_is_covered_here() -> None:
    covered = (
        "make demo",
        "make demo-bridge",
        "-m simulators.fleet",
        "-m simulators world",
        "-m simulators cards",
        "-m simulators.smartcar_fake",
        "-m bench.reference_server",
    )
    lines = [" ".join(w) for w in simulator_commands()]
    assert len(lines) == len(covered), lines
    for line in lines:
        assert any(line.startswith(c) or f" {c}" in line for c in covered), line


async def run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = TIMEOUT * 6
) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, out.decode(), err.decode()


async def run_until_answering(
    argv: list[str], url: str, *, env: dict[str, str] | None = None
) -> tuple[int | None, str, str]:
    """Start a server, wait until ``url`` answers at all, then Ctrl-C it."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(TIMEOUT * 3):
            while process.returncode is None:
                try:
                    await client.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(TIMEOUT * 3):
            out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


def no_traceback(err: str) -> None:
    assert "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize("drop_redirect_uri", [False, True])
async def test_the_smartcar_fake_runs_as_printed(drop_redirect_uri: bool) -> None:
    port = free_port()
    argv = localise(by_program("simulators.smartcar_fake"), {8090: port, 8080: free_port()})
    if drop_redirect_uri:  # the documented default: no --redirect-uri at all
        at = argv.index("--redirect-uri")
        argv = argv[:at] + argv[at + 2 :]
    code, out, err = await run_until_answering(argv, f"http://127.0.0.1:{port}/v2.0/vehicles")
    no_traceback(err)
    assert f"fake Smartcar on http://127.0.0.1:{port}" in out
    assert code in (0, -signal.SIGINT), err


async def test_the_smartcar_fake_on_port_0_prints_the_port_it_listens_on() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.smartcar_fake",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(TIMEOUT * 3):
            line = (await process.stdout.readline()).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+) ", line)
        assert match is not None and int(match[1]) != 0, line
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{match[1]}/v2.0/vehicles", timeout=TIMEOUT)
        assert answer.status_code == 401  # the fake itself, asking for a token
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(TIMEOUT * 3):
            _, err = await process.communicate()
    no_traceback(err.decode())


async def test_the_reference_server_runs_as_printed() -> None:
    port = free_port()
    argv = localise(by_program("-m bench.reference_server"), {9100: port})
    code, _, err = await run_until_answering(argv, f"http://127.0.0.1:{port}/")
    no_traceback(err)
    assert code in (0, 1, -signal.SIGINT), err


async def test_the_world_runs_as_printed(system: CentralSystem, db: asyncpg.Connection) -> None:
    ports = {9000: system.ocpp.port, 8080: system.http_port, 8090: free_port()}
    code, out, err = await run(localise(by_program("-m simulators world"), ports))
    no_traceback(err)
    assert code == 0, err[-3000:]
    assert "4 chargers (4 booted" in out
    cards = await run(localise(by_program("-m simulators cards"), ports))
    assert cards[0] == 0 and len(cards[1].split()) == 8


async def test_the_readme_fleet_steps_produce_sessions_and_ctrl_c_prints_a_summary(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    ports = {9000: system.ocpp.port, 8080: system.http_port}
    env = {
        "CSMS_DATABASE_URL": str(system.settings.database_url),
        "CSMS_API_URL": f"http://127.0.0.1:{system.http_port}",
        "CSMS_LOG_LEVEL": "warning",
    }
    steps = [w for w in readme_commands() if w[0] == ".venv/bin/csms" and w[1] != "serve"]
    steps = [w for w in steps if w[1:3] in (["token", "create"], ["idtag", "add"])]
    token, idtag = steps[-2], steps[-1]  # the fleet's own steps close the CLI lines
    code, out, err = await run(localise(token, ports), env=env)
    assert code == 0, err
    env["CSMS_API_TOKEN"] = out.strip()  # what "export CSMS_API_TOKEN=<it>" does
    code, _, err = await run(localise(idtag, ports), env=env)
    assert code == 0, err

    process = await asyncio.create_subprocess_exec(
        *localise(by_program("simulators.fleet"), ports),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT * 6):
            # The README's run is 60 s: stop it (Ctrl-C) once sessions are running.
            while await db.fetchval("SELECT count(*) FROM transactions") < 3:
                assert process.returncode is None
                await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(TIMEOUT * 6):
            out_bytes, err_bytes = await process.communicate()
    out, err = out_bytes.decode(), err_bytes.decode()
    no_traceback(err)
    assert process.returncode == 0, err
    assert "(interrupted)" in out
    started = int(re.search(r"sessions_started=(\d+)", out).group(1))  # type: ignore[union-attr]
    assert started >= 3
    accepted = await db.fetchval(
        "SELECT count(*) FROM transactions WHERE id_tag = $1 AND id_tag_status = 'Accepted'",
        "FLEET0001",
    )
    assert accepted >= 3


def demo_env(database_url: str, **knobs: str) -> dict[str, str]:
    return {"DEMO_DATABASE_URL": database_url, "BIN": str(Path(sys.executable).parent), **knobs}


def make_command(words: list[str]) -> list[str]:
    # `make demo` as printed when the venv `make` would use is ours; else its script.
    if (ROOT / ".venv" / ".installed").exists() and Path(
        sys.executable
    ).parent == ROOT / ".venv" / "bin":
        return words
    return ["bash", f"simulators/{words[1].replace('-', '_')}.sh"]


async def test_make_demo_runs_rfid_sessions_and_keeps_the_callers_data_dir(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    precious = tmp_path / "my-data"
    precious.mkdir()
    (precious / "keep").write_text("an operator's real data")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()  # `make run`'s ports, taken: the demo must not need them
    env = demo_env(database_url, DEMO_DURATION="900", DEMO_SPEED="180")
    env |= {"CSMS_DATA_DIR": str(precious), "CSMS_OCPP_PORT": str(taken.getsockname()[1])}
    with taken:
        code, out, err = await run(make_command(["make", "demo"]), env=env)
    no_traceback(err)
    assert code == 0, err[-3000:]
    assert re.search(r"sessions started [1-9]", out), out
    assert (precious / "keep").read_text() == "an operator's real data"


async def test_make_demo_bridge_bills_sessions_counts_requests_and_spares_the_data_dir(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    precious = tmp_path / "my-data"
    precious.mkdir()
    (precious / "keep").write_text("an operator's real data")
    env = demo_env(
        database_url,
        DEMO_CHARGERS="1",
        DEMO_VEHICLES="1",
        DEMO_SPEED="2400",  # the default eight simulated hours in 12 s
    )
    env["CSMS_DATA_DIR"] = str(precious)
    code, out, err = await run(make_command(["make", "demo-bridge"]), env=env)
    no_traceback(err)
    assert code == 0, err[-3000:]
    requests = int(re.search(r"Smartcar fake \S+: (\d+) requests", out).group(1))  # type: ignore[union-attr]
    assert requests > 0
    assert re.search(r"CP00001 +car …\w{6} +completed", out), out
    assert (precious / "keep").read_text() == "an operator's real data"
    sessions = await db.fetch("SELECT state, bill_amount FROM charging_sessions")
    assert [s["state"] for s in sessions] == ["completed"] and sessions[0]["bill_amount"] > 0


async def test_ctrl_c_of_the_world_prints_its_summary(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    ports = {9000: system.ocpp.port, 8080: system.http_port, 8090: free_port()}
    process = await asyncio.create_subprocess_exec(
        *localise(by_program("-m simulators world"), ports),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT * 6):
            while await db.fetchval("SELECT count(*) FROM charge_points WHERE connected") < 4:
                assert process.returncode is None
                await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(TIMEOUT * 6):
            out, err = await process.communicate()
    no_traceback(err.decode())
    assert process.returncode == 0
    assert "4 booted" in out.decode() and "(interrupted)" in out.decode()


async def test_a_fleet_whose_cards_are_refused_says_what_to_do(
    system: CentralSystem, db: asyncpg.Connection
) -> None:
    argv = [sys.executable, "-m", "simulators.fleet", "--csms"]
    argv += [f"ws://127.0.0.1:{system.ocpp.port}/ocpp", "--chargers", "2", "--connectors", "1"]
    argv += ["--duration", "4", "--speed", "5", "--sessions", "1", "--id-tags", "UNKNOWN01"]
    code, out, err = await run(argv)
    no_traceback(err)
    assert code == 0 and "taps=2 sessions_started=0" in out
    assert err.splitlines()[0].startswith("fleet: drivers tap UNKNOWN01")
    assert "csms idtag add UNKNOWN01" in err.splitlines()[-1] and "refused" in err
