"""Handlers for charger-initiated messages other than transactions: translate, decide, persist.

Each takes the connection, the validated payload and the receive time, and
returns the confirmation payload; an ``OCPPError`` raised here becomes the
CALLERROR (one place writes it: the connection).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import PropertyConstraintViolationError

from csms.db import charge_points, id_tags, messages
from csms.db.charge_points import BootRow
from csms.db.connectors import StatusRow
from csms.domain import registration
from csms.domain.authorization import id_tag_info
from csms.domain.connectors import is_plausible
from csms.domain.events import ConnectorStatusChanged
from csms.ocpp16.normalize import TimestampError, parse_timestamp
from csms.ocpp16.stale_transactions import close_stale_transactions

if TYPE_CHECKING:
    from csms.ocpp16.connection import ChargePointConnection

Payload = dict[str, Any]

# Connector statuses in which 1.6 (§4.9) has no transaction running.
_FREE = frozenset({"Available"})

_STATUS_KEYS = frozenset(
    {"connectorId", "errorCode", "info", "status", "timestamp", "vendorId", "vendorErrorCode"}
)


def timestamp_or_error(value: Any, deviations: list[str], field: str) -> tuple[datetime, bool]:
    try:
        parsed = parse_timestamp(value, deviations)
    except TimestampError as exc:
        raise PropertyConstraintViolationError(
            description=str(exc), details={"field": field}
        ) from None
    return parsed.value, parsed.clock_suspect


async def boot_notification(
    conn: ChargePointConnection, payload: Payload, now: datetime
) -> Payload:
    services = conn.services
    status = services.registrations.get(conn.charge_point_id, registration.ACCEPTED)
    await services.boots.write([BootRow(conn.charge_point_id, payload, now, status)])
    conn.registration_status = status
    conn.booted_at = now
    conn.log.info(
        "ocpp.boot",
        registration_status=status,
        vendor=payload.get("chargePointVendor"),
        model=payload.get("chargePointModel"),
        firmware_version=payload.get("firmwareVersion"),
    )
    return {
        "status": status,
        "currentTime": now.isoformat(),
        "interval": services.settings.heartbeat_interval,
    }


def heartbeat(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    # last_seen is recorded for every message by the connection; nothing else to store,
    # so this one is answered at once (connection.IMMEDIATE), without awaiting anything.
    return {"currentTime": now.isoformat()}


async def status_notification(
    conn: ChargePointConnection, payload: Payload, now: datetime
) -> Payload:
    deviations: list[str] = []
    reported_at, suspect = (
        timestamp_or_error(payload["timestamp"], deviations, "timestamp")
        if "timestamp" in payload
        else (None, False)
    )
    connector_id = payload["connectorId"]
    if not is_plausible(connector_id):
        # Kept in the history as reported, but no connector is created for it.
        deviations.append("connector_out_of_range")
    conn.note_deviations(deviations)
    extra = {k: v for k, v in payload.items() if k not in _STATUS_KEYS} or None
    row = StatusRow(
        conn.charge_point_id,
        connector_id,
        payload["status"],
        payload["errorCode"],
        payload.get("info"),
        payload.get("vendorId"),
        payload.get("vendorErrorCode"),
        reported_at,
        now,
        suspect,
        extra,
    )
    await conn.services.statuses.write([row])
    statuses = conn.services.connector_statuses.setdefault(conn.charge_point_id, {})
    previous = statuses.get(connector_id)
    if is_plausible(connector_id):
        statuses[connector_id] = row.status
    if previous != row.status or row.error_code != "NoError":
        conn.log.info(
            "ocpp.status_changed",
            connector_id=connector_id,
            status=row.status,
            previous_status=previous,
            error_code=row.error_code,
        )
    if row.status in _FREE and connector_id > 0 and conn.booted_at is not None:
        # After a reboot the charger shows the connector free: a transaction it began
        # before the boot and never stopped is over (StopTransaction may still come).
        if connector_id in await conn.active_transactions():
            await close_stale_transactions(conn, connector_id, now, started_before=conn.booted_at)
    conn.services.events.publish(
        ConnectorStatusChanged(
            conn.charge_point_id, connector_id, row.status, previous, row.error_code, now
        )
    )
    return {}


async def authorize(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    id_tag = payload["idTag"]
    info = id_tag_info(await id_tags.find(conn.services.pool, id_tag), now)
    conn.log.info("ocpp.authorize", id_tag=id_tag, status=info["status"])
    return {"idTagInfo": info}


async def data_transfer(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    vendor_id = payload["vendorId"]
    handler = conn.services.data_transfer_handlers.get(vendor_id)
    data = payload.get("data")
    if handler is None:
        response: Payload = {"status": "UnknownVendorId"}
    else:
        response = await handler(conn.charge_point_id, payload.get("messageId"), data)
    await messages.record_data_transfer(
        conn.services.pool,
        charge_point_id=conn.charge_point_id,
        direction="in",
        vendor_id=vendor_id,
        message_id=payload.get("messageId"),
        data=data if isinstance(data, str) or data is None else str(data),
        status=response["status"],
        response_data=response.get("data"),
        at=now,
    )
    conn.log.info("ocpp.data_transfer", vendor_id=vendor_id, status=response["status"])
    return response


async def diagnostics_status(
    conn: ChargePointConnection, payload: Payload, now: datetime
) -> Payload:
    await charge_points.record_notification(
        conn.services.pool, conn.charge_point_id, "diagnostics", payload["status"], now
    )
    conn.log.info("ocpp.diagnostics_status", status=payload["status"])
    return {}


async def firmware_status(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    await charge_points.record_notification(
        conn.services.pool, conn.charge_point_id, "firmware", payload["status"], now
    )
    conn.log.info("ocpp.firmware_status", status=payload["status"])
    return {}
