"""Errors the cluster adds to the command API (``csms.ocpp16.errors``).

CommandError
└── NotConnected
    ├── RoutingUnavailable   NATS is unreachable: a charger held elsewhere cannot be reached
    └── Replaced             this node's socket was superseded by a newer connection
"""

from __future__ import annotations

from csms.ocpp16.errors import NotConnected


class RoutingUnavailable(NotConnected):
    """Answered 503: the charger may well be connected, to a node we cannot reach now."""

    def __init__(self, charge_point_id: str) -> None:
        super().__init__(charge_point_id)
        self.args = (
            f"cannot reach the node holding {charge_point_id!r}: "
            "the cluster's message bus (NATS) is unavailable",
        )


class Replaced(NotConnected):
    """This node's connection to the charger has been superseded by a newer one."""
