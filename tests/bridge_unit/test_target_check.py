"""The below-target check before a confirmation spends only what the confirmation leaves.

Several candidates at once, some SoCs known (webhooks, an earlier read), some not: the
unknown ones are read when the spare calls pay for all of them, else left unread (a full
car on the cable draws nothing, so the start still tells the cars apart), and nothing is
read for a confirmation that cannot be paid for at all."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from smartcar_bridge.plug_in_desk import PlugInDesk
from smartcar_bridge.store import Vehicle

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
LOG = structlog.get_logger()


def vehicle(n: int, target: int = 80) -> Vehicle:
    return Vehicle(
        id=n, smartcar_vehicle_id=f"sc-{n}", link_id=n, account_id=1, vin=f"VIN{n:014d}",
        id_tag=f"SC{n}", battery_capacity_wh=50_000, target_soc_percent=target,
        max_energy_wh=None, departure_at=None, latitude=None, longitude=None,
        unplugged_seen_at=None, plugged_seen_at=None, plug_data_at=None,
        payment_status="valid", tariff_per_kwh=Decimal("0.30"), currency="EUR",
    )  # fmt: skip


@dataclass
class _Battery:
    soc_percent: float


@dataclass
class _Access:
    """The car's cloud: the SoC a read answers, and how many reads were made."""

    socs: dict[int, float]
    reads: list[int] = field(default_factory=list)

    def known_battery(self, car: Vehicle, max_age_s: float) -> _Battery | None:
        return None

    async def battery(self, car: Vehicle, log: Any) -> _Battery:
        self.reads.append(car.id)
        await asyncio.sleep(0)  # concurrent reads interleave, as over HTTP
        return _Battery(self.socs[car.id])


@dataclass
class _Watch:
    """SoCs the cars' webhooks reported."""

    reported: dict[int, float]

    def reported_soc(self, vehicle_id: int, since: datetime) -> float | None:
        return self.reported.get(vehicle_id)


def desk(access: _Access, watch: _Watch) -> PlugInDesk:
    return PlugInDesk(
        pool=None, access=access, watch=watch, confirmer=None,  # type: ignore[arg-type]
        start_session=None, adopt_session=None, clock=lambda: NOW,  # type: ignore[arg-type]
        window_s=60, settle_s=1, give_up_after_s=120,
    )  # fmt: skip


CARS = [vehicle(1), vehicle(2), vehicle(3), vehicle(4)]
# Car 1 reported 85 % (at target), car 2 reported 40 %; cars 3 (90 %) and 4 (30 %) unknown.
REPORTED = {1: 85.0, 2: 40.0}
CLOUD = {1: 85.0, 2: 40.0, 3: 90.0, 4: 30.0}


async def test_unknown_socs_are_read_together_when_the_spare_calls_pay_for_them() -> None:
    access = _Access(CLOUD)
    with capture_logs() as logs:
        wanting = await desk(access, _Watch(REPORTED))._below_target(7, CARS, LOG, 2)
    assert sorted(access.reads) == [3, 4]  # the known ones cost nothing
    assert wanting is not None and [v.id for v in wanting] == [2, 4]
    assert not [e for e in logs if e["event"] == "bridge.target_unchecked"]


@pytest.mark.parametrize("spare", [0, 1])
async def test_unknown_socs_stay_unread_candidates_when_only_the_confirmation_fits(
    spare: int,
) -> None:
    access = _Access(CLOUD)
    checker = desk(access, _Watch(REPORTED))
    with capture_logs() as logs:
        rounds = await asyncio.gather(
            *(checker._below_target(7, CARS, LOG, spare) for _ in range(3))
        )
    assert access.reads == []
    for wanting in rounds:  # a known full car is still left out; the unknown stay in
        assert wanting is not None and [v.id for v in wanting] == [2, 3, 4]
    unchecked = [e for e in logs if e["event"] == "bridge.target_unchecked"]
    assert len(unchecked) == 1  # once per plug-in, however often it decides again
    assert unchecked[0]["candidates"] == 2 and unchecked[0]["calls_left"] == spare


async def test_nothing_is_read_or_said_for_a_confirmation_that_cannot_be_paid_for() -> None:
    access = _Access(CLOUD)
    with capture_logs() as logs:
        wanting = await desk(access, _Watch(REPORTED))._below_target(7, CARS, LOG, -1)
    assert access.reads == []
    assert wanting is not None and [v.id for v in wanting] == [2, 3, 4]
    assert not [e for e in logs if e["event"] == "bridge.target_unchecked"]


async def test_every_known_soc_at_target_leaves_no_candidate_without_a_call() -> None:
    access = _Access(CLOUD)
    full = [vehicle(1), vehicle(5, target=50)]
    wanting = await desk(access, _Watch({1: 85.0, 5: 60.0}))._below_target(7, full, LOG, 5)
    assert access.reads == [] and wanting == []


async def test_an_unreadable_battery_makes_the_plug_in_decide_again_later() -> None:
    class Failing(_Access):
        async def battery(self, car: Vehicle, log: Any) -> None:  # type: ignore[override]
            self.reads.append(car.id)

    access = Failing(CLOUD)
    assert await desk(access, _Watch(REPORTED))._below_target(7, CARS, LOG, 2) is None
    assert sorted(access.reads) == [3, 4]
