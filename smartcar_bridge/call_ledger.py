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

from smartcar_bridge.ratelimit import current_call

_plug_in: ContextVar[int | None] = ContextVar("smartcar_call_plug_in", default=None)


@contextlib.contextmanager
def for_plug_in(plug_in_id: int) -> Iterator[None]:
    """Every Smartcar call made inside counts towards this plug-in's decision."""
    token = _plug_in.set(plug_in_id)
    try:
        yield
    finally:
        _plug_in.reset(token)


@dataclass(slots=True)
class CallLedger:
    by_plug_in: Counter[int] = field(default_factory=Counter)
    by_session: Counter[int] = field(default_factory=Counter)

    def sent(self) -> None:
        """One call went out: count it for its session, else for its plug-in's decision."""
        session_id = current_call().session_id
        if session_id is not None:
            self.by_session[session_id] += 1
            return
        plug_in_id = _plug_in.get()
        if plug_in_id is not None:
            self.by_plug_in[plug_in_id] += 1
