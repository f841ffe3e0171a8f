"""The physical side of a simulated charge point: connectors, cars, energy, authorisation.

No sockets: messages go out through ``enqueue`` of the protocol ``Session`` subclass.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import Any

from simulators.cp_config import ConfigStore
from simulators.cp_connector import (
    EV,
    Connector,
    Electrics,
    Transaction,
    advance,
    derive_status,
    sampled_values,
)
from simulators.cp_profiles import ProfileSet
from simulators.cp_runtime import SimClock, Stats, isoformat


class Charger:
    """Connector state and what the world does to it (cable, card, clock)."""

    __slots__ = (
        "_auth_cache",
        "_last_physics",
        "_local_list",
        "_next_meter",
        "_next_tick",
        "clock",
        "config",
        "connectors",
        "diagnostics_status",
        "electrics",
        "firmware_status",
        "identity",
        "local_list_version",
        "profiles",
        "stats",
        "tick_s",
    )

    def __init__(
        self,
        *,
        identity: str,
        connectors: list[Connector],
        electrics: Electrics,
        config: ConfigStore,
        profiles: ProfileSet,
        clock: SimClock,
        stats: Stats,
        tick_s: float,
    ) -> None:
        self.identity = identity
        self.connectors = connectors
        self.electrics = electrics
        self.config = config
        self.profiles = profiles
        self.clock = clock
        self.stats = stats
        self.tick_s = tick_s
        self.diagnostics_status = "Idle"
        self.firmware_status = "Idle"
        self.local_list_version = 0
        self._local_list: dict[str, str] | None = None
        self._auth_cache: dict[str, str] | None = None
        self._next_tick = math.inf
        self._next_meter = math.inf
        self._last_physics = clock.now()

    # -- provided by the protocol Session ---------------------------------------------------

    def enqueue(
        self,
        action: str,
        payload: dict[str, Any],
        tx: Transaction | None = None,
        context: Any = None,
    ) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        raise NotImplementedError

    def notify(self) -> None:
        raise NotImplementedError

    def _online(self) -> bool:
        raise NotImplementedError

    # -- the world and the handlers ---------------------------------------------------------

    def connector(self, connector_id: int) -> Connector:
        if not 0 < connector_id < len(self.connectors):
            raise ValueError(f"no connector {connector_id}")
        return self.connectors[connector_id]

    def now(self) -> datetime:
        return self.clock.now()

    def plug_in(self, connector_id: int, ev: EV) -> None:
        """The car's cable goes in; starts charging if someone already tapped."""
        c = self.connector(connector_id)
        if c.ev is not None:
            raise ValueError(f"connector {connector_id} already has a car")
        self.advance_physics()
        c.ev, c.finishing = ev, False
        if c.authorized_tag is not None:
            self.begin_transaction(c, c.authorized_tag)
        self.sync_status(c)
        self._arm_tick()

    def unplug(self, connector_id: int) -> None:
        """The cable comes out; stops a running transaction with EVDisconnected."""
        c = self.connector(connector_id)
        self.advance_physics()
        if c.tx is not None:
            self.stop_transaction(c, "EVDisconnected")
        c.ev, c.finishing = None, False
        self.sync_status(c)

    def tap(self, connector_id: int, id_tag: str) -> None:
        """An RFID card on the reader: Authorize then StartTransaction, or a local stop."""
        c = self.connector(connector_id)
        if c.tx is not None:
            if c.tx.id_tag.lower() == id_tag.lower():
                self.stop_transaction(c, "Local", id_tag=id_tag)
            return
        self.authorize(c, id_tag)

    def authorize(self, c: Connector, id_tag: str) -> None:
        known = self.local_status(id_tag)
        if self._online():
            # LocalPreAuthorize: a tag the local list accepts starts without asking.
            if known == "Accepted" and self.config.get_bool("LocalPreAuthorize"):
                self.authorized(c, id_tag)
            else:
                self.enqueue("Authorize", {"idTag": id_tag}, context=(c.connector_id, id_tag))
            return
        # Offline: OCPP 1.6 section 3.5 local authorisation rules.
        if (known == "Accepted" and self.config.get_bool("LocalAuthorizeOffline")) or (
            known is None and self.config.get_bool("AllowOfflineTxForUnknownId")
        ):
            self.authorized(c, id_tag)

    def authorized(self, c: Connector, id_tag: str) -> None:
        if c.tx is not None or not c.operative:
            return
        if c.reservation is not None and c.reservation.id_tag.lower() != id_tag.lower():
            return
        if c.ev is not None:
            self.begin_transaction(c, id_tag)
        else:
            timeout = self.config.get_int("ConnectionTimeOut")
            c.authorized_tag = id_tag
            c.authorized_until = self.now() + timedelta(seconds=timeout)
            self.sync_status(c)
            self._arm_tick()

    def local_status(self, id_tag: str) -> str | None:
        for table in (self._local_list, self._auth_cache):
            if table is not None and id_tag.lower() in table:
                return table[id_tag.lower()]
        return None

    def set_local_list(self, entries: dict[str, str], full: bool) -> None:
        if full or self._local_list is None:
            self._local_list = {}
        self._local_list.update({tag.lower(): status for tag, status in entries.items()})

    def clear_cache(self) -> None:
        self._auth_cache = None

    def begin_transaction(self, c: Connector, id_tag: str) -> None:
        self.advance_physics()
        now = self.now()
        reservation_id = None
        if c.reservation is not None:
            reservation_id, c.reservation = c.reservation.reservation_id, None
        tx = Transaction(c.connector_id, id_tag, int(c.meter_wh), now, reservation_id)
        tx.begin_sample = self._sample(c, ["Energy.Active.Import.Register"], "Transaction.Begin")
        c.tx, c.authorized_tag, c.finishing = tx, None, False
        payload: dict[str, Any] = {
            "connectorId": c.connector_id,
            "idTag": id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": isoformat(now),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        self.enqueue("StartTransaction", payload, tx=tx)
        self._advance_one(c, 0.0, now)
        self.sync_status(c)
        self._arm_tick()
        if self._next_meter == math.inf:
            self._arm_meter()

    def stop_transaction(self, c: Connector, reason: str, id_tag: str | None = None) -> None:
        tx = c.tx
        if tx is None:
            return
        self.advance_physics()
        measurands = self.config.get_csv("StopTxnSampledData") or ["Energy.Active.Import.Register"]
        end_sample = self._sample(c, measurands, "Transaction.End")
        payload: dict[str, Any] = {
            "transactionId": 0,  # filled in when sent: the Start answer may still be queued
            "meterStop": int(c.meter_wh),
            "timestamp": end_sample["timestamp"],
            "reason": reason,
            "transactionData": [tx.begin_sample, end_sample],
        }
        if id_tag is not None:
            payload["idTag"] = id_tag
        c.tx, c.finishing = None, c.ev is not None
        self.profiles.end_transaction(c.connector_id)
        if c.pending_operative is not None:
            c.operative, c.pending_operative = c.pending_operative, None
        self.enqueue("StopTransaction", payload, tx=tx)
        self._advance_one(c, 0.0, self.now())
        self.sync_status(c)

    def sync_status(self, c: Connector, force: bool = False) -> None:
        """StatusNotification on every change of the derived status (and on demand)."""
        status = derive_status(c)
        if (status == c.reported and not force) or not self._online():
            return
        c.reported = status
        payload = {
            "connectorId": c.connector_id,
            "errorCode": "OtherError" if c.faulted else "NoError",
            "status": status,
            "timestamp": isoformat(self.now()),
        }
        self.enqueue("StatusNotification", payload)
        self.notify()

    def send_meter_values(self, c: Connector, context: str) -> None:
        measurands = self.config.get_csv("MeterValuesSampledData")
        payload: dict[str, Any] = {
            "connectorId": c.connector_id,
            "meterValue": [self._sample(c, measurands, context)],
        }
        if c.tx is not None:
            payload["transactionId"] = 0  # filled in when sent
        self.enqueue("MeterValues", payload, tx=c.tx)

    def advance_physics(self) -> None:
        """Integrate energy of every connector up to now and update statuses."""
        now = self.now()
        dt = (now - self._last_physics).total_seconds()
        self._last_physics = now
        for c in self.connectors[1:]:
            self._advance_one(c, dt, now)
            self.sync_status(c)

    def _advance_one(self, c: Connector, dt: float, now: datetime) -> None:
        limit = None
        if len(self.profiles):
            started = c.tx.started_at if c.tx is not None else None
            limit = self.profiles.limit_w(c.connector_id, now, started, self.electrics)
        advance(c, dt, self.electrics, limit)

    def _sample(self, c: Connector, measurands: list[str], context: str) -> dict[str, Any]:
        values = sampled_values(c, measurands, self.electrics, context)
        return {"timestamp": isoformat(self.now()), "sampledValue": values}

    def _arm_tick(self) -> None:
        if self._next_tick == math.inf:
            self._next_tick = time.monotonic() + self.clock.real_delay(self.tick_s)
            self.wake()

    def _arm_meter(self) -> None:
        interval = self.config.get_int("MeterValueSampleInterval")
        delay = self.clock.real_delay(interval) if interval > 0 else math.inf
        self._next_meter = time.monotonic() + delay
        self.wake()

    def _tick(self) -> None:
        self._next_tick = math.inf
        self.advance_physics()
        now = self.now()
        busy = False
        for c in self.connectors[1:]:
            if c.authorized_until is not None and c.authorized_tag and now >= c.authorized_until:
                c.authorized_tag = c.authorized_until = None  # ConnectionTimeOut: nobody plugged
                self.sync_status(c)
            if c.reservation is not None and now >= c.reservation.expires_at:
                c.reservation = None
                self.sync_status(c)
            busy = busy or c.tx is not None or c.authorized_tag is not None
            busy = busy or c.reservation is not None
        if busy:
            self._arm_tick()

    def _meter_due(self) -> None:
        self._next_meter = math.inf
        self.advance_physics()
        active = [c for c in self.connectors[1:] if c.tx is not None]
        for c in active:
            self.send_meter_values(c, "Sample.Periodic")
        if active:
            self._arm_meter()

    def _cache(self, id_tag: str, status: str) -> None:
        if self.config.get_bool("AuthorizationCacheEnabled"):
            if self._auth_cache is None:
                self._auth_cache = {}
            self._auth_cache[id_tag.lower()] = status
