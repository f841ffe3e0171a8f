"""structlog set-up: one JSON event per line, ISO UTC timestamps, no secrets."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR

# Keys whose values must never reach a log line, whatever a caller binds.
SECRET_KEYS = frozenset(
    {
        "password",
        "authorization",
        "access_token",
        "refresh_token",
        "token",
        "client_secret",
        "secret",
        "authorization_key",
    }
)


def mask_vin(vin: str | None) -> str | None:
    """Keep only the last six characters of a VIN: enough to tell cars apart."""
    if not vin:
        return vin
    return "*" * max(len(vin) - 6, 0) + vin[-6:]


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, Mapping) and depth < 4:
        return {
            k: "[redacted]" if str(k).lower() in SECRET_KEYS else _redact(v, depth + 1)
            for k, v in value.items()
        }
    return value


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, Mapping):
            event[key] = _redact(value)
    if "vin" in event and isinstance(event["vin"], str):
        event["vin"] = mask_vin(event["vin"])
    return event


_PROCESS_CONTEXT: dict[str, str] = {}


def bind_process(**values: str) -> None:
    """Context every log line of this process carries (``node_id``)."""
    _PROCESS_CONTEXT.update(values)


def add_process_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in _PROCESS_CONTEXT.items():
        event.setdefault(key, value)
    return event


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog for the process. Safe to call more than once."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_process_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        structlog.processors.format_exc_info,
    ]
    if log_format == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    else:
        processors.append(structlog.processors.JSONRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
