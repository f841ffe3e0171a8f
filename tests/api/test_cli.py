"""The operator CLI against the running test server, with a token it created itself."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from csms.app import CentralSystem
from tests.conftest import TIMEOUT
from tests.ocpp_client import ocpp_charger


async def _csms(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(TIMEOUT * 3):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_drives_the_operator_api_with_its_own_token(
    api_system: CentralSystem, base_url: str, database_url: str
) -> None:
    env = {
        **os.environ,
        "CSMS_DATABASE_URL": database_url,
        "CSMS_API_URL": base_url,
        "CSMS_LOG_LEVEL": "warning",
    }
    env.pop("CSMS_API_TOKEN", None)
    code, _, err = await _csms(env, "chargers")
    assert code == 1 and "401" in err and "CSMS_API_TOKEN" in err

    code, out, _ = await _csms(env, "token", "create", "cli-operator")
    assert code == 0
    env["CSMS_API_TOKEN"] = out.strip()

    async def run_json(*args: str) -> Any:
        code, out, err = await _csms(env, *args, "--json")
        assert code == 0, err
        return json.loads(out)

    async with ocpp_charger(api_system.ocpp.port, "CP-CLI") as cp:
        await cp.boot()
        chargers = await run_json("chargers")
        assert [c["id"] for c in chargers] == ["CP-CLI"]
        code, table, _ = await _csms(env, "chargers")
        assert code == 0 and table.splitlines()[0].split()[:3] == [
            "id",
            "registration",
            "connected",
        ]
        assert "CP-CLI" in table and "TestVendor" in table
        assert (await run_json("charger", "CP-CLI"))["vendor"] == "TestVendor"
        code, shown, _ = await _csms(env, "charger", "CP-CLI")
        assert code == 0 and "TestModel" in shown

    assert (await run_json("idtag", "add", "CARD-7"))["status"] == "Accepted"
    assert (await run_json("idtag", "block", "CARD-7"))["status"] == "Blocked"
    assert [t["id_tag"] for t in await run_json("idtag", "list")] == ["CARD-7"]
    assert await run_json("sessions", "--active") == []
    account = await run_json("account", "create", "Fleet", "--payment", "valid", "--tariff", "0.30")
    assert (account["payment_status"], account["tariff_per_kwh"]) == ("valid", "0.3000")
    assert [a["name"] for a in await run_json("account", "list")] == ["Fleet"]

    listed = await run_json("token", "list")
    assert [(t["name"], t["revoked_at"]) for t in listed] == [("cli-operator", None)]
    assert listed[0]["last_used_at"] is not None
    code, _, _ = await _csms(env, "token", "revoke", "cli-operator")
    assert code == 0
    code, _, err = await _csms(env, "chargers")
    assert code == 1 and "401" in err
