"""Logging set-up (csms.log): secrets never logged, one JSON object per line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
import structlog

from csms.log import SECRET_KEYS, configure_logging, mask_vin, redact_secrets


@pytest.mark.parametrize(
    ("vin", "masked"),
    [
        ("1HGCM82633A004352", "***********004352"),
        ("WVWZZZ1JZXW000001", "***********000001"),
        ("ABCDEFG", "*BCDEFG"),
        ("ABCDEF", "ABCDEF"),
        ("ABC", "ABC"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_vin_keeps_only_the_last_six_characters(vin: str | None, masked: str | None) -> None:
    assert mask_vin(vin) == masked


def test_masked_vin_keeps_its_length() -> None:
    vin = "1HGCM82633A004352"

    assert len(mask_vin(vin) or "") == len(vin)


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_secret_keys_are_redacted(key: str) -> None:
    event = {"event": "bridge.token_refreshed", key: "s3cr3t", "vehicle_id": "v-1"}

    result = redact_secrets(None, "info", event)

    assert result[key] == "[redacted]"
    assert result["vehicle_id"] == "v-1"
    assert result["event"] == "bridge.token_refreshed"


def test_redaction_covers_the_tokens_and_client_secret() -> None:
    assert {"access_token", "refresh_token", "client_secret", "password"} <= SECRET_KEYS


def test_vin_in_an_event_is_masked_to_the_last_six() -> None:
    event = {"event": "bridge.vehicle_matched", "vin": "1HGCM82633A004352"}

    assert redact_secrets(None, "info", event)["vin"] == "***********004352"


def test_non_string_vin_is_left_alone() -> None:
    assert redact_secrets(None, "info", {"event": "x", "vin": None})["vin"] is None


def test_event_without_secrets_is_unchanged() -> None:
    event = {"event": "ocpp.boot_accepted", "charge_point_id": "CP-001", "interval": 300}

    assert redact_secrets(None, "info", dict(event)) == event


def test_redaction_is_seen_by_capture_logs() -> None:
    with structlog.testing.capture_logs(processors=[redact_secrets]) as logs:
        structlog.get_logger().info(
            "bridge.token_refreshed", refresh_token="r-123", vin="1HGCM82633A004352"
        )

    assert logs == [
        {
            "event": "bridge.token_refreshed",
            "log_level": "info",
            "refresh_token": "[redacted]",
            "vin": "***********004352",
        }
    ]


class _Stderr:
    """What the process wrote to stderr during the test, as configure_logging sees it."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._text = ""

    def getvalue(self) -> str:
        self._text += self._capsys.readouterr().err
        return self._text


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> _Stderr:
    # configure_logging binds sys.stderr when called, so call it inside the test body.
    return _Stderr(capsys)


def test_json_logging_writes_one_object_per_line_with_utc_timestamp_and_event(
    stderr: _Stderr,
) -> None:
    configure_logging("json", "info")
    log = structlog.get_logger()

    log.info("ocpp.boot_accepted", charge_point_id="CP-001", interval=300)
    log.warning("ocpp.nonconforming", kind="timestamp_no_zone")

    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "ocpp.boot_accepted"
    assert first["level"] == "info"
    assert first["charge_point_id"] == "CP-001"
    assert first["interval"] == 300
    assert second["event"] == "ocpp.nonconforming"
    assert second["level"] == "warning"
    for record in (first, second):
        assert record["timestamp"].endswith("Z")
        assert datetime.fromisoformat(record["timestamp"]).utcoffset() == timedelta(0)


def test_json_logging_redacts_secrets_in_the_rendered_line(stderr: _Stderr) -> None:
    configure_logging("json", "info")

    structlog.get_logger().info(
        "bridge.token_refreshed", access_token="a-secret", vin="1HGCM82633A004352"
    )

    line = stderr.getvalue()
    assert "a-secret" not in line
    assert "1HGCM82633A004352" not in line
    record = json.loads(line)
    assert record["access_token"] == "[redacted]"
    assert record["vin"] == "***********004352"


def test_json_logging_drops_events_below_the_configured_level(stderr: _Stderr) -> None:
    configure_logging("json", "warning")
    log = structlog.get_logger()

    log.debug("ocpp.call_received")
    log.info("ocpp.boot_accepted")
    log.error("ocpp.handler_failed")

    events = [json.loads(line)["event"] for line in stderr.getvalue().splitlines()]
    assert events == ["ocpp.handler_failed"]


def test_json_logging_includes_context_bound_for_the_connection(stderr: _Stderr) -> None:
    configure_logging("json", "info")

    with structlog.contextvars.bound_contextvars(charge_point_id="CP-007"):
        structlog.get_logger().info("ocpp.heartbeat")

    assert json.loads(stderr.getvalue())["charge_point_id"] == "CP-007"


def test_json_logging_renders_an_exception_as_a_string_field(stderr: _Stderr) -> None:
    configure_logging("json", "info")

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger().exception("ocpp.handler_failed")

    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1  # the traceback is escaped inside the one JSON line
    record = json.loads(lines[0])
    assert record["event"] == "ocpp.handler_failed"
    assert "RuntimeError: boom" in record["exception"]


def test_console_logging_renders_the_event_name(stderr: _Stderr) -> None:
    configure_logging("console", "info")

    structlog.get_logger().info("ocpp.boot_accepted", charge_point_id="CP-001")

    output = stderr.getvalue()
    assert "ocpp.boot_accepted" in output
    assert "CP-001" in output


def test_standard_library_records_become_one_json_event_each(stderr: _Stderr) -> None:
    configure_logging("json", "info")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        # What uvicorn logs for an exception no handler answered.
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application\n")
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    logging.getLogger("websockets.server").info("server listening")  # library chatter: out
    # What logging.captureWarnings turns a warnings.warn into (pytest intercepts the real one).
    logging.getLogger("py.warnings").warning("x.py:1: UserWarning: deprecated thing")

    lines = stderr.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == [
        "http.unhandled_error",
        "asyncio.loop_error",
        "python.warning",
    ]
    unhandled = events[0]
    assert unhandled["logger"] == "uvicorn.error" and unhandled["level"] == "error"
    assert "RuntimeError: boom" in unhandled["exception"]
    assert "deprecated thing" in events[2]["message"]


UNHANDLED_APP = """
import asyncio, socket, sys
import httpx, uvicorn
from fastapi import FastAPI
from csms.log import configure_logging

configure_logging("json", "info")
app = FastAPI()

@app.get("/crash")
async def crash():
    raise RuntimeError("a route that crashes")

async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # The same uvicorn configuration as csms.app.
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{sock.getsockname()[1]}/crash")
    print(answer.status_code)
    server.should_exit = True
    await task

asyncio.run(main())
"""


def test_an_unhandled_http_error_is_a_json_event_not_a_plain_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-c", UNHANDLED_APP], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "500", result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    assert [e["event"] for e in events] == ["http.unhandled_error"]
    assert "a route that crashes" in events[0]["exception"]
