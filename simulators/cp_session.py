"""OCPP 1.6J message flow of a simulated charge point, without sockets.

``Session`` turns events (frames received, deadlines reached, cable and card actions)
into frames to send (``_wire``) and queued CALLs; the asyncio shell in
``charge_point.py`` moves those frames over a websocket.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any

import structlog

from simulators import ocppj
from simulators.cp_charger import Charger
from simulators.cp_config import ConfigStore
from simulators.cp_connector import Connector, Electrics, Transaction
from simulators.cp_faults import Faults, nonconform
from simulators.cp_handlers import HANDLERS, CallErrorReply
from simulators.cp_profiles import ProfileSet
from simulators.cp_runtime import SimClock, Stats

log = structlog.get_logger()

# Offline, periodic MeterValues beyond this many queued messages are dropped (firmware
# has finite flash); Start/Stop are always kept.
MAX_OFFLINE_QUEUE = 1_000
_BOOT_RETRY_S = 30.0


class Outgoing:
    """A CALL we will send; ``tx`` marks a transaction message (queued offline, replayed)."""

    __slots__ = ("action", "attempts", "context", "payload", "seq", "tx")

    def __init__(
        self, seq: int, action: str, payload: dict[str, Any], tx: Transaction | None, context: Any
    ) -> None:
        self.seq = seq
        self.action = action
        self.payload = payload
        self.tx = tx
        self.context = context
        self.attempts = 0


class Session(Charger):
    """Protocol state of one charge point; subclassed by the asyncio ``ChargePoint``."""

    __slots__ = (
        "_changed",
        "_correlator",
        "_next_heartbeat",
        "_outstanding",
        "_outstanding_deadline",
        "_pending_boot",
        "_queue",
        "_reboot_deadline",
        "_rebooting",
        "_registration",
        "_sent_on_connection",
        "_seq",
        "_stopping",
        "_timers",
        "_tx_hold_until",
        "_txq",
        "_waker",
        "_wire",
        "_ws",
        "boot_payload",
        "faults",
        "rng",
    )

    def __init__(
        self,
        *,
        identity: str,
        boot_payload: dict[str, str],
        connectors: list[Connector],
        electrics: Electrics,
        config: ConfigStore,
        profiles: ProfileSet,
        clock: SimClock,
        faults: Faults,
        stats: Stats,
        rng: random.Random,
        tick_s: float,
    ) -> None:
        super().__init__(
            identity=identity,
            connectors=connectors,
            electrics=electrics,
            config=config,
            profiles=profiles,
            clock=clock,
            stats=stats,
            tick_s=tick_s,
        )
        self.boot_payload = boot_payload
        self.faults = faults
        self.rng = rng
        self._ws: Any = None
        self._stopping = False
        self._rebooting: str | None = None
        self._reboot_deadline = math.inf
        self._registration: str | None = None
        self._correlator = ocppj.Correlator()
        self._wire: deque[str] = deque()
        self._queue: deque[Outgoing] = deque()
        self._txq: deque[Outgoing] = deque()
        self._outstanding: Outgoing | None = None
        self._outstanding_deadline = math.inf
        self._pending_boot: Outgoing | None = None
        self._tx_hold_until = 0.0
        self._timers: list[tuple[float, int, bool, Callable[[], None]]] = []
        self._seq = count()
        self._next_heartbeat = math.inf
        self._waker: asyncio.Timeout | None = None
        self._changed: asyncio.Event | None = None
        self._sent_on_connection = 0

    # -- what a test or the world can see ------------------------------------------------------

    @property
    def registration(self) -> str | None:
        """None before the first Boot answer, then Accepted / Pending / Rejected."""
        return self._registration

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def queued_transaction_messages(self) -> int:
        return len(self._txq)

    # -- behaviour used by cp_handlers ---------------------------------------------------------

    def enqueue(
        self,
        action: str,
        payload: dict[str, Any],
        tx: Transaction | None = None,
        context: Any = None,
    ) -> None:
        """Queue a CALL; transaction messages survive disconnects, others need a connection."""
        if tx is None and not self._online():
            return
        if tx is not None and action == "MeterValues" and len(self._txq) >= MAX_OFFLINE_QUEUE:
            return
        if self.faults.nonconforming and self.rng.random() < self.faults.nonconforming:
            self.stats.deviations[nonconform(action, payload, self.rng)] += 1
        item = Outgoing(next(self._seq), action, payload, tx, context)
        (self._queue if tx is None else self._txq).append(item)
        self.wake()

    def schedule(self, delay_s: float, callback: Callable[[], None], connection: bool) -> None:
        """Run ``callback`` after ``delay_s`` simulated s; ``connection`` timers die with it."""
        due = time.monotonic() + self.clock.real_delay(delay_s)
        heapq.heappush(self._timers, (due, next(self._seq), connection, callback))
        self.wake()

    def send_boot(self) -> None:
        item = Outgoing(next(self._seq), "BootNotification", dict(self.boot_payload), None, None)
        if self._registration == "Accepted":
            self._queue.append(item)
        else:
            self._pending_boot = item
        self.wake()

    def request_reset(self, kind: str) -> None:
        """Soft: stop transactions and reboot once they are sent; Hard: reboot now."""
        reason = "SoftReset" if kind == "Soft" else "HardReset"
        for c in self.connectors[1:]:
            self.stop_transaction(c, reason)
        self._rebooting = kind
        # Soft: up to 10 s to deliver the Stops. Hard: firmware needs a moment before the
        # power cut, and a central system still busy with our previous CALL would otherwise
        # lose the Reset answer (its send fails on the closed socket).
        grace = 10.0 if kind == "Soft" else 3.0
        self._reboot_deadline = time.monotonic() + self.clock.real_delay(grace)
        self.wake()

    def rearm_heartbeat(self) -> None:
        interval = self.config.get_int("HeartbeatInterval")
        delay = self.clock.real_delay(interval) if interval > 0 else math.inf
        self._next_heartbeat = time.monotonic() + delay
        self.wake()

    def wake(self) -> None:
        """Interrupt the task's wait for a frame so it sends what was just queued."""
        waker = self._waker
        if waker is not None and not waker.expired():
            waker.reschedule(time.monotonic())

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- internals ------------------------------------------------------------------------------

    def _online(self) -> bool:
        return self._ws is not None and self._registration == "Accepted"

    def _next_deadline(self, online: bool = True) -> float | None:
        deadline = min(
            self._next_heartbeat, self._next_tick, self._next_meter, self._outstanding_deadline
        )
        if self._timers:
            deadline = min(deadline, self._timers[0][0])
        if not online:
            return None if deadline == math.inf else deadline
        if self._txq and self._outstanding is None:
            deadline = min(deadline, self._tx_hold_until)
        if self._rebooting is not None:
            deadline = min(deadline, self._reboot_deadline)
        return None if deadline == math.inf else deadline

    def _run_due(self, now: float) -> None:
        if now >= self._outstanding_deadline:
            self._on_timeout()
        if now >= self._next_heartbeat:
            if self._online() and not any(i.action == "Heartbeat" for i in self._queue):
                self.enqueue("Heartbeat", {})
            self.rearm_heartbeat()
        if now >= self._next_tick:
            self._tick()
        if now >= self._next_meter:
            self._meter_due()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[3]()

    def _next_item(self) -> Outgoing | None:
        if self._rebooting == "Hard":
            return None  # power is cut: queued messages wait for the next boot
        if self._registration != "Accepted":
            item, self._pending_boot = self._pending_boot, None
            return item
        queue, txq = self._queue, self._txq
        tx_ready = bool(txq) and time.monotonic() >= self._tx_hold_until
        if queue and (not tx_ready or queue[0].seq < txq[0].seq):
            return queue.popleft()
        return txq.popleft() if tx_ready else None

    def _send_item(self, item: Outgoing, timeout_s: float) -> None:
        payload = item.payload
        if item.tx is not None and "transactionId" in payload:
            if item.tx.transaction_id is not None:
                payload["transactionId"] = item.tx.transaction_id
            elif item.action == "MeterValues":
                del payload["transactionId"]
            else:
                payload["transactionId"] = -1  # Start failed: an orphan for the CSMS to record
        message_id = self._correlator.next_id()
        self._correlator.register(message_id, item.action, time.monotonic(), item)
        self._wire.append(ocppj.encode_call(message_id, item.action, payload))
        self._outstanding = item
        self._outstanding_deadline = time.monotonic() + timeout_s
        self.stats.sent[item.action] += 1

    def _on_text(self, raw: str | bytes) -> None:
        try:
            frame = ocppj.parse(raw)
        except ocppj.FramingError as exc:
            log.warning("sim.bad_frame", identity=self.identity, error=exc.description)
            if exc.message_id is not None:
                self._wire.append(ocppj.encode_error(exc.message_id, exc.code, exc.description))
            return
        if isinstance(frame, ocppj.Call):
            self._on_call(frame)
            return
        pending = self._correlator.resolve(frame)
        if pending is None:
            # A late answer after our timeout: logged and dropped (field notes).
            log.info("sim.late_answer", identity=self.identity, message_id=frame.message_id)
            return
        item: Outgoing = pending.context
        self.stats.record_latency(item.action, time.monotonic() - pending.sent_at)
        if item is self._outstanding:
            self._outstanding, self._outstanding_deadline = None, math.inf
        if isinstance(frame, ocppj.CallError):
            self.stats.call_errors[item.action] += 1
            log.info("sim.call_error", identity=self.identity, action=item.action, code=frame.code)
            self._on_result(item, None)
        else:
            self.stats.results[item.action] += 1
            self._on_result(item, frame.payload)
        self.notify()

    def _on_call(self, frame: ocppj.Call) -> None:
        self.stats.received[frame.action] += 1
        followup = None
        handler = HANDLERS.get(frame.action)
        try:
            if handler is None:
                raise CallErrorReply("NotImplemented", f"{frame.action} is not implemented")
            payload, followup = handler(self, frame.payload)
            reply = ocppj.encode_result(frame.message_id, payload)
        except CallErrorReply as exc:
            reply = ocppj.encode_error(frame.message_id, exc.code, exc.description)
        except KeyError as exc:
            reply = ocppj.encode_error(
                frame.message_id, "OccurenceConstraintViolation", f"missing {exc}"
            )
        except (TypeError, ValueError) as exc:
            reply = ocppj.encode_error(frame.message_id, "TypeConstraintViolation", str(exc))

        def answer() -> None:
            self._wire.append(reply)
            if followup is not None:
                followup()

        if self.faults.answer_delay_s > 0:
            self.schedule(self.faults.answer_delay_s, answer, connection=True)
        else:
            answer()

    def _on_result(self, item: Outgoing, payload: dict[str, Any] | None) -> None:
        action = item.action
        if action == "BootNotification":
            self._on_boot(payload or {"status": "Rejected", "interval": _BOOT_RETRY_S})
        elif action == "Authorize":
            connector_id, id_tag = item.context
            status = (payload or {}).get("idTagInfo", {}).get("status", "Invalid")
            self._cache(id_tag, status)
            if status == "Accepted":
                self.authorized(self.connectors[connector_id], id_tag)
        elif action == "StartTransaction" and payload is not None and item.tx is not None:
            tx = item.tx
            tx.transaction_id = int(payload["transactionId"])
            status = payload.get("idTagInfo", {}).get("status", "Invalid")
            self._cache(tx.id_tag, status)
            c = self.connectors[tx.connector_id]
            # OCPP 1.6 section 5.19: stop when the central system does not accept the tag.
            if status != "Accepted" and c.tx is tx:
                if self.config.get_bool("StopTransactionOnInvalidId"):
                    self.stop_transaction(c, "DeAuthorized")

    def _on_boot(self, payload: dict[str, Any]) -> None:
        status = payload.get("status")
        interval = int(payload.get("interval") or 0)
        if status == "Accepted":
            self._registration = "Accepted"
            self.stats.boots_accepted += 1
            if interval > 0 and not self.faults.ignore_boot_interval:
                self.config.change("HeartbeatInterval", str(interval))
            self.rearm_heartbeat()
            # Status burst after boot: connector 0 and every connector, once each.
            for c in self.connectors:
                self.sync_status(c, force=True)
            if any(c.tx is not None for c in self.connectors):
                self._arm_meter()
            return
        # Pending/Rejected (OCPP 1.6 section 4.2): only Boot again, after the interval.
        self._registration = status if status in ("Pending", "Rejected") else "Rejected"
        self.schedule(interval or _BOOT_RETRY_S, self.send_boot, connection=True)

    def _on_timeout(self) -> None:
        item = self._outstanding
        self._outstanding, self._outstanding_deadline = None, math.inf
        if item is None:
            return
        for pending in self._correlator.expire_all():
            self.stats.timeouts[pending.action] += 1
        if item.action == "BootNotification":
            self.schedule(_BOOT_RETRY_S, self.send_boot, connection=True)
        elif item.tx is not None:
            item.attempts += 1
            # OCPP 1.6 section 4.8: retry a transaction message up to TransactionMessageAttempts
            # times, waiting TransactionMessageRetryInterval * attempts in between.
            if item.attempts < self.config.get_int("TransactionMessageAttempts"):
                retry = self.config.get_int("TransactionMessageRetryInterval") * item.attempts
                self._tx_hold_until = time.monotonic() + self.clock.real_delay(retry)
                self._txq.appendleft(item)
            else:
                log.warning("sim.tx_message_dropped", identity=self.identity, action=item.action)

    def _connected(self, ws: Any) -> None:
        self._ws = ws
        self._sent_on_connection = 0
        self._tx_hold_until = 0.0
        self._correlator.reset()
        if self._registration != "Accepted" or self.faults.boot_on_reconnect:
            self._registration = None
            self.send_boot()
        else:
            # Same boot, new socket: report what changed while offline, replay the queue.
            self.rearm_heartbeat()
            for c in self.connectors:
                self.sync_status(c)
        self.notify()

    def _disconnected(self) -> None:
        item = self._outstanding
        self._outstanding, self._outstanding_deadline = None, math.inf
        if item is not None and item.tx is not None:
            # The answer is lost with the socket: retransmit first after reconnecting.
            self._txq.appendleft(item)
        self._correlator.reset()
        self._ws = None
        self._wire.clear()
        self._queue.clear()
        self._pending_boot = None
        self._next_heartbeat = math.inf
        self._timers = [t for t in self._timers if not t[2]]
        heapq.heapify(self._timers)
        self.notify()

    def _reboot_ready(self) -> bool:
        if time.monotonic() >= self._reboot_deadline:
            return True
        return self._rebooting == "Soft" and not self._txq and self._outstanding is None

    def _finish_reboot(self) -> None:
        """A reboot forgets registration, authorisations and reservations; the car stays."""
        self._rebooting, self._reboot_deadline = None, math.inf
        self._registration = None
        for c in self.connectors:
            c.reported = None
            c.authorized_tag = c.authorized_until = None
            c.reservation = None
            c.finishing = False
        self.notify()
