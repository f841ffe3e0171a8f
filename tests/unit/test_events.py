"""In-process domain event fan-out (csms.domain.events)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from csms.domain.events import (
    ChargePointConnected,
    ChargePointDisconnected,
    EventBus,
    TransactionStarted,
)

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CONNECTED = ChargePointConnected("CP-001", AT)
DISCONNECTED = ChargePointDisconnected("CP-001", AT)
STARTED = TransactionStarted("CP-001", 1, 42, "04A23BC1", 1234, AT)


async def test_every_subscriber_receives_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()

    for event in (CONNECTED, STARTED, DISCONNECTED):
        bus.publish(event)

    for queue in (first, second):
        assert [queue.get_nowait() for _ in range(3)] == [CONNECTED, STARTED, DISCONNECTED]
        assert queue.empty()


async def test_subscriber_can_await_the_next_event() -> None:
    bus = EventBus()
    queue = bus.subscribe()

    bus.publish(STARTED)

    assert await queue.get() is STARTED


async def test_unsubscribed_queue_receives_nothing_more() -> None:
    bus = EventBus()
    leaving, staying = bus.subscribe(), bus.subscribe()
    bus.publish(CONNECTED)

    bus.unsubscribe(leaving)
    bus.publish(DISCONNECTED)

    assert leaving.get_nowait() == CONNECTED
    assert leaving.empty()
    assert [staying.get_nowait(), staying.get_nowait()] == [CONNECTED, DISCONNECTED]


async def test_unsubscribing_twice_or_an_unknown_queue_is_harmless() -> None:
    bus = EventBus()
    queue = bus.subscribe()
    bus.unsubscribe(queue)

    bus.unsubscribe(queue)
    bus.unsubscribe(EventBus().subscribe())
    bus.publish(CONNECTED)

    assert queue.empty()


async def test_publishing_without_subscribers_does_nothing() -> None:
    EventBus().publish(CONNECTED)  # must not raise


async def test_subscriber_joining_late_sees_only_later_events() -> None:
    bus = EventBus()
    bus.publish(CONNECTED)

    queue = bus.subscribe()
    bus.publish(DISCONNECTED)

    assert queue.get_nowait() == DISCONNECTED
    assert queue.empty()


async def test_slow_subscriber_does_not_block_publishing() -> None:
    bus = EventBus()
    slow = bus.subscribe()

    for _ in range(10_000):
        bus.publish(CONNECTED)

    assert slow.qsize() == 10_000


def test_events_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        STARTED.meter_start_wh = 0  # type: ignore[misc]
