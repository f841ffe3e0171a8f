"""Failed-authentication throttling per remote address and per identity (pure; clock passed in).

After ``free_failures`` failures a key is blocked for ``base`` seconds, doubling with each
further failure up to ``cap``. A success clears the identity's record (not the address's:
one good charger behind a NAT must not launder an attacker's failures). Memory is bounded:
the oldest keys are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int
    blocked_until: float
    last_failure: float


class FailureThrottle:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        base: float = 1.0,
        cap: float = 60.0,
        max_keys: int = 10_000,
    ) -> None:
        self.free_failures = free_failures
        self.base = base
        self.cap = cap
        self.max_keys = max_keys
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    def retry_after(self, address: str | None, identity: str, now: float) -> float:
        """Seconds until this address or identity may try again; 0 if it may now."""
        wait = 0.0
        for key in _keys(address, identity):
            record = self._records.get(key)
            if record is not None:
                wait = max(wait, record.blocked_until - now)
        return wait

    def failed(self, address: str | None, identity: str, now: float) -> None:
        for key in _keys(address, identity):
            record = self._records.pop(key, None) or _Record(0, 0.0, now)
            # A key quiet for longer than twice the cap starts over.
            if now - record.last_failure > 2 * self.cap:
                record.failures = 0
            record.failures += 1
            record.last_failure = now
            extra = record.failures - self.free_failures
            if extra > 0:
                record.blocked_until = now + min(self.base * 2 ** (extra - 1), self.cap)
            self._records[key] = record
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def succeeded(self, identity: str) -> None:
        self._records.pop(("identity", identity), None)


def _keys(address: str | None, identity: str) -> list[tuple[str, str]]:
    keys = [("identity", identity)]
    if address:
        keys.append(("address", address))
    return keys
