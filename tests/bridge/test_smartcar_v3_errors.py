"""v3 JSON:API error bodies (smartcar-api.md §8) map onto the same error tree and retry
rules as v2.0 bodies; a retired version and a refused app secret are recognised."""

from __future__ import annotations

from typing import Any

import pytest

from smartcar_bridge.errors import (
    ApiVersionRetired,
    AppCredentialsRefused,
    AuthenticationError,
    BillingError,
    OAuthError,
    RateLimitError,
    ResourceNotFoundError,
    ServerError,
    SmartcarPermissionError,
    UpstreamError,
    VehicleStateError,
    error_from_response,
)


def v3(status: int, error_type: str, code: str | None, **extra: Any) -> dict[str, Any]:
    item = {"status": str(status), "type": error_type, "code": code, "title": "t",
            "detail": f"{error_type} happened", "links": {"about": "https://docs/x"},
            "resolution": {"type": extra.pop("resolution", None)}, **extra}  # fmt: skip
    return {"errors": [item]}


@pytest.mark.parametrize(
    ("status", "error_type", "code", "cls", "retryable"),
    [
        (429, "RATE_LIMIT", "VEHICLE", RateLimitError, True),
        (429, "RATE_LIMIT", "SMARTCAR_API", RateLimitError, True),
        (500, "SERVER", "INTERNAL", ServerError, True),
        (502, "UPSTREAM", "NO_RESPONSE", UpstreamError, True),
        (409, "VEHICLE_STATE", "ASLEEP", VehicleStateError, True),
        (409, "VEHICLE_STATE", "CHARGING_IN_PROGRESS", VehicleStateError, False),
        (401, "AUTHENTICATION", None, AuthenticationError, False),
        (403, "PERMISSION", None, SmartcarPermissionError, False),
        (430, "BILLING", "VEHICLE_REQUEST_LIMIT", BillingError, False),
    ],
)
def test_v3_error_bodies_land_in_the_same_classes_with_the_same_retry_rule(
    status: int, error_type: str, code: str | None, cls: type, retryable: bool
) -> None:
    error = error_from_response(status, v3(status, error_type, code), {"Retry-After": "12"})
    assert type(error) is cls
    assert (error.type, error.code, error.status, error.retryable) == (
        error_type, code, status, retryable)  # fmt: skip
    assert error.description == f"{error_type} happened" and error.doc_url == "https://docs/x"
    assert error.retry_after == 12.0


def test_v3_body_keeps_resolution_request_id_and_user_message() -> None:
    body = v3(403, "PERMISSION", None, resolution="REAUTHENTICATE",
              suggestedUserMessage="Reconnect", meta={"requestId": "r-1"})  # fmt: skip
    error = error_from_response(403, body)
    assert error.requires_reauth and error.resolution == "REAUTHENTICATE"
    assert (error.request_id, error.suggested_user_message) == ("r-1", "Reconnect")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, {"type": "RESOURCE_NOT_FOUND", "code": "VERSION", "description": "gone"}),
        (404, v3(404, "RESOURCE_NOT_FOUND", "VERSION")),
        (410, "<html>Gone</html>"),
    ],
)
def test_a_retired_api_version_is_recognised(status: int, body: Any) -> None:
    error = error_from_response(status, body)
    assert isinstance(error, ApiVersionRetired) and isinstance(error, ResourceNotFoundError)
    assert not error.retryable


def test_a_missing_path_is_not_mistaken_for_a_retired_version() -> None:
    error = error_from_response(404, v3(404, "RESOURCE_NOT_FOUND", "PATH"))
    assert type(error) is ResourceNotFoundError


def test_refused_client_credentials_are_app_credentials_refused_and_redacted() -> None:
    body = {"error": "invalid_client", "error_description": "bad secret s3cr3t"}
    error = error_from_response(401, body, grant_type="client_credentials", secrets=("s3cr3t",))
    assert isinstance(error, AppCredentialsRefused) and not error.retryable
    assert "s3cr3t" not in str(error)
    other = error_from_response(400, {"error": "invalid_request", "error_description": "x"},
                                grant_type="client_credentials")  # fmt: skip
    assert type(other) is OAuthError
