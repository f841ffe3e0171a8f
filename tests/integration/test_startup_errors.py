"""`csms serve` that cannot start says why in one line: which database, which port."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import TIMEOUT, _with_database


async def _serve_until_it_exits(variables: dict[str, str]) -> tuple[int | None, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "serve",
        env={
            **os.environ,
            "CSMS_OCPP_HOST": "127.0.0.1",
            "CSMS_HTTP_HOST": "127.0.0.1",
            **variables,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT * 3):
        _, err = await process.communicate()
    # Only the last line is ours to judge: events logged before the failure are JSON.
    return process.returncode, err.decode().strip().splitlines()


def _with_user(dsn: str, user: str) -> str:
    url = urlsplit(dsn)
    host = url.netloc.rpartition("@")[2]
    return urlunsplit(url._replace(netloc=f"{user}@{host}"))


async def test_a_database_that_does_not_exist_is_one_line_naming_it(database_url: str) -> None:
    code, lines = await _serve_until_it_exits(
        {
            "CSMS_DATABASE_URL": _with_database(database_url, "no_such_db"),
            "CSMS_OCPP_PORT": "0",
            "CSMS_HTTP_PORT": "0",
        }
    )
    assert code == 1
    assert lines[-1].startswith("csms: cannot start: database ")
    assert "no_such_db" in lines[-1] and "does not exist" in lines[-1]
    assert "CSMS_DATABASE_URL" in lines[-1]
    assert not any("Traceback" in line for line in lines)


async def test_a_wrong_user_is_one_line_without_the_password(database_url: str) -> None:
    dsn = _with_user(database_url, "no_such_user:hunter2-secret")
    code, lines = await _serve_until_it_exits(
        {"CSMS_DATABASE_URL": dsn, "CSMS_OCPP_PORT": "0", "CSMS_HTTP_PORT": "0"}
    )
    assert code == 1
    assert lines[-1].startswith("csms: cannot start: database ") and "no_such_user" in lines[-1]
    assert "hunter2" not in "\n".join(lines)
    assert not any("Traceback" in line for line in lines)


async def test_an_http_port_in_use_is_named_with_its_variable(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = await _serve_until_it_exits(
            {"CSMS_DATABASE_URL": database_url, "CSMS_OCPP_PORT": "0", "CSMS_HTTP_PORT": str(port)}
        )
    assert code == 1
    assert lines[-1].startswith(
        f"csms: cannot start: port {port} (CSMS_HTTP_PORT) is already in use"
    )
