"""OCPP 1.6J CALL frames the load generator sends, built once and reused.

Message ids repeat per frame: OCPP-J only asks that a charger not reuse an id for
its *outstanding* CALL, and we have at most one in flight per connection.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.wsclient import client_frame

_dumps = json.JSONEncoder(separators=(",", ":")).encode

# Ten sampled values per meterValue entry, as a three-phase AC charger reports them.
_SAMPLES: list[dict[str, str]] = [
    {"measurand": "Energy.Active.Import.Register", "unit": "Wh", "value": "123456"},
    {"measurand": "Power.Active.Import", "unit": "W", "value": "11040.5"},
    {"measurand": "Current.Import", "phase": "L1", "unit": "A", "value": "16.0"},
    {"measurand": "Current.Import", "phase": "L2", "unit": "A", "value": "16.1"},
    {"measurand": "Current.Import", "phase": "L3", "unit": "A", "value": "15.9"},
    {"measurand": "Voltage", "phase": "L1-N", "unit": "V", "value": "230.1"},
    {"measurand": "Voltage", "phase": "L2-N", "unit": "V", "value": "229.8"},
    {"measurand": "Voltage", "phase": "L3-N", "unit": "V", "value": "231.0"},
    {"measurand": "SoC", "unit": "Percent", "location": "EV", "value": "55"},
    {"measurand": "Temperature", "unit": "Celsius", "location": "Body", "value": "31.5"},
]
SAMPLES_PER_ENTRY = len(_SAMPLES)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def call(message_id: str, action: str, payload: dict[str, Any]) -> bytes:
    """A masked client frame carrying ``[2, id, action, payload]``."""
    return client_frame(_dumps([2, message_id, action, payload]))


def boot(identity: str) -> bytes:
    return call(
        "b",
        "BootNotification",
        {
            "chargePointVendor": "BenchCo",
            "chargePointModel": "Lean-1",
            "chargePointSerialNumber": identity,
            "firmwareVersion": "1.0.0",
        },
    )


HEARTBEAT = call("h", "Heartbeat", {})


def status(connector_id: int, status: str = "Available") -> bytes:
    payload = {
        "connectorId": connector_id,
        "errorCode": "NoError",
        "status": status,
        "timestamp": now_iso(),
    }
    return call(f"s{connector_id}", "StatusNotification", payload)


_SAMPLE_CLOCK = itertools.count()


def meter_values(connector_id: int, entries: int, transaction_id: int | None = None) -> bytes:
    """MeterValues with ``entries`` meterValue elements of ten sampled values each.

    Every frame and every entry gets its own timestamp, as real readings do: the central
    system stores a sampled value once per (timestamp, measurand, phase ...) key, so an
    identical resent payload (a retransmission after a lost answer) is stored once.
    """
    moment = datetime.now(UTC) + timedelta(milliseconds=next(_SAMPLE_CLOCK))
    stamps = [
        (moment + timedelta(microseconds=i)).isoformat(timespec="microseconds")
        for i in range(entries)
    ]
    payload: dict[str, Any] = {
        "connectorId": connector_id,
        "meterValue": [
            {"timestamp": stamp.replace("+00:00", "Z"), "sampledValue": _SAMPLES}
            for stamp in stamps
        ],
    }
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    return call("m", "MeterValues", payload)


def authorize(id_tag: str) -> bytes:
    return call("a", "Authorize", {"idTag": id_tag})


def start_transaction(connector_id: int, id_tag: str, meter_start_wh: int) -> bytes:
    payload = {
        "connectorId": connector_id,
        "idTag": id_tag,
        "meterStart": meter_start_wh,
        "timestamp": now_iso(),
    }
    return call("t", "StartTransaction", payload)


def stop_transaction(transaction_id: int, id_tag: str, meter_stop_wh: int) -> bytes:
    payload = {
        "transactionId": transaction_id,
        "idTag": id_tag,
        "meterStop": meter_stop_wh,
        "timestamp": now_iso(),
        "reason": "Local",
    }
    return call("p", "StopTransaction", payload)


def transaction_id_of(answer: bytes) -> int:
    """The transactionId in a StartTransaction CALLRESULT."""
    return int(json.loads(answer)[2]["transactionId"])
