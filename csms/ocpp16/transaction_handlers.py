"""Handlers for StartTransaction, StopTransaction and MeterValues."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ocpp.exceptions import InternalError

from csms.db import transactions
from csms.db.meter_values import MeterValueRow
from csms.db.transactions import StartRequest, StartRow, StopRequest, StopRow
from csms.domain.connectors import connector_deviation
from csms.domain.events import MeterSampled, TransactionStarted, TransactionStopped
from csms.ocpp16.handlers import Payload, timestamp_or_error
from csms.ocpp16.normalize import normalise_sampled_value
from csms.ocpp16.stale_transactions import superseded

if TYPE_CHECKING:
    from csms.ocpp16.connection import ChargePointConnection

ENERGY_REGISTER = "Energy.Active.Import.Register"
_SAMPLED_KEYS = {"value", "context", "format", "measurand", "phase", "location", "unit"}
_START_KEYS = {"connectorId", "idTag", "meterStart", "reservationId", "timestamp"}


async def start_transaction(
    conn: ChargePointConnection, payload: Payload, now: datetime
) -> Payload:
    deviations: list[str] = []
    started_at, suspect = timestamp_or_error(payload["timestamp"], deviations, "timestamp")
    note_connector(conn, payload["connectorId"], deviations)
    conn.note_deviations(deviations)
    id_tag = payload["idTag"]
    row = StartRow(
        charge_point_id=conn.charge_point_id,
        connector_id=payload["connectorId"],
        id_tag=id_tag,
        reservation_id=payload.get("reservationId"),
        meter_start_wh=payload["meterStart"],
        start_timestamp=started_at,
        received_at=now,
        clock_suspect=suspect,
        extra={k: v for k, v in payload.items() if k not in _START_KEYS} or None,
    )
    # Judged, stored and the connector's forgotten ones closed in the group commit.
    request = StartRequest(row)
    await conn.services.starts.write([request])
    outcome = _stored(request.outcome)
    transaction_id, info = outcome.transaction_id, outcome.id_tag_info
    active = await conn.active_transactions()
    active[row.connector_id] = transaction_id
    log = conn.log.bind(connector_id=row.connector_id, transaction_id=transaction_id)
    if not outcome.created:
        log.info("ocpp.start_transaction_retransmitted")
    else:
        # One transaction per connector: one still open there was forgotten by the charger
        # (a reboot, a lost StopTransaction), and would stay "active" for good.
        superseded(conn, row.connector_id, outcome.superseded, now, superseded_by=transaction_id)
        log.info(
            "ocpp.transaction_started",
            id_tag=id_tag,
            id_tag_status=info["status"],
            meter_start_wh=row.meter_start_wh,
        )
        conn.services.events.publish(
            TransactionStarted(
                conn.charge_point_id,
                row.connector_id,
                transaction_id,
                id_tag,
                row.meter_start_wh,
                now,
            )
        )
    return {"transactionId": transaction_id, "idTagInfo": info}


_Outcome = TypeVar("_Outcome")


def _stored(outcome: _Outcome | None) -> _Outcome:
    if outcome is None:
        # The database refused the request (logged as db.row_rejected): nothing stored,
        # so no answer; the charger retries on the CALLERROR.
        raise InternalError(description="Internal error")
    return outcome


async def stop_transaction(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    deviations: list[str] = []
    stopped_at, suspect = timestamp_or_error(payload["timestamp"], deviations, "timestamp")
    transaction_id = payload["transactionId"]
    row = StopRow(
        charge_point_id=conn.charge_point_id,
        transaction_id=transaction_id,
        id_tag=payload.get("idTag"),
        meter_stop_wh=payload["meterStop"],
        stop_timestamp=stopped_at,
        # OCPP 1.6 StopTransaction.req: "if omitted, the reason is Local".
        reason=payload.get("reason", "Local"),
        received_at=now,
        clock_suspect=suspect,
        payload=payload,
    )
    # Validated now, before the database transaction; the connector comes from the row.
    sampled = meter_rows(
        conn,
        payload.get("transactionData") or [],
        connector_id=0,
        transaction_id=transaction_id,
        now=now,
        source="StopTransaction",
        deviations=deviations,
    )
    conn.note_deviations(deviations)
    request = StopRequest(row, sampled)
    await conn.services.stops.write([request])
    outcome = _stored(request.outcome)
    log = conn.log.bind(transaction_id=transaction_id, connector_id=outcome.connector_id)
    if outcome.already_stopped:
        # The charger resent its stop (our answer was lost): answer it again, change nothing.
        log.info("ocpp.stop_transaction_retransmitted")
    elif outcome.meter_start_wh is None:
        log.warning("ocpp.orphan_stop_transaction", meter_stop_wh=row.meter_stop_wh)
    else:
        meter_start = outcome.meter_start_wh
        if row.meter_stop_wh < meter_start:
            log.warning(
                "ocpp.meter_anomaly", meter_start_wh=meter_start, meter_stop_wh=row.meter_stop_wh
            )
        log.info(
            "ocpp.transaction_stopped",
            reason=row.reason,
            meter_stop_wh=row.meter_stop_wh,
            energy_wh=max(row.meter_stop_wh - meter_start, 0),
            closed_by_central_system=outcome.closed_by_central_system or None,
        )
        conn.services.events.publish(
            TransactionStopped(
                conn.charge_point_id,
                transaction_id,
                row.meter_stop_wh,
                row.reason,
                now,
                closed_by_central_system=outcome.closed_by_central_system,
            )
        )
    conn.registers.forget(transaction_id)
    active = await conn.active_transactions()
    if outcome.connector_id is not None and active.get(outcome.connector_id) == transaction_id:
        del active[outcome.connector_id]
    response: Payload = {}
    if outcome.id_tag_info is not None:
        response["idTagInfo"] = outcome.id_tag_info
    return response


def note_connector(conn: ChargePointConnection, connector_id: int, deviations: list[str]) -> None:
    """A connector the charger never reported is used as sent, and logged (not refused)."""
    reported = conn.services.connector_statuses.get(conn.charge_point_id, {})
    deviation = connector_deviation(connector_id, reported)
    if deviation is not None:
        deviations.append(deviation)


async def meter_values(conn: ChargePointConnection, payload: Payload, now: datetime) -> Payload:
    connector_id = payload["connectorId"]
    transaction_id = payload.get("transactionId")
    if transaction_id is None and connector_id > 0:
        # Some firmware omits transactionId during a transaction.
        transaction_id = (await conn.active_transactions()).get(connector_id)
        if transaction_id is not None:
            conn.note_deviations(["meter_values_without_transaction_id"])
    deviations: list[str] = []
    note_connector(conn, connector_id, deviations)
    rows = meter_rows(
        conn,
        payload["meterValue"],
        connector_id=connector_id,
        transaction_id=transaction_id,
        now=now,
        source="MeterValues",
        deviations=deviations,
    )
    conn.note_deviations(deviations)
    # A resend of readings with a trustworthy timestamp is recognised by the database key
    # (stored once, migrations 0006/0009). Those without one are keyed by arrival, so only
    # the recent payloads seen here recognise their resend; checking every payload cost
    # 14 % of the meter value path (bench/meter_values.py, py-spy).
    suspect = any(r.clock_suspect for r in rows)
    if suspect and conn.services.recent_meter_values.seen(conn.charge_point_id, payload):
        # Resent after a lost answer (a reconnect in between): already stored.
        conn.log.info("ocpp.meter_values_retransmitted", connector_id=connector_id)
        return {}
    await conn.services.meter_values.write(rows)
    await _check_register(conn, connector_id, transaction_id, rows, now)
    return {}


async def _check_register(
    conn: ChargePointConnection,
    connector_id: int,
    transaction_id: int | None,
    rows: list[MeterValueRow],
    now: datetime,
) -> None:
    energy = [
        r
        for r in rows
        if r.measurand == ENERGY_REGISTER and r.phase is None and r.value is not None
    ]
    soc = [r.value for r in rows if r.measurand == "SoC" and r.value is not None]
    if not energy and not soc:
        return
    latest = max(energy, key=lambda r: r.sampled_at).value if energy else None
    # Judged within its own open transaction, by timestamp (domain.meter_register).
    if transaction_id is not None and transaction_id in (await conn.active_transactions()).values():
        for reading in energy:
            assert reading.value is not None
            backwards = conn.registers.add(transaction_id, reading.sampled_at, reading.value)
            if backwards is not None:
                conn.log.warning(
                    "ocpp.meter_anomaly",
                    connector_id=connector_id,
                    transaction_id=transaction_id,
                    energy_wh=backwards.energy_wh,
                    sampled_at=backwards.at.isoformat(),
                    other_wh=backwards.other_wh,
                    other_sampled_at=backwards.other_at.isoformat(),
                )
                await transactions.flag_meter_anomaly(conn.services.pool, transaction_id)
                break
    conn.services.events.publish(
        MeterSampled(
            conn.charge_point_id,
            connector_id,
            transaction_id,
            latest,
            soc[-1] if soc else None,
            now,
        )
    )


def meter_rows(
    conn: ChargePointConnection,
    meter_value_list: list[dict[str, Any]],
    *,
    connector_id: int,
    transaction_id: int | None,
    now: datetime,
    source: str,
    deviations: list[str],
) -> list[MeterValueRow]:
    """One row per sampled value, with the 1.6 defaults made explicit."""
    rows: list[MeterValueRow] = []
    for meter_value in meter_value_list:
        sampled_at, suspect = timestamp_or_error(
            meter_value["timestamp"], deviations, "meterValue.timestamp"
        )
        for sampled in meter_value["sampledValue"]:
            measurand = sampled.get("measurand", ENERGY_REGISTER)
            value_format = sampled.get("format", "Raw")
            raw_unit = sampled.get("unit")
            raw_value = sampled["value"]
            number = normalise_sampled_value(
                raw_value, raw_unit, measurand, value_format, deviations
            )
            extra = {k: v for k, v in sampled.items() if k not in _SAMPLED_KEYS} or None
            rows.append(
                MeterValueRow(
                    conn.charge_point_id,
                    connector_id,
                    transaction_id,
                    sampled_at,
                    now,
                    measurand,
                    sampled.get("phase"),
                    sampled.get("location", "Outlet"),
                    number.unit,
                    sampled.get("context", "Sample.Periodic"),
                    value_format,
                    number.value,
                    raw_value if isinstance(raw_value, str) else str(raw_value),
                    raw_unit,
                    source,
                    suspect,
                    extra,
                )
            )
    return rows
