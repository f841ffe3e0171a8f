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


# Event names for records from the standard library's logging (uvicorn, asyncio, warnings):
# by logger name prefix; anything else is ``python.log`` with its ``logger`` field.
_FOREIGN_EVENTS = (
    ("uvicorn", "http.server_log"),
    ("asyncio", "asyncio.loop_error"),
    ("py.warnings", "python.warning"),
)
# uvicorn logs this, with the traceback, for an exception no handler turned into a response.
_UNHANDLED_HTTP = "Exception in ASGI application"


def foreign_event(record: logging.LogRecord) -> str:
    """The stable event name for a standard-library log record."""
    message = record.getMessage()
    if record.name.startswith("uvicorn") and message.startswith(_UNHANDLED_HTTP):
        return "http.unhandled_error"
    for prefix, event in _FOREIGN_EVENTS:
        if record.name == prefix or record.name.startswith(prefix + "."):
            return event
    return "python.log"


class StructlogHandler(logging.Handler):
    """Hands standard-library log records to structlog: the same one-JSON-line output,
    redaction and bound context as our own events, instead of plain-text tracebacks."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage().strip()}
            if record.exc_info and record.exc_info[0] is not None:
                fields["exc_info"] = record.exc_info
            structlog.get_logger().log(record.levelno, foreign_event(record), **fields)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def _route_standard_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StructlogHandler)]:
        root.removeHandler(handler)
    root.addHandler(StructlogHandler())
    # Libraries' info chatter (uvicorn start-up, websockets) stays out, as before; their
    # warnings and errors (with tracebacks) come through as events.
    root.setLevel(max(level, logging.WARNING))
    # uvicorn adds no handlers with log_config=None, so its records reach the root one.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)


def configure_logging(log_format: str = "json", level: str = "info") -> None:
    """Configure structlog for the process, and route the standard library's logging
    (uvicorn, asyncio, warnings) through it. Safe to call more than once."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
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
    _route_standard_logging(_LEVELS[level])
