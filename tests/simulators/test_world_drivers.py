"""The world's report on the bridge's plug-ins: outcomes, wrong starts, start latency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simulators.world import Charger, Vehicle, World
from simulators.world_cable import CableSession
from simulators.world_drivers import Drivers, choose_drivers, plug_in_report

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _vehicle(vin: str, owner: str) -> Vehicle:
    return Vehicle(vin, vin.lower(), "TESLA", "Model 3", 2022, 50.0, 0.5, owner_id=owner)


def _cable(vin: str, charger: str, *transactions: int) -> CableSession:
    cable = CableSession(_vehicle(vin, "o"), charger, 1, False, NOW)
    cable.transaction_ids.extend(transactions)
    return cable


def _record(n: int, outcome: str, vin: str | None, tx: int | None, latency: float | None) -> dict:
    return {
        "id": n,
        "outcome": outcome,
        "vin": vin and "*" * 11 + vin[-6:],
        "transaction_id": tx,
        "remote_start_latency_s": latency,
    }


def test_report_counts_outcomes_and_finds_a_start_for_the_wrong_car() -> None:
    cables = [_cable("VIN000001", "CP1", 10), _cable("VIN000002", "CP2", 11)]
    records: list[dict[str, Any]] = [
        _record(1, "matched", "VIN000001", 10, 2.0),
        _record(2, "confirmed", "VIN000001", 11, 30.0),  # billed to the car on CP1
        _record(3, "no_match", None, None, None),
        _record(4, "matched", "VIN000003", 99, 4.0),  # a transaction nobody is plugged into
    ]
    drivers = Drivers(("VIN000001", "VIN000002"), (), ("VIN000003",))
    report = plug_in_report(records, cables, drivers)
    assert report["outcomes"]["matched"] == 2 and report["outcomes"]["no_match"] == 1
    assert (report["wrong"], report["wrong_plug_ins"]) == (2, [2, 4])
    assert report["remote_start_latency_s"] == {"count": 3, "median": 4.0, "max": 30.0}
    assert report["remote_start_latency_by_outcome_s"]["confirmed"]["count"] == 1
    assert report["paying_plug_ins"] == 2


def test_unpaid_drivers_are_one_car_owners_and_linked() -> None:
    owners = ["a", "a", "b", "c", "d"]
    world = World(
        vehicles=[_vehicle(f"VIN00000{n}", owner) for n, owner in enumerate(owners)],
        chargers=[Charger("CP1", 0.0, 0.0, 11_000.0, 1)],
    )
    drivers = choose_drivers(world, 0.8, 1, seed=3)
    assert len(drivers.linked) == 4 and len(drivers.unlinked) == 1
    (unpaid,) = drivers.unpaid
    assert unpaid in drivers.linked
    assert owners[int(unpaid[-1])] != "a"
