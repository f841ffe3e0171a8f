"""Traffic in the simulated world: random arrivals and scripted scenario files.

Pure: no I/O and no clock. Times are simulated seconds since the run started; the caller
passes the RNG, so a seed reproduces the same day.

A scenario file is JSON, either a list of events or ``{"events": [...]}``::

    {"at": 30, "action": "plug_in", "vehicle": 0, "charger_id": "CP00001", "connector_id": 1,
     "tap": true, "dwell_s": 900}
    {"at": 60, "action": "offline", "charger_id": "CP00001", "seconds": 120}
    {"at": 400, "action": "unplug", "vin": "5YJ3E1EA7KF000001"}
    {"at": 5, "action": "set_soc", "vehicle": 1, "value": 0.2}       (also set_charge_limit)
    {"at": 40, "action": "tap", "vehicle": 1, "id_tag": "CARD-42"}   (at the car's connector)

A vehicle is named by ``vin`` or by ``vehicle``, its index in the world's generation order.
``tap`` is true (the driver's own card), a card id, or absent (wait for a remote start).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulators.world import ScenarioEvent

WORLD_ACTIONS = ("plug_in", "unplug", "set_soc", "set_charge_limit")
ACTIONS = (*WORLD_ACTIONS, "offline", "tap")


class ScenarioFileError(ValueError):
    """A scenario file that does not describe events we can run (names the event)."""


@dataclass(slots=True, frozen=True)
class ScriptedEvent:
    """One scripted happening, ``at`` simulated seconds after the run starts."""

    at: float
    action: str
    vin: str | None = None
    charger_id: str | None = None
    connector_id: int | None = None
    value: float | None = None
    # offline: how long the charger's network is gone (simulated seconds).
    seconds: float | None = None
    # plug_in: True taps the driver's own card, a string taps that card, None waits.
    tap: bool | str | None = None
    # plug_in / tap: the card tapped (tap events), or how long the car stays (plug_in).
    id_tag: str | None = None
    dwell_s: float | None = None

    def world_event(self) -> ScenarioEvent:
        """The part ``simulators.world.apply`` understands (plug, unplug, SoC, limit)."""
        if self.action not in WORLD_ACTIONS or self.vin is None:
            raise ScenarioFileError(f"{self.action} at {self.at}s is not a world event")
        return ScenarioEvent(
            self.at, self.action, self.vin, self.charger_id, self.connector_id, self.value
        )


def parse_scenario(data: Any, vins: Sequence[str]) -> list[ScriptedEvent]:
    """Validate decoded JSON into events sorted by time; ``vins`` resolves ``vehicle`` indexes."""
    raw = data.get("events") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise ScenarioFileError('expected a list of events or {"events": [...]}')
    events = [_parse_event(n, entry, vins) for n, entry in enumerate(raw)]
    return sorted(events, key=lambda e: e.at)


def _parse_event(n: int, entry: Any, vins: Sequence[str]) -> ScriptedEvent:
    where = f"event {n}"
    if not isinstance(entry, dict):
        raise ScenarioFileError(f"{where}: not an object")
    action = entry.get("action")
    if action not in ACTIONS:
        raise ScenarioFileError(f"{where}: action must be one of {', '.join(ACTIONS)}")
    try:
        at = float(entry["at"])
    except (KeyError, TypeError, ValueError):
        raise ScenarioFileError(f"{where}: 'at' (seconds) is required") from None
    vin = _vin(where, entry, vins)
    needs_vin = action != "offline"
    if needs_vin and vin is None:
        raise ScenarioFileError(f"{where}: {action} needs 'vin' or 'vehicle'")
    if action in ("plug_in", "offline") and not entry.get("charger_id"):
        raise ScenarioFileError(f"{where}: {action} needs 'charger_id'")
    if action == "offline" and not _number(entry.get("seconds")):
        raise ScenarioFileError(f"{where}: offline needs 'seconds'")
    if action in ("set_soc", "set_charge_limit") and not _number(entry.get("value")):
        raise ScenarioFileError(f"{where}: {action} needs 'value' (a fraction)")
    return ScriptedEvent(
        at=at,
        action=action,
        vin=vin,
        charger_id=entry.get("charger_id"),
        connector_id=int(entry.get("connector_id", 1)) if action == "plug_in" else None,
        value=_optional_float(entry.get("value")),
        seconds=_optional_float(entry.get("seconds")),
        tap=entry.get("tap"),
        id_tag=entry.get("id_tag"),
        dwell_s=_optional_float(entry.get("dwell_s")),
    )


def _vin(where: str, entry: dict[str, Any], vins: Sequence[str]) -> str | None:
    if "vin" in entry:
        return str(entry["vin"])
    index = entry.get("vehicle")
    if index is None:
        return None
    if not isinstance(index, int) or not 0 <= index < len(vins):
        raise ScenarioFileError(f"{where}: no vehicle {index!r} (the world has {len(vins)})")
    return vins[index]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_float(value: Any) -> float | None:
    return float(value) if _number(value) else None


# --- random arrivals -------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Arrival:
    """A driver arriving at ``at``, staying ``dwell_s``, tapping a card or not."""

    at: float
    dwell_s: float
    rfid: bool


class ArrivalProcess:
    """A Poisson process of arrivals (exponential gaps) at ``rate_per_hour``.

    Dwell times are uniform in [0.5, 1.5] x ``mean_dwell_s``: bounded, so a short demo still
    sees cars leave. ``rfid_share`` of drivers tap a card; the rest wait for a remote start.
    """

    __slots__ = ("_next", "_rng", "mean_dwell_s", "rate_per_hour", "rfid_share")

    def __init__(
        self,
        rate_per_hour: float,
        mean_dwell_s: float,
        rfid_share: float,
        rng: random.Random,
    ) -> None:
        if rate_per_hour < 0 or mean_dwell_s <= 0 or not 0.0 <= rfid_share <= 1.0:
            raise ValueError("rate >= 0, dwell > 0 and 0 <= rfid share <= 1 are required")
        self.rate_per_hour = rate_per_hour
        self.mean_dwell_s = mean_dwell_s
        self.rfid_share = rfid_share
        self._rng = rng
        self._next = self._gap()

    def _gap(self) -> float:
        if self.rate_per_hour == 0:
            return math.inf
        return self._rng.expovariate(self.rate_per_hour / 3600.0)

    def due(self, until: float) -> list[Arrival]:
        """Arrivals up to ``until`` not returned before, in time order."""
        arrivals = []
        while self._next <= until:
            dwell = self.mean_dwell_s * self._rng.uniform(0.5, 1.5)
            arrivals.append(Arrival(self._next, dwell, self._rng.random() < self.rfid_share))
            self._next += self._gap()
        return arrivals
