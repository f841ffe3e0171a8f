"""Answers of a simulated charge point to central-system commands (OCPP 1.6 chapter 5).

Each handler returns (answer payload, follow-up or None); the follow-up runs after the
answer is queued, so e.g. a StartTransaction never overtakes the RemoteStart answer.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from simulators.cp_connector import Connector, Reservation
from simulators.cp_profiles import CP_MAX, TX_PROFILE, parse_profile, parse_time
from simulators.cp_runtime import isoformat
from simulators.cp_security import SECURITY_KEYS

if TYPE_CHECKING:
    from simulators.cp_session import Session

Reply = tuple[dict[str, Any], Callable[[], None] | None]
_STEP_S = 5.0  # simulated duration of one diagnostics / firmware step


class CallErrorReply(Exception):
    """Raised by a handler to answer with CALLERROR ``code`` (OCPP-J 4.2.3)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _connector(cp: Session, connector_id: Any) -> Connector | None:
    if isinstance(connector_id, int) and 0 < connector_id < len(cp.connectors):
        return cp.connectors[connector_id]
    return None


def remote_start(cp: Session, p: dict[str, Any]) -> Reply:
    id_tag: str = p["idTag"]
    if "connectorId" in p:
        c = _connector(cp, p["connectorId"])
        candidates = [c] if c is not None else []
    else:
        # No connector given: the one with a car waiting, else the first free one.
        candidates = sorted(cp.connectors[1:], key=lambda c: c.ev is None)
    chosen = next((c for c in candidates if c.tx is None and c.operative), None)
    if chosen is None:
        return {"status": "Rejected"}, None
    if "chargingProfile" in p:
        profile = parse_profile(chosen.connector_id, p["chargingProfile"])
        if profile.purpose != TX_PROFILE:
            return {"status": "Rejected"}, None
        cp.profiles.install(profile)

    def start() -> None:
        if cp.config.get_bool("AuthorizeRemoteTxRequests"):
            cp.authorize(chosen, id_tag)
        else:
            cp.authorized(chosen, id_tag)

    return {"status": "Accepted"}, start


def remote_stop(cp: Session, p: dict[str, Any]) -> Reply:
    transaction_id = p["transactionId"]
    for c in cp.connectors[1:]:
        if c.tx is not None and c.tx.transaction_id == transaction_id:
            return {"status": "Accepted"}, partial(cp.stop_transaction, c, "Remote")
    return {"status": "Rejected"}, None


def reset(cp: Session, p: dict[str, Any]) -> Reply:
    kind = p["type"]
    if kind not in ("Soft", "Hard"):
        raise CallErrorReply("PropertyConstraintViolation", "type must be Soft or Hard")
    return {"status": "Accepted"}, lambda: cp.request_reset(kind)


def change_availability(cp: Session, p: dict[str, Any]) -> Reply:
    connector_id, operative = p["connectorId"], p["type"] == "Operative"
    if connector_id == 0:
        targets = cp.connectors
    else:
        c = _connector(cp, connector_id)
        if c is None:
            return {"status": "Rejected"}, None
        targets = [c]
    scheduled = False
    for c in targets:
        if c.tx is not None:
            # Section 5.2: change after the running transaction, answer Scheduled.
            c.pending_operative, scheduled = operative, True
        else:
            c.operative = operative
    return {"status": "Scheduled" if scheduled else "Accepted"}, lambda: _sync_all(cp)


def _sync_all(cp: Session) -> None:
    for c in cp.connectors:
        cp.sync_status(c)


def get_configuration(cp: Session, p: dict[str, Any]) -> Reply:
    known, unknown = cp.config.entries(p.get("key"))
    answer: dict[str, Any] = {"configurationKey": known}
    if unknown:
        answer["unknownKey"] = unknown
    return answer, None


def change_configuration(cp: Session, p: dict[str, Any]) -> Reply:
    key, value = p["key"], str(p["value"])
    security = getattr(cp, "security", None)
    if security is not None and key in SECURITY_KEYS:
        status = security.apply(key, value)
        # A new key is used from the next connection on; a new profile makes the charger
        # reconnect with it at once (security whitepaper, "Migrate to a new profile").
        drop = getattr(cp, "drop_connection", None)
        if status != "Accepted" or key != "SecurityProfile" or drop is None:
            return {"status": status}, None
        # Follow-ups run as soon as the reply is queued; the reply must reach the central
        # system before the socket goes, so reconnect a moment later.
        return {"status": status}, partial(cp.schedule, 1.0, drop, True)
    status = cp.config.change(key, value)
    followup = None
    if status == "Accepted" and key == "HeartbeatInterval":
        followup = cp.rearm_heartbeat
    return {"status": status}, followup


def unlock_connector(cp: Session, p: dict[str, Any]) -> Reply:
    c = _connector(cp, p["connectorId"])
    if c is None:
        return {"status": "NotSupported"}, None
    followup = None
    if c.tx is not None:
        followup = partial(cp.stop_transaction, c, "UnlockCommand")
    return {"status": "Unlocked"}, followup


def clear_cache(cp: Session, p: dict[str, Any]) -> Reply:
    cp.clear_cache()
    return {"status": "Accepted"}, None


def trigger_message(cp: Session, p: dict[str, Any]) -> Reply:
    what, connector_id = p["requestedMessage"], p.get("connectorId")
    if connector_id is None:
        targets = cp.connectors if what == "StatusNotification" else cp.connectors[1:]
    elif connector_id == 0:
        targets = [cp.connectors[0]]
    else:
        c = _connector(cp, connector_id)
        if c is None:
            return {"status": "Rejected"}, None
        targets = [c]

    def statuses() -> None:
        for c in targets:
            cp.sync_status(c, force=True)

    def meter_values() -> None:
        for c in targets:
            if c.connector_id:
                cp.send_meter_values(c, "Trigger")

    actions: dict[str, Callable[[], None]] = {
        "BootNotification": cp.send_boot,
        "Heartbeat": lambda: cp.enqueue("Heartbeat", {}),
        "StatusNotification": statuses,
        "MeterValues": meter_values,
        "DiagnosticsStatusNotification": lambda: cp.enqueue(
            "DiagnosticsStatusNotification", {"status": cp.diagnostics_status}
        ),
        "FirmwareStatusNotification": lambda: cp.enqueue(
            "FirmwareStatusNotification", {"status": cp.firmware_status}
        ),
    }
    if what not in actions:
        return {"status": "NotImplemented"}, None
    return {"status": "Accepted"}, actions[what]


def set_charging_profile(cp: Session, p: dict[str, Any]) -> Reply:
    connector_id = p["connectorId"]
    if not 0 <= connector_id < len(cp.connectors):
        return {"status": "Rejected"}, None
    profile = parse_profile(connector_id, p["csChargingProfiles"])
    if profile.purpose == CP_MAX and connector_id != 0:
        return {"status": "Rejected"}, None
    if profile.purpose == TX_PROFILE:
        # Section 5.16.1: a TxProfile needs a running transaction on that connector.
        c = cp.connectors[connector_id]
        if connector_id == 0 or c.tx is None:
            return {"status": "Rejected"}, None
    cp.profiles.install(profile)
    return {"status": "Accepted"}, cp.advance_physics


def clear_charging_profile(cp: Session, p: dict[str, Any]) -> Reply:
    removed = cp.profiles.clear(
        profile_id=p.get("id"),
        connector_id=p.get("connectorId"),
        purpose=p.get("chargingProfilePurpose"),
        stack_level=p.get("stackLevel"),
    )
    return {"status": "Accepted" if removed else "Unknown"}, cp.advance_physics


def get_composite_schedule(cp: Session, p: dict[str, Any]) -> Reply:
    connector_id, duration = p["connectorId"], int(p["duration"])
    if not 0 <= connector_id < len(cp.connectors):
        return {"status": "Rejected"}, None
    unit = p.get("chargingRateUnit", "W")
    now = cp.now().replace(microsecond=0)
    c = cp.connectors[connector_id]
    started = c.tx.started_at if c.tx is not None else None
    periods = cp.profiles.composite(
        connector_id, now, duration, started, cp.electrics, cp.electrics.max_power_w, unit
    )
    schedule = {
        "duration": duration,
        "startSchedule": isoformat(now),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods,
    }
    answer = {
        "status": "Accepted",
        "connectorId": connector_id,
        "scheduleStart": isoformat(now),
        "chargingSchedule": schedule,
    }
    return answer, None


def reserve_now(cp: Session, p: dict[str, Any]) -> Reply:
    c = _connector(cp, p["connectorId"])
    if c is None:
        return {"status": "Rejected"}, None
    if c.faulted:
        return {"status": "Faulted"}, None
    if not c.operative:
        return {"status": "Unavailable"}, None
    if c.tx is not None or c.ev is not None:
        return {"status": "Occupied"}, None
    expires = parse_time(p["expiryDate"])
    c.reservation = Reservation(int(p["reservationId"]), p["idTag"], expires)
    return {"status": "Accepted"}, cp.advance_physics


def cancel_reservation(cp: Session, p: dict[str, Any]) -> Reply:
    for c in cp.connectors[1:]:
        if c.reservation is not None and c.reservation.reservation_id == p["reservationId"]:
            c.reservation = None
            return {"status": "Accepted"}, partial(cp.sync_status, c)
    return {"status": "Rejected"}, None


def send_local_list(cp: Session, p: dict[str, Any]) -> Reply:
    if not cp.config.get_bool("LocalAuthListEnabled"):
        return {"status": "NotSupported"}, None
    version, full = int(p["listVersion"]), p["updateType"] == "Full"
    if not full and version <= cp.local_list_version:
        return {"status": "VersionMismatch"}, None
    entries = {
        e["idTag"]: e.get("idTagInfo", {}).get("status", "Invalid")
        for e in p.get("localAuthorizationList", [])
    }
    cp.set_local_list(entries, full)
    cp.local_list_version = version
    return {"status": "Accepted"}, None


def get_local_list_version(cp: Session, p: dict[str, Any]) -> Reply:
    # Section 5.10: -1 means the local list is not enabled, 0 that it is empty.
    enabled = cp.config.get_bool("LocalAuthListEnabled")
    return {"listVersion": cp.local_list_version if enabled else -1}, None


def data_transfer(cp: Session, p: dict[str, Any]) -> Reply:
    return {"status": "UnknownVendorId"}, None


def get_diagnostics(cp: Session, p: dict[str, Any]) -> Reply:
    _ = p["location"]  # required: a KeyError answers OccurenceConstraintViolation

    def status(value: str) -> Callable[[], None]:
        def send() -> None:
            cp.diagnostics_status = value
            cp.enqueue("DiagnosticsStatusNotification", {"status": value})

        return send

    def begin() -> None:
        status("Uploading")()
        cp.schedule(_STEP_S, status("Uploaded"), connection=True)

    return {"fileName": f"{cp.identity}-diagnostics.log"}, begin


def update_firmware(cp: Session, p: dict[str, Any]) -> Reply:
    _ = p["location"]  # required: a KeyError answers OccurenceConstraintViolation
    wait_s = max((parse_time(p["retrieveDate"]) - cp.now()).total_seconds(), 0.0)
    steps = ("Downloading", "Downloaded", "Installing", "Installed")

    def step(index: int) -> Callable[[], None]:
        def send() -> None:
            cp.firmware_status = steps[index]
            cp.enqueue("FirmwareStatusNotification", {"status": steps[index]})
            if index + 1 < len(steps):
                cp.schedule(_STEP_S, step(index + 1), connection=True)

        return send

    return {}, lambda: cp.schedule(wait_s, step(0), connection=True)


HANDLERS: dict[str, Callable[[Session, dict[str, Any]], Reply]] = {
    "RemoteStartTransaction": remote_start,
    "RemoteStopTransaction": remote_stop,
    "Reset": reset,
    "ChangeAvailability": change_availability,
    "GetConfiguration": get_configuration,
    "ChangeConfiguration": change_configuration,
    "UnlockConnector": unlock_connector,
    "ClearCache": clear_cache,
    "TriggerMessage": trigger_message,
    "SetChargingProfile": set_charging_profile,
    "ClearChargingProfile": clear_charging_profile,
    "GetCompositeSchedule": get_composite_schedule,
    "ReserveNow": reserve_now,
    "CancelReservation": cancel_reservation,
    "SendLocalList": send_local_list,
    "GetLocalListVersion": get_local_list_version,
    "DataTransfer": data_transfer,
    "GetDiagnostics": get_diagnostics,
    "UpdateFirmware": update_firmware,
}
