"""Pure: the plug-and-charge session's states and the transitions between them.

::

    matched ──remote_start_sent──▶ starting ──transaction_started──▶ charging
       │                              │                               │  │
       └──abandoned──▶ failed ◀──start_failed / unplugged              │  stop_requested
                         ▲                                            │  ▼
                         └──────────superseded─────────────── charging / stopping
                                                                      │
                                         transaction_stopped ─────────┘
                                                  ▼
                                             reconciling ──reconciled──▶ completed

A session confirmed by a staggered start (see ``confirmation.py``) is created in
``charging``: its transaction already runs. ``completed`` and ``failed`` are final.
Every transition is persisted with a compare-and-set on the state it leaves
(``session_store.transition``), so a late or duplicate event cannot move a session back.
"""

from __future__ import annotations

from typing import Literal

State = Literal["matched", "starting", "charging", "stopping", "reconciling", "completed", "failed"]
Trigger = Literal[
    "remote_start_sent",
    "transaction_started",
    "start_failed",
    "unplugged",
    "abandoned",
    "stop_requested",
    "transaction_stopped",
    "superseded",
    "reconciled",
]

MATCHED: State = "matched"
STARTING: State = "starting"
CHARGING: State = "charging"
STOPPING: State = "stopping"
RECONCILING: State = "reconciling"
COMPLETED: State = "completed"
FAILED: State = "failed"

FINAL: frozenset[str] = frozenset({COMPLETED, FAILED})
# States in which the charger's transaction runs (or may run) and the car is ours.
TRANSACTION_OPEN: frozenset[str] = frozenset({CHARGING, STOPPING})

_TRANSITIONS: dict[tuple[str, str], State] = {
    (MATCHED, "remote_start_sent"): STARTING,
    (MATCHED, "abandoned"): FAILED,
    (MATCHED, "unplugged"): FAILED,
    (STARTING, "transaction_started"): CHARGING,
    (STARTING, "start_failed"): FAILED,
    (STARTING, "unplugged"): FAILED,
    (CHARGING, "stop_requested"): STOPPING,
    (CHARGING, "transaction_stopped"): RECONCILING,
    (STOPPING, "transaction_stopped"): RECONCILING,
    (CHARGING, "superseded"): FAILED,
    (STOPPING, "superseded"): FAILED,
    (RECONCILING, "reconciled"): COMPLETED,
}


class InvalidTransition(ValueError):
    """The trigger does not apply in this state (a late, duplicate or foreign event)."""

    def __init__(self, state: str, trigger: str) -> None:
        super().__init__(f"{trigger!r} does not apply to a session in {state!r}")
        self.state = state
        self.trigger = trigger


def next_state(state: str, trigger: str) -> State:
    """The state ``trigger`` moves a session in ``state`` to; InvalidTransition otherwise."""
    try:
        return _TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(state, trigger) from None


def applies(state: str, trigger: str) -> bool:
    """True when ``trigger`` moves a session in ``state`` (no exception)."""
    return (state, trigger) in _TRANSITIONS


def sources(trigger: str) -> frozenset[str]:
    """Every state ``trigger`` applies in (for one compare-and-set over several states)."""
    return frozenset(state for state, t in _TRANSITIONS if t == trigger)
