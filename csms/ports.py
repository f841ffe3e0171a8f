"""The ports the parts of the system are handed, each with an in-process and a NATS side.

A route, the security service or a plug-in gets only the ports it uses, never the whole
central system; ``csms/app.py`` picks the implementation once (``CSMS_NATS_URL`` set or
not) and no caller changes when it does:

- commands: ``CommandService`` (the one entry point) over a locator: ``OcppServer`` (this
  process's sockets), or ``cluster.routing.ClusterLocator`` (local socket, else a NATS
  request to the owner).
- events: ``domain.events.EventBus``, or ``cluster.events.NatsEventBus`` (JetStream).
- presence: ``LocalPresence`` (this process's sockets), or ``cluster.node.ClusterPresenceView``
  (ownership epochs in PostgreSQL, seen through NATS).
- caches: ``cluster.invalidation.LocalInvalidations``, or ``NatsInvalidations``.
- registrations: ``csms.registrations.RegistrationBook`` over whichever caches port.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from csms.cluster.invalidation import Invalidations
from csms.domain.events import EventPort

__all__ = [
    "CommandPort",
    "EventPort",
    "Invalidations",
    "LocalPresence",
    "PresencePort",
    "Registrations",
]


class CommandPort(Protocol):
    """Send a command to a charger wherever it is connected; raise ``CommandError``."""

    async def send(
        self,
        charge_point_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...


class PresencePort(Protocol):
    """Who holds which charger: this node's sockets and, in a cluster, the live owners."""

    @property
    def node_id(self) -> str: ...

    def held_here(self) -> list[str]:
        """Ids of the chargers with an open socket to this process."""
        ...

    def connected_anywhere(self, charge_point_id: str) -> bool: ...


class Registrations(Protocol):
    """The operator's registration decisions (and the cache every node keeps of them)."""

    def cached(self, charge_point_id: str) -> str | None: ...

    async def set(self, charge_point_id: str, status: str) -> bool: ...

    def forget(self, charge_point_id: str) -> None: ...


class _Registry(Protocol):
    @property
    def connections(self) -> Collection[str]: ...


class LocalPresence:
    """One process: connected means connected here."""

    def __init__(self, node_id: str, registry: _Registry) -> None:
        self._node_id = node_id
        self._registry = registry

    @property
    def node_id(self) -> str:
        return self._node_id

    def held_here(self) -> list[str]:
        return list(self._registry.connections)

    def connected_anywhere(self, charge_point_id: str) -> bool:
        return charge_point_id in self._registry.connections
