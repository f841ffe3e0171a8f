"""Which connector ids a charger may use (OCPP 1.6 section 7.2 ConnectorId), pure.

0 is the charger itself and >= 1 its connectors; the schema-level rules (>= 0, and > 0
for StartTransaction) are enforced by validation. Above that, a connector id is
plausible when the charger reported it (a StatusNotification, which every 1.6 charger
sends per connector after boot) and never above ``MAX_CONNECTOR_ID``: a charger that
names connector 2,147,483,647 gets its report stored but no such connector created.
"""

from __future__ import annotations

from collections.abc import Container

# No single OCPP identity we know of drives more outlets than this (site controllers
# that proxy a car park come closest); well below it nothing is refused, only logged.
MAX_CONNECTOR_ID = 100


def is_plausible(connector_id: int) -> bool:
    """True if a StatusNotification for ``connector_id`` may create a connector."""
    return 0 <= connector_id <= MAX_CONNECTOR_ID


def connector_deviation(connector_id: int, reported: Container[int]) -> str | None:
    """Why ``connector_id`` is not a connector the charger told us about, or None."""
    if not is_plausible(connector_id):
        return "connector_out_of_range"
    if connector_id and connector_id not in reported:
        return "connector_not_reported"
    return None
