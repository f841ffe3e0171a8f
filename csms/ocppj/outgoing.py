"""Our CALLs to one charger, sans I/O: one in flight, the rest waiting in order.

OCPP-J 1.6 §4.1.1: the central system should not send a CALL to a charger before the
previous one has been answered or has timed out; many chargers drop or mis-answer a
second one. ``OutgoingQueue`` is that rule and nothing else: it is told what happened
(submitted, sent, finished, withdrawn) and says whose turn it is and whether an answer
belongs to the CALL in flight. No loop, no socket, no clock.
"""

from __future__ import annotations


class OutgoingQueue:
    """Message ids of our CALLs to one charger: at most one in flight, the others in order."""

    __slots__ = ("_in_flight", "_waiting")

    def __init__(self) -> None:
        # A list, not a deque: a few entries at most, and a deque's block is ~760 bytes.
        self._waiting: list[str] = []
        self._in_flight: str | None = None

    @property
    def in_flight(self) -> str | None:
        """The CALL written and not yet answered or timed out, if any."""
        return self._in_flight

    def __len__(self) -> int:
        return len(self._waiting) + (self._in_flight is not None)

    def submit(self, message_id: str) -> bool:
        """Queue a CALL; True if it may be written at once."""
        self._waiting.append(message_id)
        return self.next_turn() == message_id

    def next_turn(self) -> str | None:
        """The CALL that may be written now: the first waiting one, once none is in flight."""
        if self._in_flight is None and self._waiting:
            return self._waiting[0]
        return None

    def ahead_of(self, message_id: str) -> int:
        """How many CALLs would go out before this waiting one."""
        position = self._waiting.index(message_id) if message_id in self._waiting else 0
        return position + (self._in_flight is not None)

    def sent(self, message_id: str) -> None:
        """The CALL whose turn it was is being written: it is in flight now."""
        if self.next_turn() != message_id:
            raise ValueError(f"{message_id!r} is not the CALL whose turn it is")
        del self._waiting[0]
        self._in_flight = message_id

    def finished(self, message_id: str) -> str | None:
        """The CALL in flight was answered, timed out or abandoned; return the next turn."""
        if self._in_flight == message_id:
            self._in_flight = None
        return self.next_turn()

    def withdraw(self, message_id: str) -> str | None:
        """A waiting CALL gave up before it was written; return the next turn."""
        if message_id in self._waiting:
            self._waiting.remove(message_id)
        return self.next_turn()

    def answers_in_flight(self, message_id: str) -> bool:
        """True if a CALLRESULT/CALLERROR with this id answers the CALL in flight."""
        return self._in_flight is not None and self._in_flight == message_id

    def clear(self) -> tuple[str | None, list[str]]:
        """The connection is gone: return (the CALL in flight, the CALLs never written)."""
        in_flight, waiting = self._in_flight, list(self._waiting)
        self._in_flight = None
        self._waiting.clear()
        return in_flight, waiting
