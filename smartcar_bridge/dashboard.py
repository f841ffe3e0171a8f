"""The bridge's part of the fleet dashboard's summary: plug-and-charge outcomes.

The core's dashboard does not know the bridge's tables; the bridge hands it
``outcomes_since`` as a summary section when it runs (see ``csms/app.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

_OUTCOMES = """
SELECT state, coalesce(stop_reason, '') AS stop_reason, count(*) AS n
FROM charging_sessions
WHERE ended_at >= $1
GROUP BY 1, 2 ORDER BY 1, 2
"""

_OPEN = """
SELECT state, count(*) AS n FROM charging_sessions WHERE ended_at IS NULL GROUP BY 1 ORDER BY 1
"""


async def outcomes_since(pool: asyncpg.Pool, since: datetime) -> dict[str, Any]:
    """Sessions ended since ``since`` by final state and stop reason, open ones by state."""
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        ended = await connection.fetch(_OUTCOMES, since)
        open_sessions = await connection.fetch(_OPEN)
    by_state: dict[str, int] = {}
    for row in ended:
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["n"]
    return {
        "ended": by_state,
        "ended_by_reason": [
            {"state": r["state"], "stop_reason": r["stop_reason"] or None, "count": r["n"]}
            for r in ended
        ],
        "open": {r["state"]: r["n"] for r in open_sessions},
    }


def cards(outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    """The fleet page's card for ``outcomes`` (drawn by the core's page, which knows only
    the card's shape: id, label, value, note)."""
    ended = outcomes["ended"]
    in_progress = sum(outcomes["open"].values())
    return [
        {
            "id": "bridge",
            "label": "plug & charge today",
            "value": f"{ended.get('completed', 0):,} completed",
            "note": f"{ended.get('failed', 0):,} failed · {in_progress:,} in progress",
        }
    ]
