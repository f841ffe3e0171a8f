"""NATS subject names; pure.

A charge point identity may hold characters a subject cannot (``.``, ``*``, ``>``,
whitespace); such identities are hex-encoded behind a ``~`` so every charger gets its
own single-token subject and no two identities share one.
"""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z0-9_\-]+")

COMMANDS = "csms.cmd"
OWNERS = "csms.owner"
EVENTS = "csms.events"
INVALIDATIONS = "csms.invalidate"
EVENT_STREAM = "CSMS_EVENTS"


def charger_token(charge_point_id: str) -> str:
    """One subject token for a charge point identity, reversible by ``charger_from_token``."""
    if _PLAIN.fullmatch(charge_point_id):
        return charge_point_id
    return "~" + charge_point_id.encode().hex()


def charger_from_token(token: str) -> str:
    if token.startswith("~"):
        return bytes.fromhex(token[1:]).decode()
    return token


def command_subject(charge_point_id: str) -> str:
    return f"{COMMANDS}.{charger_token(charge_point_id)}"


def owner_subject(charge_point_id: str) -> str:
    return f"{OWNERS}.{charger_token(charge_point_id)}"


def event_subject(event_type: str) -> str:
    return f"{EVENTS}.{event_type}"


def invalidation_subject(topic: str) -> str:
    return f"{INVALIDATIONS}.{topic}"
