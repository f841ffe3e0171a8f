"""Domain events the OCPP side publishes; the bridge and operators subscribe.

Publishing never blocks: each subscriber has its own queue and its own task.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True, frozen=True)
class ChargePointConnected:
    charge_point_id: str
    at: datetime


@dataclass(slots=True, frozen=True)
class ChargePointDisconnected:
    charge_point_id: str
    at: datetime


@dataclass(slots=True, frozen=True)
class ConnectorStatusChanged:
    charge_point_id: str
    connector_id: int
    status: str
    previous_status: str | None
    error_code: str
    at: datetime


@dataclass(slots=True, frozen=True)
class TransactionStarted:
    charge_point_id: str
    connector_id: int
    transaction_id: int
    id_tag: str
    meter_start_wh: int
    at: datetime


@dataclass(slots=True, frozen=True)
class TransactionStopped:
    """A transaction ended. ``closed_by_central_system``: the charger gave up on it (a new
    transaction on its connector, or a reboot) and we closed it with the last reading
    known; ``superseded_by`` is that new transaction, if there is one."""

    charge_point_id: str
    transaction_id: int
    meter_stop_wh: int
    reason: str | None
    at: datetime
    closed_by_central_system: bool = False
    superseded_by: int | None = None


@dataclass(slots=True, frozen=True)
class MeterSampled:
    """The latest energy register and SoC seen for a connector (not every sample)."""

    charge_point_id: str
    connector_id: int
    transaction_id: int | None
    energy_wh: float | None
    soc_percent: float | None
    at: datetime


@dataclass(slots=True, frozen=True)
class CertificateSigningRequested:
    """A charger sent an acceptable SignCertificate; CertificateSigned is to follow.

    Only the security service acts on it; other subscribers ignore it.
    """

    charge_point_id: str
    csr_pem: str
    at: datetime


Event = (
    ChargePointConnected
    | ChargePointDisconnected
    | ConnectorStatusChanged
    | TransactionStarted
    | TransactionStopped
    | MeterSampled
    | CertificateSigningRequested
)


class EventBus:
    """In-process fan-out of domain events to subscriber queues."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event]] = []

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            queue.put_nowait(event)
