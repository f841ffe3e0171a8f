"""Energy register readings judged within one transaction by timestamp (domain.meter_register)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.domain.meter_register import RegisterReadings

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_rising_register_is_consistent() -> None:
    readings = RegisterReadings()
    assert [readings.add(1, at(m), wh) for m, wh in ((0, 100), (1, 200), (2, 200))] == [None] * 3


def test_a_reading_below_the_one_before_it_is_backwards() -> None:
    readings = RegisterReadings()
    readings.add(1, at(0), 500)
    found = readings.add(1, at(1), 400)
    assert found is not None
    assert (found.energy_wh, found.other_wh, found.other_at) == (400, 500, at(0))


def test_a_late_reading_is_judged_by_its_timestamp_not_its_arrival() -> None:
    readings = RegisterReadings()
    readings.add(1, at(0), 100)
    readings.add(1, at(10), 1000)
    assert readings.add(1, at(5), 500) is None  # arrived last, taken in between: fine
    found = readings.add(1, at(6), 1200)  # above the reading taken after it
    assert found is not None and found.other_wh == 1000


def test_transactions_are_judged_apart() -> None:
    readings = RegisterReadings()
    readings.add(1, at(0), 5000)
    readings.add(2, at(10), 6000)
    # A late reading of transaction 1 is no baseline for transaction 2, nor judged by it.
    assert readings.add(1, at(5), 5500) is None
    assert readings.add(2, at(11), 6100) is None


def test_forgotten_transactions_hold_no_memory_and_the_window_is_bounded() -> None:
    readings = RegisterReadings(window=3)
    for minute in range(10):
        readings.add(7, at(minute), 100 * minute)
    # Older than every kept reading: checked against the oldest kept one (700 Wh at 7).
    assert readings.add(7, at(1), 800) is not None
    readings.forget(7)
    assert len(readings) == 0


def test_same_timestamp_readings_are_taken_in_arrival_order() -> None:
    readings = RegisterReadings()
    readings.add(1, at(1), 6000)
    assert readings.add(1, at(1), 6000) is None
    assert readings.add(1, at(1), 100) is not None
