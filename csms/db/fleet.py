"""Read queries for the fleet dashboard: one summary of the whole fleet and a searchable,
filterable keyset page of chargers with the state an operator should see.

State is derived here, in SQL, so that filtering, counting and paging agree and scale
to thousands of chargers: a charger that is not connected is ``offline`` whatever its
connectors last reported (their last report is shown as "last known", never as live).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

ENERGY_REGISTER = "Energy.Active.Import.Register"

# These queries scan the fleet (thousands of rows, tens of ms): compiling them with JIT
# costs more (60-90 ms each, measured at 5,000 chargers) than it could ever save.
_NO_JIT = "SET LOCAL jit = off"

# What the table filters on; ``state`` in a row is the first that applies, in this order.
STATES = ("offline", "rejected", "pending", "faulted", "charging", "online")

# Each filter is a fixed SQL fragment over the ``fleet`` CTE below; none carries a value.
_STATE_FILTERS = {
    "online": "f.connected",
    "offline": "NOT f.connected",
    "pending": "f.registration_status = 'Pending'",
    "rejected": "f.registration_status = 'Rejected'",
    "faulted": "f.connected AND f.faulted",
    "charging": "f.connected AND f.charging",
}

# One pass over chargers and connectors with hash joins, not a correlated lookup per
# charger: the whole fleet is derived for every count and page. ``connected`` is
# listings._CONNECTED written as a join on the live ids ($2): our own registry is exact
# for the chargers this process holds; for the others the database flag is all we know.
_FLEET = """
WITH live AS (SELECT DISTINCT unnest($2::text[]) AS id),
flags AS (
    SELECT charge_point_id, bool_or(status = 'Faulted') AS faulted,
           bool_or(status = 'Charging') AS charging
    FROM connectors GROUP BY charge_point_id
),
fleet AS (
    SELECT cp.id, cp.registration_status, cp.vendor, cp.model, cp.serial_number,
           cp.firmware_version, cp.first_seen_at, cp.last_seen_at, cp.last_boot_at,
           CASE WHEN cp.connected_node = $1 OR l.id IS NOT NULL THEN l.id IS NOT NULL
                ELSE cp.connected END AS connected,
           coalesce(k.faulted, false) AS faulted,
           coalesce(k.charging, false) AS charging
    FROM charge_points cp
    LEFT JOIN live l ON l.id = cp.id
    LEFT JOIN flags k ON k.charge_point_id = cp.id
)
"""

_STATE_SQL = """CASE WHEN NOT f.connected THEN 'offline'
                     WHEN f.registration_status = 'Rejected' THEN 'rejected'
                     WHEN f.registration_status = 'Pending' THEN 'pending'
                     WHEN f.faulted THEN 'faulted'
                     WHEN f.charging THEN 'charging'
                     ELSE 'online' END"""


@dataclass(slots=True, frozen=True)
class ChargerFilter:
    """``search`` matches a substring of the id, vendor, model or serial number."""

    search: str | None = None
    state: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in _STATE_FILTERS:
            raise ValueError(f"state must be one of {', '.join(STATES)}")


def _where(where: ChargerFilter, bind: Any) -> list[str]:
    conditions = []
    if where.state is not None:
        conditions.append(_STATE_FILTERS[where.state])
    if where.search:
        haystack = (
            "lower(f.id || ' ' || coalesce(f.vendor, '') || ' ' || coalesce(f.model, '')"
            " || ' ' || coalesce(f.serial_number, ''))"
        )
        conditions.append(f"strpos({haystack}, lower({bind(where.search)})) > 0")
    return conditions


async def chargers(
    pool: asyncpg.Pool,
    where: ChargerFilter,
    *,
    node_id: str,
    live: Sequence[str],
    after_id: str | None,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """How many chargers match, and one page of them by id after ``after_id``."""
    args: list[Any] = [node_id, list(live)]

    def bind(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    conditions = _where(where, bind)
    filtered = " WHERE " + " AND ".join(conditions) if conditions else ""
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        await connection.execute(_NO_JIT)
        total = await connection.fetchval(_FLEET + "SELECT count(*) FROM fleet f" + filtered, *args)
        if after_id is not None:
            conditions.append(f"f.id > {bind(after_id)}")
        page_where = " WHERE " + " AND ".join(conditions) if conditions else ""
        rows = await connection.fetch(
            _FLEET
            + f"""SELECT f.id, f.registration_status, f.vendor, f.model, f.serial_number,
                         f.firmware_version, f.first_seen_at, f.last_seen_at, f.last_boot_at,
                         f.connected, {_STATE_SQL} AS state,
                         coalesce((SELECT jsonb_agg(jsonb_build_object(
                             'connector_id', c.connector_id, 'status', c.status,
                             'error_code', c.error_code, 'info', c.info,
                             'updated_at', c.updated_at) ORDER BY c.connector_id)
                           FROM connectors c WHERE c.charge_point_id = f.id), '[]')
                           AS connectors,
                         (SELECT count(*) FROM transactions t WHERE t.charge_point_id = f.id
                            AND t.stop_received_at IS NULL) AS open_transactions
                  FROM fleet f {page_where}
                  ORDER BY f.id LIMIT {bind(limit)}""",
            *args,
        )
    return total, [dict(r) for r in rows]


_CHARGER_COUNTS = f"""{_FLEET}
SELECT count(*) AS total,
       count(*) FILTER (WHERE f.connected) AS online,
       count(*) FILTER (WHERE NOT f.connected) AS offline,
       count(*) FILTER (WHERE f.registration_status = 'Pending') AS pending,
       count(*) FILTER (WHERE f.registration_status = 'Rejected') AS rejected,
       count(*) FILTER (WHERE f.connected AND f.faulted) AS faulted,
       count(*) FILTER (WHERE f.connected AND f.charging) AS charging
FROM fleet f
"""

# Connector 0 is the charger itself; only real connectors are counted. A connector of an
# offline charger is counted as Offline: its last report is history, not its state.
_CONNECTOR_COUNTS = f"""{_FLEET}
SELECT CASE WHEN f.connected THEN c.status ELSE 'Offline' END AS status, count(*) AS n
FROM connectors c JOIN fleet f ON f.id = c.charge_point_id
WHERE c.connector_id > 0
GROUP BY 1 ORDER BY 1
"""

_OPEN_TRANSACTIONS = f"""{_FLEET}
SELECT count(*) AS open,
       count(*) FILTER (WHERE NOT f.connected) AS on_offline_chargers
FROM transactions t JOIN fleet f ON f.id = t.charge_point_id
WHERE t.stop_received_at IS NULL
"""

# The newest open transactions, each with whether its charger is connected: one on an
# offline charger is open in our books, but nothing says it is still charging.
_NEWEST_OPEN = f"""{_FLEET}
SELECT t.id, t.charge_point_id, t.connector_id, t.id_tag, t.start_timestamp,
       f.connected AS charger_connected
FROM transactions t JOIN fleet f ON f.id = t.charge_point_id
WHERE t.stop_received_at IS NULL
ORDER BY t.start_timestamp DESC, t.id DESC LIMIT $3
"""

# Energy of the transactions started since ``$1``: the stop meter for finished ones, the
# last stored register for running ones (looked up for those only); a meter anomaly
# contributes nothing, and no transaction less than 0.
_ENERGY_SINCE = """
WITH started AS MATERIALIZED (
    SELECT t.id, t.charge_point_id, t.meter_start_wh, t.meter_stop_wh
    FROM transactions t
    WHERE t.start_timestamp >= $1 AND NOT t.meter_anomaly
)
SELECT (SELECT count(*) FROM started) AS transactions,
       (coalesce((SELECT sum(greatest(s.meter_stop_wh - s.meter_start_wh, 0))
                  FROM started s WHERE s.meter_stop_wh IS NOT NULL), 0)
        + coalesce((SELECT sum(greatest(r.value - s.meter_start_wh, 0))
                    FROM started s CROSS JOIN LATERAL (
                        SELECT m.value FROM meter_values m
                        WHERE m.transaction_id = s.id AND m.charge_point_id = s.charge_point_id
                          AND m.measurand = $2 AND m.phase IS NULL AND m.value IS NOT NULL
                        ORDER BY m.sampled_at DESC LIMIT 1) r
                    WHERE s.meter_stop_wh IS NULL), 0))::bigint AS energy_wh
"""


async def summary(
    pool: asyncpg.Pool,
    *,
    node_id: str,
    live: Sequence[str],
    since: datetime,
    newest: int = 20,
) -> dict[str, Any]:
    """Counts by connection, registration and connector status, open transactions (and the
    ``newest`` of them) and the energy of the transactions started since ``since``, read
    in one snapshot."""
    args = (node_id, list(live))
    async with (
        pool.acquire() as connection,
        connection.transaction(readonly=True, isolation="repeatable_read"),
    ):
        await connection.execute(_NO_JIT)
        counts = await connection.fetchrow(_CHARGER_COUNTS, *args)
        connectors = await connection.fetch(_CONNECTOR_COUNTS, *args)
        open_transactions = await connection.fetchrow(_OPEN_TRANSACTIONS, *args)
        newest_open = await connection.fetch(_NEWEST_OPEN, *args, newest)
        energy = await connection.fetchrow(_ENERGY_SINCE, since, ENERGY_REGISTER)
    # Aggregates without GROUP BY: one row each, always.
    assert counts is not None and open_transactions is not None and energy is not None
    return {
        "chargers": dict(counts),
        "connectors": {r["status"]: r["n"] for r in connectors},
        "transactions": {
            **dict(open_transactions),
            "started_since": energy["transactions"],
            "energy_since_wh": energy["energy_wh"],
        },
        "open_transactions": [dict(r) for r in newest_open],
    }
