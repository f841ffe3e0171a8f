"""The operator CLI when things go wrong: one line on stderr, nothing on stdout, and a hint."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg
import httpx
import pytest

from csms import cli
from csms.app import CentralSystem
from csms.db import id_tags
from simulators.charge_point import ChargePoint
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger
from tests.ops.conftest import sample_energy, start_charging


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, system: CentralSystem, api_token: str, database_url: str
) -> dict[str, str]:
    """The CLI's environment, pointing at the running test system (bridge off)."""
    env = {
        "CSMS_DATABASE_URL": database_url,
        "CSMS_API_URL": f"http://127.0.0.1:{system.http_port}",
        "CSMS_API_TOKEN": api_token,
        "CSMS_LOG_LEVEL": "warning",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``csms ARGV`` in a thread (its HTTP calls block), with its exit status and output."""

    def main() -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:  # argparse refusing the usage; asyncio must not see it
            return int(exc.code or 0)

    capsys.readouterr()
    code = await asyncio.wait_for(asyncio.to_thread(main), TIMEOUT * 2)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    # The server runs in this process too: its JSON events share stderr with the CLI.
    lines = [line for line in err.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("csms: "), err
    return lines[0]


async def test_refused_security_change_is_409_and_one_line(
    cli_env: dict[str, str], system: CentralSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    # The simulator refuses AuthorizationKey without a security set-up, like the README's fleet.
    charger = ChargePoint("CP-REFUSE", f"ws://127.0.0.1:{system.ocpp.port}/ocpp")
    charger.start()
    try:
        await charger.wait_for(lambda: charger.registration == "Accepted", TIMEOUT)
        for argv in (("set-password", "CP-REFUSE"), ("set-profile", "CP-REFUSE", "1")):
            code, out, err = await run_cli(capsys, "charger", *argv)
            assert code == 1 and out == ""
            line = one_line(err)
            assert "409" in line and "refused" in line.lower(), line
        async with httpx.AsyncClient(
            base_url=cli_env["CSMS_API_URL"],
            headers={"Authorization": f"Bearer {cli_env['CSMS_API_TOKEN']}"},
        ) as api:
            answer = await api.post("/api/charge-points/CP-REFUSE/security/password", json={})
        assert answer.status_code == 409
        assert answer.headers["content-type"] == "application/problem+json"
        assert (answer.json()["status"], answer.json()["charger_status"]) == (409, "NotSupported")
    finally:
        await charger.stop()


async def test_usage_mistakes_are_refused_with_a_hint(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run_cli(capsys, "chargers", "--status", "Bogus")
    assert code == 2 and out == "" and "Faulted" in err and "Bogus" in err
    code, out, _ = await run_cli(capsys, "chargers", "--status", "faulted")
    assert code == 0 and "(none)" in out
    code, out, err = await run_cli(capsys, "idtag", "add", "CARD-X", "--expiry", "2020-01-01")
    assert code == 2 and out == "" and "time zone" in err and "2027-01-31T23:59:59Z" in err
    code, _, err = await run_cli(
        capsys, "idtag", "add", "CARD-X", "--expiry", "2027-01-31T23:59:59Z", "--json"
    )
    assert code == 0, err


async def test_errors_from_the_server_are_one_line_on_stderr(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run_cli(capsys, "account", "create", "Fleet", "--payment", "valid")
    assert code == 1 and out == ""
    line = one_line(err)
    assert "bridge is off" in line and "SMARTCAR_CLIENT_ID" in line
    code, out, err = await run_cli(capsys, "command", "CP-GONE", "Reset", '{"type": "Soft"}')
    assert code == 1 and out == "" and "409" in one_line(err)
    code, out, err = await run_cli(capsys, "idtag", "block", "NO-SUCH-TAG")
    assert code == 1 and out == "" and "404" in one_line(err)


async def test_a_blocked_id_tag_can_be_unblocked(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for action, status in (("add", "Accepted"), ("block", "Blocked"), ("unblock", "Accepted")):
        code, out, err = await run_cli(capsys, "idtag", action, "CARD-U", "--json")
        assert code == 0, err
        assert json.loads(out)["status"] == status


async def test_active_sessions_show_energy_from_stored_meter_values(
    cli_env: dict[str, str],
    system: CentralSystem,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await id_tags.upsert(system.pool, "TAG-E")
    async with ocpp_charger(system.ocpp.port, "CP-E") as cp:
        transaction_id = await start_charging(cp, "TAG-E", 10_000)
        await sample_energy(cp, transaction_id, 12_345, 40)
        async with asyncio.timeout(TIMEOUT):  # the meter values are written in batches
            while not await db.fetchval("SELECT count(*) FROM meter_values"):
                await asyncio.sleep(0.05)
        code, out, err = await run_cli(capsys, "sessions", "--active", "--json")
        assert code == 0, err
        assert [(s["id"], s["energy_wh"]) for s in json.loads(out)] == [(transaction_id, 2_345)]
        code, table, _ = await run_cli(capsys, "sessions", "--active")
        assert "2345" in table.splitlines()[1]


async def test_output_into_a_closed_pipe_is_silent(cli_env: dict[str, str]) -> None:
    # `csms idtag list | head -0`: the reader is gone before we write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "csms",
            "idtag",
            "list",
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **cli_env},
        )
    finally:
        os.close(write_end)
    async with asyncio.timeout(TIMEOUT * 3):
        _, err = await process.communicate()
    assert err.decode() == ""
    assert process.returncode == 0
