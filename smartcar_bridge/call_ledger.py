"""Which plug-in and which session each Smartcar call was for (issue 16's budgets).

``call_purpose`` says *why* a call is made; this says *for whom*: a plug-in decision's
reads happen before any session exists, so the plug-in is named here
(``for_plug_in``), and the session id comes from the call's purpose context. Counted when
the call is really sent (a call the limiter holds back costs nothing). Per process, like
the limiter's counts: ``GET /api/plug-ins`` shows them next to each plug-in.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog

from smartcar_bridge.errors import SmartcarError
from smartcar_bridge.ratelimit import current_call

log = structlog.get_logger()

_plug_in: ContextVar[int | None] = ContextVar("smartcar_call_plug_in", default=None)


@contextlib.contextmanager
def for_plug_in(plug_in_id: int) -> Iterator[None]:
    """Every Smartcar call made inside counts towards this plug-in's decision."""
    token = _plug_in.set(plug_in_id)
    try:
        yield
    finally:
        _plug_in.reset(token)


class DecisionBudgetSpent(SmartcarError):
    """Refused here: this plug-in's decision has made its budget of calls (issue 16).

    Not retried: the decision goes on with what it knows, and a car it cannot afford to
    read is unreadable to it (never guessed; matching.relate)."""

    default_type = "BUDGET"
    local = True


@dataclass(slots=True)
class CallLedger:
    by_plug_in: Counter[int] = field(default_factory=Counter)
    # The same decision calls by purpose (match, session_read, confirm, ...): what a costly
    # decision spent its calls on.
    decision_purposes: dict[int, Counter[str]] = field(default_factory=dict)
    by_session: Counter[int] = field(default_factory=Counter)
    # Calls one plug-in decision may make, every purpose and retry included (None: no cap).
    decision_budget: int | None = None
    _warned: set[int] = field(default_factory=set)

    def made(self, plug_in_id: int) -> int:
        """The calls this plug-in's decision has made so far."""
        return self.by_plug_in.get(plug_in_id, 0)

    def spent(self, plug_in_id: int) -> bool:
        """True when this plug-in's decision can make no more calls."""
        budget = self.decision_budget
        return budget is not None and self.by_plug_in[plug_in_id] >= budget

    def check(self) -> None:
        """Before a call: refuse it if it is a decision's and that decision's budget is
        spent. A session's calls are not capped here (the limiter warns past its budget)."""
        plug_in_id = _plug_in.get()
        if plug_in_id is None or current_call().session_id is not None:
            return
        if not self.spent(plug_in_id):
            return
        budget = self.decision_budget
        if plug_in_id not in self._warned:
            self._warned.add(plug_in_id)
            log.warning(
                "bridge.decision_budget_spent",
                plug_in_id=plug_in_id,
                calls=self.by_plug_in[plug_in_id],
                budget=budget,
                purpose=current_call().purpose.value,
            )
        raise DecisionBudgetSpent(
            f"the plug-in decision has made its {budget} Smartcar calls",
            code="DECISION",
            retryable=False,
        )

    def sent(self) -> None:
        """One call went out: count it for its session, else for its plug-in's decision."""
        session_id = current_call().session_id
        if session_id is not None:
            self.by_session[session_id] += 1
            return
        plug_in_id = _plug_in.get()
        if plug_in_id is not None:
            self.by_plug_in[plug_in_id] += 1
            purposes = self.decision_purposes.setdefault(plug_in_id, Counter())
            purposes[current_call().purpose.value] += 1
