"""Every v3 fact that smartcar-api.md §14 leaves unconfirmed, decided here and nowhere else.

Each choice names the source it follows. Input is read tolerantly (both forms); what we send
follows the reference pages (``vehicle.yml`` / ``management.yml``) where one exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

# §14.3 signal codes. ✓ = on Smartcar's pages; ³ = third-party catalogue of vehicle.yml.
SOC = "tractionbattery-stateofcharge"  # ✓ percent 0..100
RANGE = "tractionbattery-range"  # ✓
IS_CHARGING = "charge-ischarging"  # ✓
# ³ "charge-ischargingcableconnected": the §10 "Detect a charging session" guide's trigger,
# lower-cased by the group-name pattern. No confirmed alternative exists.
CABLE_CONNECTED = "charge-ischargingcableconnected"
CHARGE_LIMITS = "charge-chargelimits"  # ✓ body carries ``activeLimit``
LOCATION = "location-preciselocation"  # ✓
VIN = "vehicleidentification-vin"  # ³ (a bare "vin" answers SIGNAL_NOT_FOUND, third-party)
# ³ §14.3 lists the singular, §8 the plural: read whichever the car reports.
CAPACITY = ("tractionbattery-nominalcapacity", "tractionbattery-nominalcapacities")

# §14.2: the "Command Executions" tag exists but its path is unconfirmed. We guess the REST
# form below and only ever call it for an execution the API reported as still running.
EXECUTION_PATH = "/vehicles/{vehicle_id}/commands/{execution_id}"
# §14.4: management.yml (authoritative) has /subscriptions; the April 2026 blog post has
# /webhooks/{id}/subscriptions. We send the reference form and fall back to the blog's on 404.
SUBSCRIPTIONS_PATH = "/subscriptions"
BLOG_SUBSCRIPTIONS_PATH = "/webhooks/{webhook_id}/subscriptions"

# §14.2: only SUCCESS is confirmed; FAILURE / PENDING come from third-party client code.
SUCCEEDED = frozenset({"SUCCESS", "SUCCEEDED", "COMPLETED"})
FAILED = frozenset({"FAILURE", "FAILED", "ERROR", "CANCELED", "CANCELLED", "TIMEOUT"})
# Anything else (PENDING, IN_PROGRESS, a missing status) counts as still running.

# Bounded following of a long-running command: poll at these growing intervals (seconds)
# until the overall command timeout (§1's 310 s by default) is spent.
POLL_INTERVALS = (2.0, 4.0, 8.0, 15.0, 30.0)
MAX_PAGES = 50  # a runaway ``links.next`` must not loop forever
# The largest page §14.3's ``pageSize`` takes (third-party reading: at most 100). A car
# reports up to ~95 signals, so its whole state (charge, cable, SoC, position) is one call.
FULL_PAGE = 100

# Epoch seconds vs milliseconds (§14.3): the webhook docs say ms, the API examples look like
# seconds. 1e11 s is the year 5138, 1e11 ms is 1973: anything above is milliseconds.
_MS_THRESHOLD = 1e11


def moment(value: Any) -> datetime | None:
    """An epoch (seconds or milliseconds, by magnitude) or an ISO-8601 string, as aware UTC."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000.0 if abs(value) >= _MS_THRESHOLD else float(value)
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def total_count(meta: Mapping[str, Any]) -> int | None:
    """``meta.totalCount`` (docs) or ``meta.total`` (third-party readings)."""
    for key in ("totalCount", "total", "count"):
        if isinstance(meta.get(key), int):
            return int(meta[key])
    return None


def next_url(body: Mapping[str, Any], current_url: str) -> str | None:
    """``links.next`` resolved against the request URL; both ``next`` and paging keys
    (``page``/``pageSize`` in the docs, ``pageNumber`` / ``page[number]`` elsewhere) are
    carried inside it, so following the link handles either form."""
    links = body.get("links")
    if not isinstance(links, Mapping):
        return None
    link = links.get("next")
    if not isinstance(link, str) or not link:
        return None
    if link.startswith(("http://", "https://")):
        return link
    parts = urlsplit(current_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    # The docs' example "/vehicles/vehicle123/signals?page=2" is relative to the API base
    # (…/v3); a link already holding the base path is relative to the host.
    base_path = parts.path.split("/vehicles/")[0].split("/connections")[0]
    base_path = base_path.split("/subscriptions")[0].split("/webhooks/")[0]
    if base_path and link.startswith(base_path + "/"):
        return origin + link
    return urljoin(origin + base_path + "/", link.lstrip("/"))


def vehicle_path(vehicle_id: str, suffix: str = "") -> str:
    return f"/vehicles/{quote(vehicle_id, safe='')}{suffix}"


def execution_path(vehicle_id: str, execution_id: str) -> str:
    return EXECUTION_PATH.format(
        vehicle_id=quote(vehicle_id, safe=""), execution_id=quote(execution_id, safe="")
    )
