"""What a connection's handlers need from the rest of the system, wired by the app."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from csms.config import Settings
from csms.db.batch import BatchWriter
from csms.db.charge_points import BootRow, NewChargePoint, Presence
from csms.db.connectors import StatusRow
from csms.db.meter_values import MeterValueRow
from csms.db.transactions import StartRequest, StopRequest
from csms.domain.events import EventPort
from csms.metrics import Metrics
from csms.ocpp16.active_transactions import ActiveTransactions

# A DataTransfer handler gets (charge_point_id, messageId, data) and returns the
# DataTransfer.conf payload ({"status": ..., "data": ...}).
DataTransferHandler = Callable[[str, str | None, str | None], Awaitable[dict[str, Any]]]


class RecentMessages:
    """The last few MeterValues payloads per charger, to recognise a retransmission.

    A charger resends a MeterValues whose answer it lost, on a new connection, with the
    same content; MeterValues rows have no natural key, so an identical payload seen
    moments ago is the only sign. A few hashes per charger keep this small.
    """

    def __init__(self, per_charger: int = 4) -> None:
        self._per_charger = per_charger
        self._seen: dict[str, deque[int]] = {}

    def seen(self, charge_point_id: str, payload: dict[str, Any]) -> bool:
        """True if this exact payload came recently; records it otherwise."""
        digest = hash(json.dumps(payload, sort_keys=True, separators=(",", ":")))
        recent = self._seen.get(charge_point_id)
        if recent is None:
            recent = self._seen[charge_point_id] = deque(maxlen=self._per_charger)
        elif digest in recent:
            return True
        recent.append(digest)
        return False


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: asyncpg.Pool
    clock: Callable[[], datetime]
    events: EventPort
    presence: Presence
    boots: BatchWriter[BootRow]
    statuses: BatchWriter[StatusRow]
    meter_values: BatchWriter[MeterValueRow]
    new_charge_points: BatchWriter[NewChargePoint]
    starts: BatchWriter[StartRequest]
    stops: BatchWriter[StopRequest]
    # Registration status per known charger, so a connect or a boot costs no query.
    registrations: dict[str, str] = field(default_factory=dict)
    # Current status per charger and connector, for the "previous status" of each change.
    connector_statuses: dict[str, dict[int, str]] = field(default_factory=dict)
    data_transfer_handlers: dict[str, DataTransferHandler] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    recent_meter_values: RecentMessages = field(default_factory=RecentMessages)
    # Open transactions per charger, read for many chargers in one query.
    active_transactions: ActiveTransactions = field(init=False)

    def __post_init__(self) -> None:
        self.active_transactions = ActiveTransactions(self.pool)
