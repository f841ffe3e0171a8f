"""Pure per-connector state of a simulated charge point: status derivation, energy, samples.

No sockets and no clock: the I/O shell passes in the time and the limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class EV(Protocol):
    """What a charge point needs from the car on its cable (``simulators.world.Vehicle``)."""

    def acceptance_w(self) -> float:
        """Power the car takes now; 0 when full or paused."""
        ...

    def absorb(self, grid_wh: float) -> float:
        """Grid energy delivered to the car; returns battery Wh gained."""
        ...

    @property
    def soc_percent(self) -> float: ...


@dataclass(slots=True)
class Transaction:
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime
    reservation_id: int | None = None
    # Set from the StartTransaction answer; None while it is queued or unanswered.
    transaction_id: int | None = None
    begin_sample: dict | None = None


@dataclass(slots=True)
class Reservation:
    reservation_id: int
    id_tag: str
    expires_at: datetime


@dataclass(slots=True)
class Electrics:
    """The connector's supply: AC three/one phase or DC."""

    max_power_w: float
    voltage: float
    phases: int
    dc: bool


class Connector:
    """One connector (or connector 0, which stands for the whole charge point)."""

    __slots__ = (
        "accept_w",
        "authorized_tag",
        "authorized_until",
        "connector_id",
        "ev",
        "faulted",
        "finishing",
        "meter_wh",
        "offered_w",
        "operative",
        "pending_operative",
        "power_w",
        "reported",
        "reservation",
        "tx",
    )

    def __init__(self, connector_id: int) -> None:
        self.connector_id = connector_id
        self.ev: EV | None = None
        self.tx: Transaction | None = None
        self.meter_wh = 0.0
        self.power_w = 0.0
        self.offered_w = 0.0
        self.accept_w = 0.0
        self.operative = True
        # ChangeAvailability answered Scheduled: applied when the transaction ends.
        self.pending_operative: bool | None = None
        self.reservation: Reservation | None = None
        # Tapped or remotely started before the cable was in (waits ConnectionTimeOut).
        self.authorized_tag: str | None = None
        self.authorized_until: datetime | None = None
        self.finishing = False
        self.faulted = False
        self.reported: str | None = None

    @property
    def status(self) -> str:
        return derive_status(self)

    @property
    def transaction_id(self) -> int | None:
        return None if self.tx is None else self.tx.transaction_id


def derive_status(c: Connector) -> str:
    """The ChargePointStatus this connector is in (OCPP 1.6 section 4.9)."""
    if c.faulted:
        return "Faulted"
    if c.connector_id == 0:
        return "Available" if c.operative else "Unavailable"
    if c.tx is not None:
        # The charger not offering power wins over the car not taking it.
        if c.offered_w <= 0:
            return "SuspendedEVSE"
        if c.accept_w <= 0:
            return "SuspendedEV"
        return "Charging"
    if not c.operative:
        return "Unavailable"
    if c.ev is not None:
        return "Finishing" if c.finishing else "Preparing"
    if c.authorized_tag is not None:
        return "Preparing"
    if c.reservation is not None:
        return "Reserved"
    return "Available"


def advance(c: Connector, dt_s: float, electrics: Electrics, limit_w: float | None) -> None:
    """Integrate the power of the last interval into the meter and the car, then re-sample power.

    Power is piecewise constant between calls, so the shell calls this on every tick
    and on every state change.
    """
    if c.tx is not None and c.ev is not None and dt_s > 0 and c.power_w > 0:
        grid_wh = c.power_w * dt_s / 3600.0
        c.ev.absorb(grid_wh)
        c.meter_wh += grid_wh
    offered = electrics.max_power_w if limit_w is None else min(electrics.max_power_w, limit_w)
    c.offered_w = max(offered, 0.0)
    if c.tx is not None and c.ev is not None:
        c.accept_w = max(c.ev.acceptance_w(), 0.0)
        c.power_w = min(c.offered_w, c.accept_w)
    else:
        c.accept_w = 0.0
        c.power_w = 0.0
    if c.ev is not None and c.power_w <= 0:
        # Tell the car no energy flows any more, or it keeps reporting CHARGING.
        c.ev.absorb(0.0)


def sampled_values(
    c: Connector, measurands: list[str], electrics: Electrics, context: str
) -> list[dict[str, str]]:
    """sampledValue list for the configured measurands (MeterValuesSampledData)."""
    out: list[dict[str, str]] = []
    for measurand in measurands:
        if measurand == "Energy.Active.Import.Register":
            out.append(_value(f"{c.meter_wh:.0f}", measurand, "Wh", context))
        elif measurand == "Power.Active.Import":
            out.append(_value(f"{c.power_w:.0f}", measurand, "W", context))
        elif measurand == "Power.Offered":
            out.append(_value(f"{c.offered_w:.0f}", measurand, "W", context))
        elif measurand == "Current.Import":
            if electrics.dc:
                amps = c.power_w / electrics.voltage
                out.append(_value(f"{amps:.1f}", measurand, "A", context))
            else:
                amps = c.power_w / (electrics.voltage * electrics.phases)
                for phase in ("L1", "L2", "L3")[: electrics.phases]:
                    out.append(_value(f"{amps:.1f}", measurand, "A", context, phase))
        elif measurand == "Voltage":
            out.append(_value(f"{electrics.voltage:.0f}", measurand, "V", context))
        elif measurand == "SoC" and electrics.dc and c.ev is not None:
            # AC chargers cannot read the battery; only DC (CCS/CHAdeMO) reports SoC.
            value = _value(f"{c.ev.soc_percent:.0f}", measurand, "Percent", context)
            value["location"] = "EV"
            out.append(value)
    return out


def _value(
    value: str, measurand: str, unit: str, context: str, phase: str | None = None
) -> dict[str, str]:
    sample = {"value": value, "context": context, "measurand": measurand, "unit": unit}
    if phase is not None:
        sample["phase"] = phase
    return sample
