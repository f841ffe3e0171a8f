"""``csms charger set-password | set-profile | security-events CP_ID``: calls to the HTTP API.

Over HTTP rather than to the database: rotation and upgrades need the live charger, which
only the running server holds, and every operator action goes through one audited API.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SECURITY_ACTIONS = ("set-password", "set-profile", "security-events")


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "profile", nargs="?", type=int, choices=range(4), help="set-profile: the new profile"
    )
    parser.add_argument(
        "--provision",
        action="store_true",
        help="set-password: store a password to type into an offline charger, no rotation",
    )


def security_request(args: argparse.Namespace) -> tuple[str, str, Any] | None:
    """(method, path, body) for the action, or None (after a message) if it cannot be made."""
    path = f"/api/charge-points/{args.charge_point_id}"
    if args.first == "set-password":
        return "POST", f"{path}/security/password", {"provision": args.provision}
    if args.first == "set-profile":
        if args.profile is None:
            print("csms: set-profile needs the profile (0-3)", file=sys.stderr)
            return None
        return "PUT", f"{path}/security/profile", {"profile": args.profile}
    return "GET", f"{path}/security-events", None
