"""Error bodies → SmartcarError subclasses, and the retry table of smartcar-api.md §7."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from smartcar_bridge.errors import (
    AuthenticationError,
    BillingError,
    CompatibilityError,
    ConnectedServicesAccountError,
    OAuthError,
    RateLimitError,
    ReauthRequired,
    RefreshRefused,
    ResourceNotFoundError,
    ServerError,
    SmartcarError,
    SmartcarPermissionError,
    SmartcarTransportError,
    UpstreamError,
    ValidationError,
    VehicleStateError,
    error_from_response,
    parse_retry_after,
)

STATUS = {
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


def body(kind: str, resolution: Any = None, **extra: Any) -> dict[str, Any]:
    error_type, _, code = kind.partition(":")
    return {
        "type": error_type,
        "code": code or None,
        "description": f"{kind} happened.",
        "docURL": "https://smartcar.com/docs/errors/api-errors",
        "statusCode": STATUS[error_type],
        "requestId": "5dea93a1-3f79-4246-90c5-89610a20471b",
        "resolution": {"type": resolution},
        **extra,
    }


def from_kind(kind: str, resolution: Any = None, headers: Any = None) -> SmartcarError:
    error_type = kind.partition(":")[0]
    return error_from_response(STATUS[error_type], body(kind, resolution), headers)


# (kind, class, retryable): every row is a line of §7's "Retry guidance".
RETRY_TABLE = [
    ("VEHICLE_STATE:ASLEEP", VehicleStateError, True),
    ("VEHICLE_STATE:UNREACHABLE", VehicleStateError, True),
    ("VEHICLE_STATE:UNKNOWN", VehicleStateError, True),
    ("VEHICLE_STATE:LOW_BATTERY", VehicleStateError, True),
    ("VEHICLE_STATE:IGNITION_ON", VehicleStateError, True),
    ("VEHICLE_STATE:IN_MOTION", VehicleStateError, True),
    ("VEHICLE_STATE:VEHICLE_OFFLINE_FOR_SERVICE", VehicleStateError, True),
    ("VEHICLE_STATE:CHARGING_IN_PROGRESS", VehicleStateError, False),
    ("VEHICLE_STATE:FULLY_CHARGED", VehicleStateError, False),
    ("VEHICLE_STATE:NOT_CHARGING", VehicleStateError, False),
    ("VEHICLE_STATE:CHARGING_PLUG_NOT_CONNECTED", VehicleStateError, False),
    ("VEHICLE_STATE:CHARGE_FAULT", VehicleStateError, False),
    ("VEHICLE_STATE:REMOTE_ACCESS_DISABLED", VehicleStateError, False),
    ("VEHICLE_STATE:DOOR_OPEN", VehicleStateError, False),
    ("RATE_LIMIT:VEHICLE", RateLimitError, True),
    ("RATE_LIMIT:SMARTCAR_API", RateLimitError, True),
    ("UPSTREAM:INVALID_DATA", UpstreamError, True),
    ("UPSTREAM:KNOWN_ISSUE", UpstreamError, True),
    ("UPSTREAM:NO_RESPONSE", UpstreamError, True),
    ("UPSTREAM:RATE_LIMIT", UpstreamError, True),
    ("UPSTREAM:UNKNOWN_ISSUE", UpstreamError, True),
    ("SERVER:INTERNAL", ServerError, True),
    ("SERVER:RECORD_NOT_FOUND", ServerError, False),
    ("SERVER:MULTIPLE_RECORDS_FOUND", ServerError, False),
    ("AUTHENTICATION", AuthenticationError, False),
    ("PERMISSION", SmartcarPermissionError, False),
    ("VALIDATION", ValidationError, False),
    ("VALIDATION:PARAMETER", ValidationError, False),
    ("RESOURCE_NOT_FOUND:PATH", ResourceNotFoundError, False),
    ("CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED", ConnectedServicesAccountError, False),
    ("BILLING:VEHICLE_REQUEST_LIMIT", BillingError, False),
    ("COMPATIBILITY:SMARTCAR_NOT_CAPABLE", CompatibilityError, False),
    ("COMPATIBILITY:PLATFORM_NOT_CAPABLE", CompatibilityError, False),
]


@pytest.mark.parametrize(("kind", "cls", "retryable"), RETRY_TABLE)
def test_error_body_maps_to_class_and_retry_guidance(
    kind: str, cls: type[SmartcarError], retryable: bool
) -> None:
    error = from_kind(kind)
    assert type(error) is cls
    assert error.kind == kind
    assert error.retryable is retryable
    assert error.status == STATUS[kind.partition(":")[0]]
    assert error.request_id == "5dea93a1-3f79-4246-90c5-89610a20471b"


@pytest.mark.parametrize(
    ("kind", "resolution", "requires_reauth"),
    [
        ("PERMISSION", "REAUTHENTICATE", True),
        ("PERMISSION", None, True),
        ("COMPATIBILITY:PLATFORM_NOT_CAPABLE", "REAUTHENTICATE", True),
        ("CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED", None, True),
        ("AUTHENTICATION", None, False),
        ("VEHICLE_STATE:ASLEEP", None, False),
        ("BILLING:ACCOUNT_SUSPENDED", "CONTACT_SUPPORT", False),
    ],
)
def test_requires_reauth_follows_resolution_and_kind(
    kind: str, resolution: str | None, requires_reauth: bool
) -> None:
    assert from_kind(kind, resolution).requires_reauth is requires_reauth


def test_null_code_and_message_format_match_the_sdks() -> None:
    error = from_kind("AUTHENTICATION")
    assert error.code is None
    assert str(error) == "AUTHENTICATION - AUTHENTICATION happened."
    assert str(from_kind("VEHICLE_STATE:ASLEEP")) == (
        "VEHICLE_STATE:ASLEEP - VEHICLE_STATE:ASLEEP happened."
    )


def test_resolution_as_object_with_url_or_as_bare_string() -> None:
    url = "https://connect.smartcar.com/oauth/reauthenticate?vehicle_id=x"
    as_object = error_from_response(
        400,
        body("CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED", None)
        | {"resolution": {"type": "REAUTHENTICATE", "url": url}},
    )
    assert (as_object.resolution, as_object.resolution_url) == ("REAUTHENTICATE", url)
    as_string = error_from_response(403, body("PERMISSION") | {"resolution": "REAUTHENTICATE"})
    assert (as_string.resolution, as_string.resolution_url) == ("REAUTHENTICATE", None)
    missing = error_from_response(409, {k: v for k, v in body("VEHICLE_STATE:ASLEEP").items()
                                       if k != "resolution"})  # fmt: skip
    assert missing.resolution is None


def test_body_as_json_bytes_parses_like_a_mapping() -> None:
    raw = httpx.Response(409, json=body("VEHICLE_STATE:NOT_CHARGING")).content
    error = error_from_response(409, raw)
    assert isinstance(error, VehicleStateError)
    assert error.code == "NOT_CHARGING"


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (502, ServerError, True),
        (503, ServerError, True),
        (504, ServerError, True),
        (500, ServerError, True),
        (429, RateLimitError, True),
        (401, AuthenticationError, False),
        (404, ResourceNotFoundError, False),
        (418, SmartcarError, False),
    ],
)
def test_non_json_body_is_classified_by_status(
    status: int, cls: type[SmartcarError], retryable: bool
) -> None:
    error = error_from_response(status, b"<html><body>Bad Gateway</body></html>")
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.code is None
    assert "Bad Gateway" in error.description


def test_empty_body_and_unknown_type() -> None:
    assert isinstance(error_from_response(500, b""), ServerError)
    unknown = error_from_response(400, {"type": "SOMETHING_NEW", "code": "X", "description": "?"})
    assert type(unknown) is SmartcarError
    assert unknown.kind == "SOMETHING_NEW:X"
    assert unknown.retryable is False


def test_v1_shaped_body_keeps_its_message() -> None:
    error = error_from_response(
        409, {"error": "vehicle_state_error", "message": "Vehicle asleep", "code": "VS_001"}
    )
    assert isinstance(error, VehicleStateError)
    assert error.description == "Vehicle asleep"


def test_oauth_body_is_oauth_error_and_refused_refresh_is_refresh_refused() -> None:
    oauth = {"error": "invalid_request", "error_description": "Invalid code: c0de-1234."}
    exchange = error_from_response(
        400, oauth, grant_type="authorization_code", secrets=["c0de-1234"]
    )
    assert type(exchange) is OAuthError
    assert exchange.error == "invalid_request"
    assert "c0de-1234" not in str(exchange)
    assert exchange.requires_reauth is False

    refused = error_from_response(
        400,
        {"error": "invalid_request", "error_description": "Invalid refresh_token: r3fr3sh."},
        grant_type="refresh_token",
        secrets=["r3fr3sh"],
    )
    assert isinstance(refused, RefreshRefused)
    assert refused.requires_reauth is True
    assert "r3fr3sh" not in str(refused)
    # Our own client credentials being wrong is not the driver's problem.
    bad_client = error_from_response(
        401, {"error": "invalid_client", "error_description": "no"}, grant_type="refresh_token"
    )
    assert type(bad_client) is OAuthError


def test_retry_after_from_headers_of_any_shape() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after(httpx.Headers({"retry-after": "30"})) == 30.0
    assert parse_retry_after({"Retry-After": 999}) == 999.0  # batch item headers (§5)
    assert parse_retry_after({"Retry-After": "Wed, 01 Jan 2025 12:00:45 GMT"}, now) == 45.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    limited = from_kind("RATE_LIMIT:VEHICLE", "RETRY_LATER", headers={"Retry-After": "12"})
    assert limited.retry_after == 12.0


def test_transport_and_reauth_errors_share_the_root() -> None:
    transport = SmartcarTransportError("ConnectError: refused", code="ConnectError")
    assert isinstance(transport, SmartcarError)
    assert transport.retryable is True
    reauth = ReauthRequired(7, "refresh token refused")
    assert isinstance(reauth, SmartcarError)
    assert (reauth.link_id, reauth.requires_reauth, reauth.retryable) == (7, True, False)
