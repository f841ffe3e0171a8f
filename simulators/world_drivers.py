"""The people around the world, talking to a central system's public HTTP API only.

The operator sets every charger's location and creates the drivers' accounts; each driver
links their car once through Smartcar Connect (in a "browser": following the redirects).
After the run, :func:`plug_in_report` joins the central system's record of every plug-in
(``GET /api/plug-ins``) with what the world knows happened on each cable, so a wrong start
or a wrong bill shows up as ``wrong``.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from simulators.smartcar_fake.server import RunningFake
from simulators.world import World
from simulators.world_cable import CableSession

OUTCOMES = ("matched", "confirmed", "no_match", "unpaid", "at_target", "unconfirmed", "dropped")


@dataclass(slots=True, frozen=True)
class Drivers:
    """Who linked a car (``linked``) and whose account cannot pay (``unpaid``)."""

    linked: tuple[str, ...]
    unpaid: tuple[str, ...]
    unlinked: tuple[str, ...]


def choose_drivers(world: World, link_share: float, unpaid: int, seed: int | None) -> Drivers:
    """Pure: which cars are linked, and which of those are on an account that cannot pay.

    ``unpaid`` counts drivers (with all their cars), picked among one-car owners first.
    """
    rng = random.Random(f"{seed}:drivers")
    vins = list(world.vehicles)
    linked = sorted(rng.sample(vins, round(len(vins) * link_share)))
    owners: dict[str, list[str]] = {}
    for vin in linked:
        owners.setdefault(world.vehicle(vin).owner_id, []).append(vin)
    singles = [cars[0] for cars in owners.values() if len(cars) == 1]
    unpaid_vins = sorted(rng.sample(singles, min(unpaid, len(singles))))
    return Drivers(tuple(linked), tuple(unpaid_vins), tuple(v for v in vins if v not in linked))


async def set_up(api: httpx.AsyncClient, world: World, fake: RunningFake, drivers: Drivers) -> None:
    """Charger locations, one paying and one suspended account, every chosen car linked."""
    for charger in world.chargers.values():
        response = await api.put(
            f"/api/charge-points/{charger.id}/location",
            json={"latitude": charger.latitude, "longitude": charger.longitude},
        )
        response.raise_for_status()
    accounts = {}
    for status in ("valid", "suspended"):
        response = await api.post(
            "/api/accounts",
            json={"name": f"World {status}", "payment_status": status, "tariff_per_kwh": "0.30"},
        )
        response.raise_for_status()
        accounts[status] = response.json()["id"]
    # A driver links all their cars in one Connect session, as Smartcar Connect offers.
    owners: dict[str, list[str]] = {}
    for vin in drivers.linked:
        owners.setdefault(world.vehicle(vin).owner_id, []).append(vin)
    for vins in owners.values():
        unpaid = any(vin in drivers.unpaid for vin in vins)
        fake.fake.login(*vins)
        page = await api.get(
            "/smartcar/connect",
            params={"account_id": accounts["suspended" if unpaid else "valid"]},
            follow_redirects=True,
        )
        page.raise_for_status()


async def fetch_plug_ins(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/api/plug-ins", params={"limit": 10_000})
    response.raise_for_status()
    return list(response.json())


def plug_in_report(
    records: list[dict[str, Any]], cables: list[CableSession], drivers: Drivers
) -> dict[str, Any]:
    """Pure: outcomes per plug-in, wrong starts/bills against the world, start latency."""
    by_transaction = {tx: cable for cable in cables for tx in cable.transaction_ids}
    outcomes: Counter[str] = Counter(r["outcome"] for r in records)
    wrong = []
    details = []
    for record in records:
        if record["outcome"] not in ("matched", "confirmed") or record.get("vin") is None:
            continue
        transaction_id = record.get("transaction_id")
        cable = by_transaction.get(transaction_id) if transaction_id is not None else None
        if transaction_id is not None and cable is None:
            why = "a transaction with nobody on the cable"
        elif cable is not None and cable.vin[-6:] != str(record["vin"])[-6:]:
            why = "started or billed for another car"
        else:
            continue
        wrong.append(record["id"])
        detail = wrong_start_detail(record, why, cables)
        if cable is not None:
            detail["cable_of_transaction"] = {
                "vin": cable.vin[-6:],
                "charger": f"{cable.charger_id}/{cable.connector_id}",
                "plugged_at": cable.plugged_at.isoformat(),
                "unplugged_at": cable.unplugged_at.isoformat() if cable.unplugged_at else None,
                "transaction_ids": list(cable.transaction_ids),
            }
        details.append(detail)
    latency = {
        outcome: _spread(
            r["remote_start_latency_s"]
            for r in records
            if r["outcome"] in outcome.split("+") and r["remote_start_latency_s"] is not None
        )
        for outcome in ("matched+confirmed", "matched", "confirmed")
    }
    paying = set(drivers.linked) - set(drivers.unpaid)
    return {
        "plug_ins_recorded": len(records),
        "outcomes": {name: outcomes.get(name, 0) for name in (*OUTCOMES, "pending", "confirming")},
        "wrong": len(wrong),
        "wrong_plug_ins": wrong[:10],
        "wrong_details": details[:10],
        "unlinked_plug_ins": sum(c.vin in drivers.unlinked for c in cables),
        "paying_plug_ins": sum(c.vin in paying for c in cables),
        "remote_start_latency_s": latency.pop("matched+confirmed"),
        "remote_start_latency_by_outcome_s": latency,
    }


def wrong_start_detail(
    record: dict[str, Any], why: str, cables: list[CableSession]
) -> dict[str, Any]:
    """Pure: a wrong start and every cable session the world had on its connector, so it can
    be told apart from the world's bookkeeping (times are the charger's simulated clock,
    the same clock as the record's ``plugged_at``)."""
    on_connector = [
        {
            "vin": c.vin[-6:],
            "plugged_at": c.plugged_at.isoformat(),
            "unplugged_at": c.unplugged_at.isoformat() if c.unplugged_at else None,
            "transaction_ids": list(c.transaction_ids),
            "id_tag": c.id_tag,
        }
        for c in cables
        if c.charger_id == record.get("charge_point_id")
        and c.connector_id == record.get("connector_id")
    ]
    started = str(record.get("vin") or "")[-6:]
    of_car = [
        {
            "charger": f"{c.charger_id}/{c.connector_id}",
            "plugged_at": c.plugged_at.isoformat(),
            "unplugged_at": c.unplugged_at.isoformat() if c.unplugged_at else None,
        }
        for c in cables
        if started and c.vin[-6:] == started
    ]
    return {
        "why": why,
        "record": {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in record.items()},
        "cables_on_connector": on_connector,
        "cables_of_started_car": of_car,
    }


def _spread(values: Iterable[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "median": round(statistics.median(ordered), 3) if ordered else None,
        "max": round(ordered[-1], 3) if ordered else None,
    }
