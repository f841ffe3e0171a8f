"""Seeded hostile OCPP 1.6 frames for one charger: pure, no I/O, no clock.

``HostileCharger(seed, index).next_frame(transaction_id)`` returns the next ``Frame``:
a well-formed CALL or one of the mutation classes below, with what the central system
must do with it (answer it, say nothing, or close the connection). The same seed and the
same answers give the same frames. Every sampled value carries a value unique to its
charger and every StatusNotification/StartTransaction/StopTransaction a unique
timestamp, so what was acknowledged can be found in the database afterwards.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The mutation classes of issue 14 and how often each is drawn (out of the total).
MUTATIONS: dict[str, int] = {
    "valid": 30,
    "wrong_type": 8,
    "missing_field": 6,
    "extra_field": 6,
    "nul_or_surrogate": 8,
    "huge_number": 8,
    "deep_nesting": 4,
    "truncated": 6,
    "not_json": 2,
    "wrong_message_type": 4,
    "non_string_id": 2,
    "duplicate_id": 8,
    "result_never_sent": 4,
    "invalid_utf8": 1,
    "oversized": 1,
}
_BASE = datetime(2026, 11, 25, tzinfo=UTC)
_OVERSIZE = (1 << 20) + 1024
_HUGE = ["1e400", "-1e400", "1" * 400 + ".5", "123456789012345678901234567890", "1e308"]
_DEEP = [33, 40, 990, 10_000]
_ODD_VALUES: list[Any] = [None, True, [], {}, {"x": [1]}, 3.5, -7, "", "text"]


@dataclass(slots=True)
class Frame:
    """One frame to send and what must happen to it."""

    data: str | bytes  # bytes: sent as a text frame although not valid UTF-8
    mutation: str
    expect: str  # "answer", "none" or "close"
    message_id: str | None = None  # the id the answer carries ("-1" also allowed if fuzzy)
    fuzzy_id: bool = False
    action: str | None = None
    payload: dict[str, Any] | None = None  # a well-formed CALL's payload, to track what is stored


class HostileCharger:
    """Frames for charger number ``index`` of a seeded run."""

    def __init__(self, seed: int, index: int) -> None:
        self.random = random.Random(seed * 1_000_003 + index)
        self.index = index
        self._ids = 0
        self._clock = 0
        self._values = 0
        self._sent: list[Frame] = []
        self._mutations = list(MUTATIONS)
        self._weights = list(MUTATIONS.values())

    def boot(self) -> Frame:
        payload = {"chargePointVendor": "Fuzz", "chargePointModel": "Hostile-1"}
        return self._call("BootNotification", payload)

    def status(self, connector_id: int) -> Frame:
        return self._call("StatusNotification", self._status_payload(connector_id))

    def next_frame(self, transaction_id: int | None) -> Frame:
        mutation = self.random.choices(self._mutations, self._weights)[0]
        if mutation == "duplicate_id" and self._sent:
            previous = self.random.choice(self._sent[-50:])
            return Frame(
                previous.data,
                "duplicate_id",
                "answer",
                previous.message_id,
                action=previous.action,
                payload=previous.payload,
            )
        action, payload = self._valid_payload(transaction_id)
        if mutation in ("valid", "duplicate_id"):
            frame = self._call(action, payload)
            self._sent.append(frame)
            return frame
        return self._mutate(mutation, action, payload)

    # --- well-formed payloads -----------------------------------------------------------------

    def _timestamp(self) -> str:
        self._clock += 1
        moment = _BASE + timedelta(seconds=self._clock, microseconds=self.index)
        return moment.isoformat().replace("+00:00", "Z")

    def _value(self) -> str:
        self._values += 1
        return f"{self._values}.{self.index}"

    def _status_payload(self, connector_id: int) -> dict[str, Any]:
        status = self.random.choice(["Available", "Preparing", "Charging", "Finishing"])
        return {
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": self._timestamp(),
        }

    def _sampled(self) -> dict[str, Any]:
        return {
            "value": self._value(),
            "measurand": "Energy.Active.Import.Register",
            "unit": "Wh",
            "context": "Sample.Periodic",
            "location": "Outlet",
        }

    def _valid_payload(self, transaction_id: int | None) -> tuple[str, dict[str, Any]]:
        r = self.random
        choice = r.random()
        connector = r.choice([1, 2])
        if choice < 0.30:
            entries = [
                {"timestamp": self._timestamp(), "sampledValue": [self._sampled()]}
                for _ in range(r.randint(1, 3))
            ]
            payload: dict[str, Any] = {"connectorId": connector, "meterValue": entries}
            if transaction_id is not None and r.random() < 0.7:
                payload["transactionId"] = transaction_id
            return "MeterValues", payload
        if choice < 0.45:
            return "StatusNotification", self._status_payload(connector)
        if choice < 0.58:
            return "StartTransaction", {
                "connectorId": connector,
                "idTag": f"TAG{r.randint(1, 5)}",
                "meterStart": r.randint(0, 100_000),
                "timestamp": self._timestamp(),
            }
        if choice < 0.70:
            stop: dict[str, Any] = {
                # An id we issued, or one we never did (an orphan stop).
                "transactionId": transaction_id
                if transaction_id is not None and r.random() < 0.7
                else r.randint(1_000_000, 2_000_000),
                "meterStop": r.randint(0, 200_000),
                "timestamp": self._timestamp(),
            }
            if r.random() < 0.5:
                stop["transactionData"] = [
                    {"timestamp": self._timestamp(), "sampledValue": [self._sampled()]}
                ]
            return "StopTransaction", stop
        if choice < 0.80:
            return "Heartbeat", {}
        if choice < 0.88:
            return "Authorize", {"idTag": f"TAG{r.randint(1, 5)}"}
        if choice < 0.95:
            return "DataTransfer", {"vendorId": "Fuzz", "data": f"d{r.randint(0, 9)}"}
        return "BootNotification", {"chargePointVendor": "Fuzz", "chargePointModel": "H-1"}

    # --- frames ---------------------------------------------------------------------------------

    def _next_id(self) -> str:
        self._ids += 1
        return f"c{self.index}-{self._ids}"

    def _call(self, action: str, payload: dict[str, Any]) -> Frame:
        message_id = self._next_id()
        text = json.dumps([2, message_id, action, payload])
        return Frame(text, "valid", "answer", message_id, action=action, payload=payload)

    def _mutate(self, mutation: str, action: str, payload: dict[str, Any]) -> Frame:
        r = self.random
        message_id = self._next_id()

        def call_text(body: dict[str, Any]) -> str:
            return json.dumps([2, message_id, action, body])

        def answered(text: str | bytes, *, fuzzy: bool = False, tracked: bool = True) -> Frame:
            return Frame(
                text,
                mutation,
                "answer",
                message_id,
                fuzzy_id=fuzzy,
                action=action,
                payload=body if tracked else None,
            )

        body = json.loads(json.dumps(payload))
        if mutation == "wrong_type":
            _replace_somewhere(r, body, r.choice(_ODD_VALUES))
            return answered(call_text(body))
        if mutation == "missing_field":
            if body:
                del body[r.choice(sorted(body))]
            return answered(call_text(body))
        if mutation == "extra_field":
            body[f"vendor{r.randint(0, 99)}"] = r.choice(
                [{"nested": {"list": [1, 2, {"x": "y"}]}}, "text", 12, [None, True]]
            )
            return answered(call_text(body))
        if mutation == "nul_or_surrogate":
            bad = r.choice(["\x00", "\ud800", "\udfff", "a\x00b", "\udbff\x00"])
            if r.random() < 0.5 or not _replace_string(r, body, bad):
                body[f"vendor{bad}" if r.random() < 0.3 else "vendorNote"] = f"x{bad}y"
            return answered(call_text(body))
        if mutation == "huge_number":
            # Written into the text, since Python's json would write "Infinity".
            marker = "__HUGE_NUMBER__"
            if r.random() < 0.5 or not _replace_number(r, body, marker):
                body["vendorCounter"] = marker
            return answered(call_text(body).replace(f'"{marker}"', r.choice(_HUGE)))
        if mutation == "deep_nesting":
            levels = r.choice(_DEEP)
            text = call_text({**body, "vendorDeep": "__DEEP__"})
            deep = "[" * levels + "1" + "]" * levels
            return answered(text.replace('"__DEEP__"', deep), tracked=False)
        if mutation == "truncated":
            text = call_text(body)
            return answered(text[: r.randint(1, len(text) - 1)], fuzzy=True, tracked=False)
        if mutation == "not_json":
            garbage = r.choice(["hello", "{", "]", "[2,", "nul\x00l", "   ", "[]", "{}"])
            return Frame(garbage, mutation, "answer", "-1")
        if mutation == "wrong_message_type":
            kind = r.choice([0, 1, 5, 7, -2, "2", None, 2.5])
            text = json.dumps([kind, message_id, action, body])
            return answered(text, tracked=False)
        if mutation == "non_string_id":
            text = json.dumps([2, r.choice([7, None, 1.5, ["x"], {"id": 1}]), action, body])
            return Frame(text, mutation, "answer", "-1")
        if mutation == "result_never_sent":
            if r.random() < 0.5:
                text = json.dumps([3, f"never-{message_id}", {"status": "Accepted"}])
            else:
                text = json.dumps([4, f"never-{message_id}", "GenericError", "no", {}])
            return Frame(text, mutation, "none")
        if mutation == "invalid_utf8":
            data = call_text(body).encode()
            cut = r.randint(1, len(data) - 1)
            return Frame(data[:cut] + b"\xff\xfe" + data[cut:], mutation, "close")
        if mutation == "oversized":
            text = call_text({**body, "vendorBlob": "x" * _OVERSIZE})
            return Frame(text, mutation, "close")
        raise ValueError(f"unknown mutation {mutation!r}")


def _replace_somewhere(r: random.Random, body: dict[str, Any], value: Any) -> None:
    """Put ``value`` at a random place of ``body`` (a top-level field or one level down)."""
    if not body:
        body["vendorOdd"] = value
        return
    key = r.choice(sorted(body))
    inner = body[key]
    if isinstance(inner, list) and inner and isinstance(inner[0], dict) and r.random() < 0.5:
        target = inner[0]
        if target:
            target[r.choice(sorted(target))] = value
            return
    body[key] = value


def _replace_string(r: random.Random, body: dict[str, Any], bad: str) -> bool:
    strings = [(container, key) for container, key, v in _leaves(body) if isinstance(v, str)]
    if not strings:
        return False
    container, key = r.choice(strings)
    container[key] = container[key] + bad
    return True


def _replace_number(r: random.Random, body: dict[str, Any], marker: str) -> bool:
    numbers = [
        (container, key)
        for container, key, v in _leaves(body)
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if not numbers:
        return False
    container, key = r.choice(numbers)
    container[key] = marker
    return True


def _leaves(node: Any) -> list[tuple[Any, Any, Any]]:
    found: list[tuple[Any, Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, dict | list):
            found.extend(_leaves(value))
        else:
            found.append((node, key, value))
    return found
