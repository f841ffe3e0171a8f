"""Fault knobs of a simulated charge point and the field deviations it can inject.

``nonconform`` rewrites a conformant payload into one of the non-conforming shapes real
firmware sends (see /work/shared/ocpp-field-notes.md). Pure: the caller passes the RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(slots=True)
class Faults:
    """How badly a charge point behaves. Durations are simulated seconds."""

    # Share (0..1) of outgoing CALLs rewritten into a non-conforming shape.
    nonconforming: float = 0.0
    # Drop the socket (no close handshake) after this many frames sent on a connection.
    drop_after_messages: int | None = None
    # Wait this long before answering a command from the central system.
    answer_delay_s: float = 0.0
    # Some firmware never answers WebSocket pings.
    answer_pings: bool = True
    # Most firmware boots only after a reboot; some boot again after every reconnect.
    boot_on_reconnect: bool = False
    # Some firmware ignores the Boot answer's interval and keeps its HeartbeatInterval
    # (the load generator uses this to pin the heartbeat rate).
    ignore_boot_interval: bool = False


def _ts_no_zone(value: str) -> str:
    return value.removesuffix("Z")


def _ts_plus_one(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + timedelta(hours=1)
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "+01:00"


def _timestamps(payload: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(container, key) of every timestamp in a payload."""
    found: list[tuple[dict[str, Any], str]] = []
    if "timestamp" in payload:
        found.append((payload, "timestamp"))
    for key in ("meterValue", "transactionData"):
        for entry in payload.get(key, ()):
            found.append((entry, "timestamp"))
    return found


def _samples(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        sample
        for key in ("meterValue", "transactionData")
        for entry in payload.get(key, ())
        for sample in entry.get("sampledValue", ())
    ]


def _energy_samples(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _samples(payload) if s.get("unit") == "Wh"]


def applicable(action: str, payload: dict[str, Any]) -> list[str]:
    """Deviation kinds that make sense for this message."""
    kinds = ["vendor_fields"]
    if _timestamps(payload):
        kinds += ["ts_no_zone", "ts_plus_one"]
    if _samples(payload):
        kinds.append("value_number")
    if _energy_samples(payload):
        kinds += ["energy_kwh", "energy_kwh_no_unit"]
    if action == "StartTransaction" or action == "StopTransaction":
        kinds.append("meter_string")
    if action in ("StatusNotification", "StopTransaction") and (
        "status" in payload or "reason" in payload
    ):
        kinds.append("enum_lowercase")
    if "idTag" in payload:
        kinds.append("idtag_mixed_case")
    if action == "MeterValues" and "transactionId" in payload:
        kinds.append("mv_no_transaction_id")
    return kinds


def nonconform(action: str, payload: dict[str, Any], rng: random.Random) -> str:
    """Apply one random applicable deviation to ``payload`` in place; returns its kind."""
    kind = rng.choice(applicable(action, payload))
    if kind == "vendor_fields":
        payload["vendorExtension"] = {"vendor": "SimVendor", "fw_build": "b1234"}
        for sample in _samples(payload):
            sample["vendorQuality"] = "good"
    elif kind == "ts_no_zone":
        for container, key in _timestamps(payload):
            container[key] = _ts_no_zone(container[key])
    elif kind == "ts_plus_one":
        for container, key in _timestamps(payload):
            container[key] = _ts_plus_one(container[key])
    elif kind == "value_number":
        for sample in _samples(payload):
            sample["value"] = float(sample["value"])
    elif kind in ("energy_kwh", "energy_kwh_no_unit"):
        for sample in _energy_samples(payload):
            sample["value"] = f"{float(sample['value']) / 1000:.3f}"
            if kind == "energy_kwh":
                sample["unit"] = "kWh"
            else:
                del sample["unit"]
    elif kind == "meter_string":
        key = "meterStart" if action == "StartTransaction" else "meterStop"
        payload[key] = str(payload[key])
    elif kind == "enum_lowercase":
        key = "status" if "status" in payload else "reason"
        payload[key] = payload[key].lower()
    elif kind == "idtag_mixed_case":
        payload["idTag"] = "".join(
            ch.lower() if i % 2 else ch.upper() for i, ch in enumerate(payload["idTag"])
        )
    elif kind == "mv_no_transaction_id":
        del payload["transactionId"]
    return kind
