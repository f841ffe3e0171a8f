"""Smartcar v2.0 error bodies and the OAuth-style token errors, as the real API sends them.

``ApiError`` is raised by the fake's handlers and turned into a response in one place
(``app.py``); ``OAuthError`` likewise for the token endpoint.
"""

from __future__ import annotations

from typing import Any

DOCS = "https://smartcar.com/docs/errors/api-errors"

# smartcar-api.md §7: HTTP status per error type.
STATUS_BY_TYPE = {
    "AUTHENTICATION": 401,
    "PERMISSION": 403,
    "VALIDATION": 400,
    "RESOURCE_NOT_FOUND": 404,
    "CONNECTED_SERVICES_ACCOUNT": 400,
    "VEHICLE_STATE": 409,
    "RATE_LIMIT": 429,
    "BILLING": 430,
    "SERVER": 500,
    "COMPATIBILITY": 501,
    "UPSTREAM": 502,
}

# Resolution types that differ from the type's default (None).
_RESOLUTION_BY_TYPE = {
    "PERMISSION": "REAUTHENTICATE",
    "RATE_LIMIT": "RETRY_LATER",
    "BILLING": "CONTACT_SUPPORT",
    "UPSTREAM": "RETRY_LATER",
}
_RESOLUTION_BY_KIND = {
    "VEHICLE_STATE:UNKNOWN": "RETRY_LATER",
    "VEHICLE_STATE:LOW_BATTERY": "RETRY_LATER",
    "SERVER:INTERNAL": "RETRY_LATER",
    "SERVER:RECORD_NOT_FOUND": "CONTACT_SUPPORT",
    "SERVER:MULTIPLE_RECORDS_FOUND": "CONTACT_SUPPORT",
    "COMPATIBILITY:PLATFORM_NOT_CAPABLE": "REAUTHENTICATE",
    "CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED": "ACTION_REQUIRED",
}

# The two texts pinned by Smartcar's SDK tests are verbatim; the others are close paraphrases.
_DESCRIPTIONS = {
    "AUTHENTICATION": (
        "The authorization header is missing or malformed, or it contains invalid or expired "
        "authentication credentials. Please check for missing parameters, spelling and casing "
        "mistakes, and other syntax issues."
    ),
    "PERMISSION": (
        "Your application has insufficient permissions to access the requested resource. "
        "Please prompt the user to re-authenticate using Smartcar Connect."
    ),
    "VALIDATION": "Request invalid or malformed. Please check for missing parameters, "
    "spelling and casing mistakes, and other syntax issues.",
    "VALIDATION:PARAMETER": "Your request contains an invalid parameter.",
    "RESOURCE_NOT_FOUND:PATH": "The requested resource does not exist. Please check the URL.",
    "RATE_LIMIT:VEHICLE": (
        "You have reached the throttling rate limit for this vehicle. Please see the "
        "retry-after header (seconds) for when to retry the request."
    ),
    "RATE_LIMIT:SMARTCAR_API": (
        "You have reached the throttling rate limit for your application. Please retry with "
        "exponential backoff."
    ),
    "VEHICLE_STATE:ASLEEP": (
        "The vehicle is in a sleep state and temporarily unable to perform your request."
    ),
    "VEHICLE_STATE:UNREACHABLE": "The vehicle was unable to perform your request because it "
    "is currently unreachable.",
    "VEHICLE_STATE:CHARGING_IN_PROGRESS": "The vehicle is currently charging.",
    "VEHICLE_STATE:FULLY_CHARGED": "The vehicle is fully charged.",
    "VEHICLE_STATE:NOT_CHARGING": "The vehicle is not currently charging.",
    "VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED": "The vehicle is not plugged in.",
    "VEHICLE_STATE:CHARGE_FAULT": "The vehicle encountered a charging fault: the charger is "
    "not supplying current or a charging schedule conflicts with the request.",
    "SERVER:INTERNAL": "An internal error occurred. Please try again later.",
    "UPSTREAM:INVALID_DATA": "Smartcar received invalid data from the vehicle manufacturer.",
    "UPSTREAM:KNOWN_ISSUE": "The vehicle manufacturer's servers are experiencing a known issue.",
    "UPSTREAM:NO_RESPONSE": "The vehicle manufacturer's servers did not respond.",
    "UPSTREAM:RATE_LIMIT": "The vehicle manufacturer's rate limit was reached for this vehicle.",
    "UPSTREAM:UNKNOWN_ISSUE": "The vehicle manufacturer's servers returned an unknown error.",
}
_USER_MESSAGES = {
    "VEHICLE_STATE:ASLEEP": "Your vehicle is in a sleep state. This request was not sent to "
    "preserve battery life.",
    "VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED": "Your vehicle is not plugged in.",
    "PERMISSION": "Please reconnect your vehicle to grant the permissions this app needs.",
}


def split_kind(kind: str) -> tuple[str, str | None]:
    """``"RATE_LIMIT:VEHICLE"`` → ``("RATE_LIMIT", "VEHICLE")``; ``"PERMISSION"`` → code None."""
    error_type, _, code = kind.partition(":")
    if error_type not in STATUS_BY_TYPE:
        raise ValueError(f"unknown Smartcar error type in {kind!r}")
    return error_type, code or None


class ApiError(Exception):
    """A v2.0 API error; ``kind`` is ``TYPE:CODE`` or just ``TYPE`` when the code is null."""

    def __init__(
        self, kind: str, *, headers: dict[str, str] | None = None, description: str | None = None
    ) -> None:
        self.error_type, self.code = split_kind(kind)
        self.kind = kind
        self.status = STATUS_BY_TYPE[self.error_type]
        self.headers = headers or {}
        self.description = description
        super().__init__(kind)

    def body(self, request_id: str) -> dict[str, Any]:
        """The full v2.0 error object."""
        kind = self.kind
        anchor = (self.code or self.error_type).lower().replace("_", "-")
        body: dict[str, Any] = {
            "type": self.error_type,
            "code": self.code,
            "description": self.description
            or _DESCRIPTIONS.get(kind)
            or _DESCRIPTIONS.get(self.error_type)
            or f"{kind} error.",
            "docURL": f"{DOCS}/{self.error_type.lower().replace('_', '-')}-errors#{anchor}",
            "statusCode": self.status,
            "requestId": request_id,
            "resolution": {
                "type": _RESOLUTION_BY_KIND.get(kind, _RESOLUTION_BY_TYPE.get(self.error_type))
            },
        }
        message = _USER_MESSAGES.get(kind) or _USER_MESSAGES.get(self.error_type)
        if message is not None:
            body["suggestedUserMessage"] = message
        return body


class OAuthError(Exception):
    """A token-endpoint error: ``{"error", "error_description"}`` with a 400 or 401."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
