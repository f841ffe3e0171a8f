"""What a connection's handlers need from the rest of the system, wired by the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from csms.config import Settings
from csms.db.batch import BatchWriter
from csms.db.charge_points import BootRow, Presence
from csms.db.connectors import StatusRow
from csms.db.meter_values import MeterValueRow
from csms.domain.events import EventBus

# A DataTransfer handler gets (charge_point_id, messageId, data) and returns the
# DataTransfer.conf payload ({"status": ..., "data": ...}).
DataTransferHandler = Callable[[str, str | None, str | None], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: asyncpg.Pool
    clock: Callable[[], datetime]
    events: EventBus
    presence: Presence
    boots: BatchWriter[BootRow]
    statuses: BatchWriter[StatusRow]
    meter_values: BatchWriter[MeterValueRow]
    # Registration status per known charger, so a connect or a boot costs no query.
    registrations: dict[str, str] = field(default_factory=dict)
    data_transfer_handlers: dict[str, DataTransferHandler] = field(default_factory=dict)
