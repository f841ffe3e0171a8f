"""Every failure at the Smartcar boundary, as one exception hierarchy (smartcar-api.md §3, §7).

The tree::

    SmartcarError                          root: .type .code .status .description .request_id
    │                                      .retry_after .resolution .retryable .requires_reauth
    ├── AuthenticationError                401 AUTHENTICATION: refresh the token, retry once
    ├── SmartcarPermissionError            403 PERMISSION: the user must re-connect
    ├── ValidationError                    400 VALIDATION
    ├── ResourceNotFoundError              404 RESOURCE_NOT_FOUND
    │   └── ApiVersionRetired              404 RESOURCE_NOT_FOUND:VERSION or 410: v2.0 is gone
    ├── ConnectedServicesAccountError      400 CONNECTED_SERVICES_ACCOUNT (not 409)
    ├── VehicleStateError                  409 VEHICLE_STATE (ASLEEP, NOT_CHARGING, ...)
    ├── RateLimitError                     429 RATE_LIMIT (VEHICLE carries Retry-After)
    ├── BillingError                       430 BILLING
    ├── ServerError                        500 SERVER, and any 5xx without a Smartcar body
    ├── CompatibilityError                 501 COMPATIBILITY
    ├── UpstreamError                      502 UPSTREAM (the OEM)
    ├── SmartcarResponseError              a success body we could not read
    ├── SmartcarTransportError             no response at all: connect error, timeout, ...
    ├── OAuthError                         token endpoint, {"error", "error_description"}
    │   ├── RefreshRefused                 the refresh token was refused: user must re-connect
    │   └── AppCredentialsRefused          iam.smartcar.com refused the client id/secret (v3)
    └── ReauthRequired                     raised by TokenStore: this link needs a new Connect

``ReauthRequired`` is a ``SmartcarError`` on purpose, so one ``except SmartcarError`` around a
bridge call covers "Smartcar said no" in every form. ``error_from_response`` is the only place
an HTTP error response becomes one of these, whether the body is v2.0's flat object, v3's
JSON:API ``{"errors": [...]}`` (§8, §14.2: ``status`` as a string) or OAuth's.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

# §7, "Retry guidance": VEHICLE_STATE codes that clear by themselves, minutes later.
RETRYABLE_VEHICLE_STATES = frozenset(
    {
        "ASLEEP",
        "UNREACHABLE",
        "UNKNOWN",
        "LOW_BATTERY",
        "IGNITION_ON",
        "IN_MOTION",
        "VEHICLE_OFFLINE_FOR_SERVICE",
    }
)
# §7: both concern battery capacity and say CONTACT_SUPPORT; retrying changes nothing.
_PERMANENT_SERVER_CODES = frozenset({"RECORD_NOT_FOUND", "MULTIPLE_RECORDS_FOUND"})
# §7: user action through Connect (AUTHENTICATION_FAILED: the OEM password changed).
_REAUTH_KINDS = frozenset(
    {
        "COMPATIBILITY:PLATFORM_NOT_CAPABLE",
        "CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED",
        "CONNECTED_SERVICES_ACCOUNT:PERMISSION",
    }
)
# Used only when the body is not a Smartcar error (a proxy's HTML page, an empty body).
_TYPE_BY_STATUS = {
    400: "VALIDATION",
    401: "AUTHENTICATION",
    403: "PERMISSION",
    404: "RESOURCE_NOT_FOUND",
    409: "VEHICLE_STATE",
    429: "RATE_LIMIT",
    430: "BILLING",
    501: "COMPATIBILITY",
}
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class SmartcarError(Exception):
    """Root of every error raised by the Smartcar client and the token store."""

    default_type: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        description: str,
        *,
        type: str | None = None,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        resolution: str | None = None,
        resolution_url: str | None = None,
        doc_url: str | None = None,
        suggested_user_message: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.type = type or self.default_type
        self.code = code
        self.status = status
        self.description = description
        self.request_id = request_id
        self.retry_after = retry_after
        self.resolution = resolution
        self.resolution_url = resolution_url
        self.doc_url = doc_url
        self.suggested_user_message = suggested_user_message
        self.retryable = is_retryable(self.type, code, status) if retryable is None else retryable
        self.requires_reauth = self._requires_reauth()
        # The SDKs' message format: "TYPE:CODE - description" (":CODE" left out when null).
        kind = self.type if code is None else f"{self.type}:{code}"
        super().__init__(f"{kind} - {description}")

    @property
    def kind(self) -> str:
        """``TYPE:CODE``, or ``TYPE`` when the code is null."""
        return self.type if self.code is None else f"{self.type}:{self.code}"

    def _requires_reauth(self) -> bool:
        return self.resolution == "REAUTHENTICATE" or self.kind in _REAUTH_KINDS


class AuthenticationError(SmartcarError):
    """401: the access token is invalid or expired. Refresh it, then retry once."""

    default_type = "AUTHENTICATION"


class SmartcarPermissionError(SmartcarError):
    """403: a scope is missing; only a new Connect session adds it."""

    default_type = "PERMISSION"

    def _requires_reauth(self) -> bool:
        return True


class ValidationError(SmartcarError):
    default_type = "VALIDATION"


class ResourceNotFoundError(SmartcarError):
    default_type = "RESOURCE_NOT_FOUND"


class ApiVersionRetired(ResourceNotFoundError):
    """The API version we called no longer exists (§14.6): v2.0 after its switch-off."""

    def __init__(self, description: str, **kwargs: Any) -> None:
        kwargs.setdefault("code", "VERSION")
        super().__init__(description, **kwargs)


class ConnectedServicesAccountError(SmartcarError):
    default_type = "CONNECTED_SERVICES_ACCOUNT"


class VehicleStateError(SmartcarError):
    """409: the car refused; ``.retryable`` tells a passing state from a logic outcome."""

    default_type = "VEHICLE_STATE"


class RateLimitError(SmartcarError):
    default_type = "RATE_LIMIT"


class BillingError(SmartcarError):
    default_type = "BILLING"


class ServerError(SmartcarError):
    default_type = "SERVER"


class CompatibilityError(SmartcarError):
    default_type = "COMPATIBILITY"


class UpstreamError(SmartcarError):
    default_type = "UPSTREAM"


class SmartcarResponseError(SmartcarError):
    """A 2xx answer whose body is not what the API documents (not JSON, a field missing)."""

    default_type = "RESPONSE"


class SmartcarTransportError(SmartcarError):
    """No HTTP response: connection refused or reset, timeout, protocol error. Retryable."""

    default_type = "TRANSPORT"

    def __init__(self, description: str, *, code: str | None = None) -> None:
        super().__init__(description, code=code, retryable=True)


class OAuthError(SmartcarError):
    """The token endpoint refused: ``.error`` is the OAuth error code (§3)."""

    default_type = "OAUTH"

    def __init__(self, error: str, description: str, *, status: int | None = None) -> None:
        self.error = error
        super().__init__(description, code=error, status=status, retryable=False)


class RefreshRefused(OAuthError):
    """The refresh token was refused (expired, revoked, rotated away): re-connect needed."""

    def _requires_reauth(self) -> bool:
        return True


class AppCredentialsRefused(OAuthError):
    """The client-credentials grant was refused: the secret is wrong, rotated or revoked."""


class ReauthRequired(SmartcarError):
    """The token store cannot get a valid token for ``link_id``: the user must re-connect."""

    default_type = "REAUTH_REQUIRED"

    def __init__(self, link_id: int, reason: str) -> None:
        self.link_id = link_id
        super().__init__(f"link {link_id}: {reason}", retryable=False)

    def _requires_reauth(self) -> bool:
        return True


ERROR_CLASSES: dict[str, type[SmartcarError]] = {
    cls.default_type: cls
    for cls in (
        AuthenticationError,
        SmartcarPermissionError,
        ValidationError,
        ResourceNotFoundError,
        ConnectedServicesAccountError,
        VehicleStateError,
        RateLimitError,
        BillingError,
        ServerError,
        CompatibilityError,
        UpstreamError,
    )
}


def is_retryable(error_type: str, code: str | None, status: int | None = None) -> bool:
    """§7 "Retry guidance": may the same request succeed later without user action?"""
    if error_type in ("RATE_LIMIT", "UPSTREAM"):
        return True
    if error_type == "SERVER":
        # INTERNAL is RETRY_LATER; a SERVER error without a code is treated like it.
        return code not in _PERMANENT_SERVER_CODES
    if error_type == "VEHICLE_STATE":
        return code in RETRYABLE_VEHICLE_STATES
    if error_type in ERROR_CLASSES:
        # AUTHENTICATION is "refresh, then retry once": a blind retry would fail the same way.
        return False
    return status in _TRANSIENT_STATUSES


def parse_retry_after(
    headers: Mapping[str, Any] | None, now: datetime | None = None
) -> float | None:
    """``Retry-After`` in seconds: an integer (§9), or an HTTP-date (RFC 9110 10.2.3)."""
    if not headers:
        return None
    # Batch items carry plain dicts with any casing and int values (§5); httpx.Headers too.
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _decode(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any] | str:
    if body is None or isinstance(body, Mapping):
        return body or {}
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, Mapping) else text


def _redact(text: str, secrets: Iterable[str]) -> str:
    # The token endpoint echoes what it refused ("Invalid refresh_token: <token>.", §3).
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _resolution(raw: Any) -> tuple[str | None, str | None]:
    # §7: {"type": ..., "url": ...} today; older responses send a bare string.
    if isinstance(raw, Mapping):
        kind, url = raw.get("type"), raw.get("url")
        return (str(kind) if kind else None), (str(url) if url else None)
    return (str(raw) if raw else None), None


def error_from_response(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, Any] | None = None,
    *,
    grant_type: str | None = None,
    secrets: Iterable[str] = (),
    now: datetime | None = None,
) -> SmartcarError:
    """The ``SmartcarError`` for one error response (v2 body, OAuth body, or anything else).

    ``grant_type`` names the token-endpoint grant: a 400 to ``refresh_token`` is
    ``RefreshRefused``. ``secrets`` are removed from descriptions, which may echo them.
    """
    secrets = tuple(secrets)
    data = _decode(body)
    retry_after = parse_retry_after(headers, now)
    if isinstance(data, str):
        return _from_status(status, _redact(data.strip()[:200], secrets), retry_after)
    data = _v3_error(data)
    if "type" not in data and "error" in data and "error_description" in data:
        oauth_cls = _oauth_class(grant_type, status, str(data["error"]))
        description = _redact(str(data.get("error_description") or ""), secrets)
        return oauth_cls(str(data["error"]), description, status=status)
    if not isinstance(data.get("type"), str):
        text = str(data.get("description") or data.get("message") or "")
        return _from_status(status, _redact(text, secrets), retry_after)
    error_type = data["type"]
    code = data.get("code")
    resolution, resolution_url = _resolution(data.get("resolution"))
    cls = ERROR_CLASSES.get(error_type, SmartcarError)
    if _retired(status, error_type, code):
        cls = ApiVersionRetired
    message = data.get("suggestedUserMessage")
    return cls(
        _redact(str(data.get("description") or ""), secrets),
        type=error_type,
        code=str(code) if code else None,
        status=status,
        request_id=str(data["requestId"]) if data.get("requestId") else None,
        retry_after=retry_after,
        resolution=resolution,
        resolution_url=resolution_url,
        doc_url=str(data["docURL"]) if data.get("docURL") else None,
        suggested_user_message=str(message) if message else None,
    )


def _oauth_class(grant_type: str | None, status: int, error: str) -> type[OAuthError]:
    if grant_type == "refresh_token" and status == 400:
        return RefreshRefused
    # §14.1: iam.smartcar.com answers 401 invalid_client for a bad id or secret.
    if grant_type == "client_credentials" and (status == 401 or error == "invalid_client"):
        return AppCredentialsRefused
    return OAuthError


def _retired(status: int, error_type: str | None, code: Any) -> bool:
    # §14.6: 404 RESOURCE_NOT_FOUND:VERSION is how a gone version answers; 410 Gone is the
    # HTTP form of "deprecated and switched off" and is treated the same (unconfirmed).
    return status == 410 or (error_type == "RESOURCE_NOT_FOUND" and code == "VERSION")


def _mapping_or_empty(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _v3_error(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A v3 JSON:API error (``{"errors": [{...}]}``, §8) in the v2 field names.

    The first error decides: every v3 example carries exactly one. ``status`` is a string
    there and ``detail`` holds the description; ``links.about`` is the docs link.
    """
    errors = data.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], Mapping):
        return data
    first = errors[0]
    links = _mapping_or_empty(first.get("links"))
    meta = _mapping_or_empty(first.get("meta"))
    return {
        "type": first.get("type"),
        "code": first.get("code"),
        "description": first.get("detail") or first.get("title") or "",
        "docURL": links.get("about") or first.get("docURL"),
        "requestId": first.get("requestId") or meta.get("requestId"),
        "resolution": first.get("resolution"),
        "suggestedUserMessage": first.get("suggestedUserMessage"),
    }


def _from_status(status: int, description: str, retry_after: float | None) -> SmartcarError:
    """A non-Smartcar body: choose the class from the status alone, code unknown."""
    if status == 410:
        return ApiVersionRetired(description or "HTTP 410", status=status, retryable=False)
    error_type = _TYPE_BY_STATUS.get(status, "SERVER" if status >= 500 else "UNKNOWN")
    cls = ERROR_CLASSES.get(error_type, SmartcarError)
    return cls(
        description or f"HTTP {status}",
        type=error_type,
        status=status,
        retry_after=retry_after,
        # Only a gateway-style status says "try again"; the type alone is a guess here.
        retryable=status in _TRANSIENT_STATUSES,
    )
