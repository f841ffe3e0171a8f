"""Handlers for the Security Whitepaper's charger-initiated messages: translate, persist, answer.

SignCertificate is answered at once; the certificate follows as CertificateSigned from the
security service's own task (see ``csms.security.service``), never from the handler.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.db import charge_points
from csms.db import security as db
from csms.ocpp16.handlers import timestamp_or_error
from csms.security.ca import CsrRejected, parse_csr
from csms.security.events import CertificateSigningRequested

if TYPE_CHECKING:
    from csms.ocpp16.connection import ChargePointConnection

Payload = dict[str, Any]


async def security_event_notification(
    conn: ChargePointConnection, payload: Payload, now: datetime
) -> Payload:
    deviations: list[str] = []
    reported_at, suspect = timestamp_or_error(payload["timestamp"], deviations, "timestamp")
    conn.note_deviations(deviations)
    stored = await db.insert_security_event(
        conn.services.pool,
        conn.charge_point_id,
        payload["type"],
        payload.get("techInfo"),
        reported_at,
        now,
        clock_suspect=suspect,
    )
    # techInfo is free text from the charger: stored, not logged.
    if stored:
        conn.log.info("ocpp.security_event", type=payload["type"])
    else:
        conn.log.info("ocpp.security_event_retransmitted", type=payload["type"])
    return {}


async def sign_certificate(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    if conn.services.settings.charger_ca_cert is None:
        conn.log.warning("ocpp.sign_certificate_rejected", reason="no_charger_ca")
        return {"status": "Rejected"}
    try:
        parse_csr(payload["csr"], conn.charge_point_id)
    except CsrRejected as exc:
        conn.log.warning("ocpp.sign_certificate_rejected", reason=str(exc))
        return {"status": "Rejected"}
    conn.services.events.publish(
        CertificateSigningRequested(conn.charge_point_id, payload["csr"], now)
    )
    conn.log.info("ocpp.sign_certificate_accepted")
    return {"status": "Accepted"}


async def signed_firmware_status(
    conn: ChargePointConnection, payload: Payload, now: datetime
) -> Payload:
    status = payload["status"]
    pool = conn.services.pool
    await db.insert_security_notification(
        pool, conn.charge_point_id, "signed_firmware", status, payload.get("requestId"), now
    )
    # Also the charger's current firmware status, as FirmwareStatusNotification sets it;
    # a charger first seen moments ago may not have its row yet (rows are batched).
    await db.ensure_charger(pool, conn.charge_point_id, conn.registration_status, now)
    await charge_points.record_notification(pool, conn.charge_point_id, "firmware", status, now)
    conn.log.info("ocpp.signed_firmware_status", status=status, request_id=payload.get("requestId"))
    return {}


async def log_status(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    status = payload["status"]
    await db.insert_security_notification(
        conn.services.pool, conn.charge_point_id, "log", status, payload.get("requestId"), now
    )
    conn.log.info("ocpp.log_status", status=status, request_id=payload.get("requestId"))
    return {}
