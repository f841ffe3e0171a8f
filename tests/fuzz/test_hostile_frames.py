"""Hostile input, seeded: nothing acknowledged is lost, nothing answered twice (issue 14)."""

from __future__ import annotations

import logging
import time

import asyncpg
import pytest

from bench.fuzz import check_answers, check_database, fuzz, stderr_problems, summary
from bench.fuzz_frames import MUTATIONS
from csms.app import CentralSystem
from csms.config import Settings
from csms.log import configure_logging

FRAMES = 20_000
CHARGERS = 20


async def test_seeded_hostile_frames_are_each_answered_once_and_lose_nothing(
    settings: Settings,
    db: asyncpg.Connection,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Info, not the suite's debug: 20,000 frames would write 60,000 debug lines.
    configure_logging("json", "info")
    caplog.set_level(logging.WARNING)
    central = CentralSystem(settings)  # the group commit writes at once when idle
    await central.start()
    try:
        started = time.monotonic()
        runs = await fuzz(
            f"ws://127.0.0.1:{central.ocpp.port}/ocpp",
            seed=14,
            chargers=CHARGERS,
            frames=FRAMES,
            prefix="FZ-",
        )
        figures = summary(runs, time.monotonic() - started)
    finally:
        await central.stop()

    assert check_answers(runs) == []
    assert figures["internal_errors"] == 0
    assert figures["frames"] >= FRAMES
    assert set(figures["closes"]) <= {"1007", "1009"}
    assert await check_database(db, runs) == []
    # Every mutation class was exercised and the chargers got both kinds of answer.
    assert figures["answers"]["CALLRESULT"] > FRAMES // 5
    for code in ("FormationViolation", "PropertyConstraintViolation", "ProtocolError"):
        assert figures["answers"].get(code, 0) > 0, code
    assert set(figures["closes"]) == {"1007", "1009"}
    assert len(MUTATIONS) == 15
    # One JSON event per line on stderr; nothing through stdlib logging (websockets' own
    # "connection handler failed" traceback would land there).
    assert stderr_problems(capfd.readouterr().err.splitlines()) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
