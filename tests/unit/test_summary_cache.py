"""The dashboard's summary cache: one fleet scan serves every dashboard polling at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.http.dashboard import SummaryCache

TODAY = datetime(2026, 12, 1, tzinfo=UTC)


class Reads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> dict[str, Any]:
        self.count += 1
        await asyncio.sleep(0.01)  # a read that takes a while: others arrive meanwhile
        return {"read": self.count}


async def test_concurrent_requests_share_one_read() -> None:
    now = [0.0]
    cache = SummaryCache(max_age=2.0, clock=lambda: now[0])
    read = Reads()
    answers = await asyncio.gather(*(cache.get(TODAY, read) for _ in range(10)))
    assert read.count == 1
    assert answers == [{"read": 1}] * 10


async def test_a_summary_older_than_max_age_is_read_again() -> None:
    now = [0.0]
    cache = SummaryCache(max_age=2.0, clock=lambda: now[0])
    read = Reads()
    assert await cache.get(TODAY, read) == {"read": 1}
    now[0] = 1.9
    assert await cache.get(TODAY, read) == {"read": 1}
    now[0] = 2.0
    assert await cache.get(TODAY, read) == {"read": 2}


async def test_each_start_of_day_has_its_own_summary() -> None:
    now = [0.0]
    cache = SummaryCache(max_age=2.0, clock=lambda: now[0])
    read = Reads()
    paris = TODAY - timedelta(hours=1)
    assert await cache.get(TODAY, read) == {"read": 1}
    assert await cache.get(paris, read) == {"read": 2}
    assert await cache.get(TODAY, read) == {"read": 1}
