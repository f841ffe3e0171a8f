"""Pure: is an energy register reading consistent with the others of its transaction?

A register only goes up. Readings are compared within one transaction and in the
order of their timestamps, not of their arrival: a MeterValues delivered late (a
charger emptying its offline queue) is judged against the readings of its own
transaction around the time it was taken, never against the next transaction's.
Only the latest ``window`` readings per transaction are kept, so memory stays bounded
for a long session; an older late reading is checked against the oldest one kept.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True, frozen=True)
class Backwards:
    """A reading that contradicts a neighbour: ``other_wh`` at ``other_at``."""

    energy_wh: float
    at: datetime
    other_wh: float
    other_at: datetime


class RegisterReadings:
    """Energy register readings of each open transaction, ordered by timestamp."""

    __slots__ = ("_by_transaction", "_window")

    def __init__(self, window: int = 16) -> None:
        self._window = window
        # Made on the first reading: most of the connections held have no transaction.
        self._by_transaction: dict[int, list[tuple[datetime, float]]] | None = None

    def add(self, transaction_id: int, at: datetime, energy_wh: float) -> Backwards | None:
        """Record a reading; return the neighbour it contradicts, if it does."""
        if self._by_transaction is None:
            self._by_transaction = {}
        readings = self._by_transaction.setdefault(transaction_id, [])
        # After every reading with the same timestamp: among equals, arrival order decides.
        index = bisect.bisect_right(readings, at, key=lambda reading: reading[0])
        found = None
        if index > 0 and readings[index - 1][1] > energy_wh:
            # The latest reading before it is higher: the register went backwards...
            found = Backwards(energy_wh, at, readings[index - 1][1], readings[index - 1][0])
        elif index < len(readings) and readings[index][1] < energy_wh:
            # ...or the earliest one after it is lower.
            found = Backwards(energy_wh, at, readings[index][1], readings[index][0])
        readings.insert(index, (at, energy_wh))
        if len(readings) > self._window:
            del readings[0]
        return found

    def forget(self, transaction_id: int) -> None:
        """The transaction ended: its readings are no longer needed."""
        if self._by_transaction is not None:
            self._by_transaction.pop(transaction_id, None)

    def __len__(self) -> int:
        return len(self._by_transaction or ())
