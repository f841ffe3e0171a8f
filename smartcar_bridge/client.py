"""Async client for Smartcar Connect, the token endpoint and the Vehicles API v2.0; the v3
client (``smartcar_bridge.v3.client``) sends through the same ``_request``.

Every method raises only ``SmartcarError`` subclasses (see ``smartcar_bridge.errors``):
HTTP error bodies, httpx failures and unreadable success bodies are all translated in
``SmartcarClient._request``, which also retries, backs off and logs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import structlog

from smartcar_bridge import responses
from smartcar_bridge.call_ledger import CallLedger
from smartcar_bridge.errors import (
    CompatibilityError,
    ResourceNotFoundError,
    ServerError,
    SmartcarError,
    SmartcarResponseError,
    SmartcarTransportError,
    error_from_response,
)
from smartcar_bridge.metrics import SmartcarMetrics
from smartcar_bridge.ratelimit import HeldBack, RateLimiter, current_call
from smartcar_bridge.responses import (
    BatchResult,
    Battery,
    Capacity,
    ChargeLimit,
    ChargeStatus,
    CommandResult,
    Location,
    Meta,
    Permissions,
    TokenSet,
    User,
    VehicleInfo,
    VehiclePage,
    Vin,
)

log = structlog.get_logger()

T = TypeVar("T")
Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
Parser = Callable[[Mapping[str, Any], Meta], T]

USER_AGENT = "csms-smartcar-bridge/0.1 (python-httpx)"
PAGE_LIMIT = 50  # §5: the API's maximum page size
# Failures that prove the request never left us: safe to resend even a command.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _auto_retry(error: SmartcarError) -> bool:
    """Retry inside this call? Only errors that clear within seconds.

    §7 says retryable VEHICLE_STATE codes clear "minutes later" and UPSTREAM:RATE_LIMIT needs
    a long back-off; each attempt also counts against the vehicle's billing limit (§9). Those
    keep ``.retryable`` for the caller's scheduler but are not retried here.
    """
    if not error.retryable:
        return False
    return error.type != "VEHICLE_STATE" and error.kind != "UPSTREAM:RATE_LIMIT"


def _vehicle_in(path: str) -> str | None:
    """The vehicle a Vehicles API path is about (``.../vehicles/{id}/...``), if any."""
    _, found, rest = path.partition("/vehicles/")
    if not found:
        return None
    vehicle_id = rest.split("/", 1)[0]
    return vehicle_id or None


def _capacity_unsupported(error: SmartcarError) -> bool:
    # nominal_capacity missing for this car, or Smartcar has no record: try the old endpoint.
    if isinstance(error, ResourceNotFoundError | CompatibilityError):
        return True
    return isinstance(error, ServerError) and error.code == "RECORD_NOT_FOUND"


class SmartcarClient:
    """Connect URL, code/refresh exchange and v2.0 vehicle calls over one pooled httpx client.

    Raises: ``SmartcarError`` subclasses only (``OAuthError``/``RefreshRefused`` from the
    token endpoint, ``SmartcarTransportError`` without a response, the v2 types otherwise).
    """

    def __init__(
        self,
        api_url: str,
        auth_url: str,
        connect_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        http: httpx.AsyncClient | None = None,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_retry_after: float = 60.0,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        command_timeout: float = 310.0,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        seed: int | None = None,
        metrics: SmartcarMetrics | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.auth_url = auth_url.rstrip("/")
        self.connect_url = connect_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20)
        )
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._max_retry_after = max_retry_after
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        # §1: commands can take minutes; the SDKs wait 310 s for the answer.
        self._command_timeout = httpx.Timeout(
            timeout, connect=connect_timeout, read=command_timeout
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._metrics = metrics
        # Remembers Smartcar's limits across calls; None only in tests of the raw client.
        self.limiter = limiter
        # Calls per plug-in decision and per session (GET /api/plug-ins).
        self.ledger = CallLedger()

    async def __aenter__(self) -> SmartcarClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    # --- Connect and the token endpoint (§2, §3) -------------------------------------------

    def authorize_url(
        self,
        state: str,
        scope: Sequence[str],
        *,
        single_select: bool | None = None,
        make: str | None = None,
        mode: str | None = None,
        approval_prompt: str | None = None,
    ) -> str:
        """The Connect URL to send the driver's browser to."""
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scope),
            "state": state,
        }
        if single_select is not None:
            params["single_select"] = "true" if single_select else "false"
        if make is not None:
            params["make"] = make
        if mode is not None:
            params["mode"] = mode
        if approval_prompt is not None:
            params["approval_prompt"] = approval_prompt
        return f"{self.connect_url}/oauth/authorize?{urlencode(params, quote_via=quote)}"

    async def exchange_code(self, code: str, scopes: Sequence[str] = ()) -> TokenSet:
        """Trade a Connect ``code`` for a token pair; ``scopes`` are recorded on the result."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        # A code is single-use: resend only when the first try surely never arrived.
        return await self._token_request(form, tuple(scopes), secrets=(code,), idempotent=False)

    async def refresh(self, refresh_token: str, scopes: Sequence[str] = ()) -> TokenSet:
        """Rotate the pair; a refused token raises ``RefreshRefused``."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        # Resending is safe: the old refresh token keeps working for a grace period (§3).
        return await self._token_request(
            form, tuple(scopes), secrets=(refresh_token,), idempotent=True
        )

    async def _token_request(
        self,
        form: dict[str, str],
        scopes: tuple[str, ...],
        *,
        secrets: tuple[str, ...],
        idempotent: bool,
    ) -> TokenSet:
        return await self._request(
            "POST",
            f"{self.auth_url}/oauth/token",
            lambda body, meta: responses.token_set(body, meta, scopes),
            form=form,
            secrets=secrets,
            idempotent=idempotent,
        )

    # --- Vehicles API v2.0 (§5) ------------------------------------------------------------

    async def user(self, token: str) -> User:
        return await self._request("GET", f"{self.api_url}/user", responses.user, token=token)

    async def vehicles(self, token: str, limit: int = PAGE_LIMIT, offset: int = 0) -> VehiclePage:
        return await self._request(
            "GET",
            f"{self.api_url}/vehicles",
            responses.vehicle_page,
            token=token,
            params={"limit": limit, "offset": offset},
        )

    async def all_vehicle_ids(self, token: str) -> list[str]:
        """Every vehicle id the token covers, paging until ``count`` is reached."""
        ids: list[str] = []
        while True:
            page = await self.vehicles(token, PAGE_LIMIT, len(ids))
            ids.extend(page.ids)
            if not page.ids or len(ids) >= page.count:
                return ids

    async def vehicle_info(self, token: str, vehicle_id: str) -> VehicleInfo:
        return await self._get(token, vehicle_id, "", responses.vehicle_info)

    async def vin(self, token: str, vehicle_id: str) -> Vin:
        return await self._get(token, vehicle_id, "/vin", responses.vin)

    async def battery(self, token: str, vehicle_id: str) -> Battery:
        return await self._get(token, vehicle_id, "/battery", responses.battery)

    async def battery_capacity(self, token: str, vehicle_id: str) -> Capacity:
        """``/battery/nominal_capacity``, else the unmaintained ``/battery/capacity`` (§5)."""
        try:
            nominal = await self._get(
                token, vehicle_id, "/battery/nominal_capacity", responses.nominal_capacity
            )
        except SmartcarError as exc:
            if not _capacity_unsupported(exc):
                raise
            return await self._get(
                token, vehicle_id, "/battery/capacity", responses.legacy_capacity
            )
        if nominal.capacity_kwh is not None:
            return nominal
        # Ambiguous (several variants, ``url`` lets the driver choose): the old endpoint may know.
        try:
            return await self._get(
                token, vehicle_id, "/battery/capacity", responses.legacy_capacity
            )
        except SmartcarError as exc:
            if not _capacity_unsupported(exc):
                raise
            return nominal

    async def charge_status(self, token: str, vehicle_id: str) -> ChargeStatus:
        return await self._get(token, vehicle_id, "/charge", responses.charge_status)

    async def charge_limit(self, token: str, vehicle_id: str) -> ChargeLimit:
        return await self._get(token, vehicle_id, "/charge/limit", responses.charge_limit)

    async def location(self, token: str, vehicle_id: str) -> Location:
        return await self._get(token, vehicle_id, "/location", responses.location)

    async def start_charge(self, token: str, vehicle_id: str) -> CommandResult:
        return await self._charge(token, vehicle_id, "START")

    async def stop_charge(self, token: str, vehicle_id: str) -> CommandResult:
        return await self._charge(token, vehicle_id, "STOP")

    async def set_charge_limit(self, token: str, vehicle_id: str, limit: float) -> CommandResult:
        """``POST /charge/limit`` with a fraction 0.5..1 (§5)."""
        return await self._request(
            "POST",
            self._vehicle_url(vehicle_id, "/charge/limit"),
            responses.command_result,
            token=token,
            json_body={"limit": limit},
            timeout=self._command_timeout,
            idempotent=False,
        )

    async def subscribe_webhook(
        self, token: str, vehicle_id: str, webhook_id: str
    ) -> CommandResult:
        """``POST /vehicles/{id}/webhooks/{webhook_id}`` (§5, v2.0 subscriptions)."""
        return await self._request(
            "POST",
            self._vehicle_url(vehicle_id, f"/webhooks/{quote(webhook_id, safe='')}"),
            lambda body, meta: CommandResult("success", None, meta),
            token=token,
        )

    async def unsubscribe_webhook(
        self, management_token: str, vehicle_id: str, webhook_id: str
    ) -> CommandResult:
        """``DELETE /vehicles/{id}/webhooks/{webhook_id}`` (§5): with the application
        management token as the Bearer, not the car's access token."""
        return await self._request(
            "DELETE",
            self._vehicle_url(vehicle_id, f"/webhooks/{quote(webhook_id, safe='')}"),
            lambda body, meta: CommandResult("success", None, meta),
            token=management_token,
        )

    async def permissions(self, token: str, vehicle_id: str) -> Permissions:
        """Every permission granted for the vehicle, across pages."""
        found: list[str] = []
        meta: Meta | None = None
        while True:
            page_meta, names, count = await self._request(
                "GET",
                self._vehicle_url(vehicle_id, "/permissions"),
                lambda b, m: (m, [str(p) for p in b["permissions"]], int(b["paging"]["count"])),
                token=token,
                params={"limit": PAGE_LIMIT, "offset": len(found)},
            )
            meta = meta or page_meta
            found.extend(names)
            if not names or len(found) >= count:
                return Permissions(tuple(found), meta)

    async def batch(self, token: str, vehicle_id: str, paths: Sequence[str]) -> BatchResult:
        """Several reads in one call; each item succeeds or fails on its own (§5)."""
        return await self._request(
            "POST",
            self._vehicle_url(vehicle_id, "/batch"),
            responses.batch_result,
            token=token,
            json_body={"requests": [{"path": path} for path in paths]},
            unit_system=True,
        )

    async def disconnect(self, token: str, vehicle_id: str) -> CommandResult:
        """Revoke this application's access to the vehicle."""
        return await self._request(
            "DELETE",
            self._vehicle_url(vehicle_id, "/application"),
            responses.command_result,
            token=token,
        )

    def _vehicle_url(self, vehicle_id: str, suffix: str) -> str:
        return f"{self.api_url}/vehicles/{quote(vehicle_id, safe='')}{suffix}"

    async def _get(self, token: str, vehicle_id: str, suffix: str, parse: Parser[T]) -> T:
        return await self._request("GET", self._vehicle_url(vehicle_id, suffix), parse, token=token)

    async def _charge(self, token: str, vehicle_id: str, action: str) -> CommandResult:
        return await self._request(
            "POST",
            self._vehicle_url(vehicle_id, "/charge"),
            responses.command_result,
            token=token,
            json_body={"action": action},
            timeout=self._command_timeout,
            # A command whose answer we lost may have reached the car: never resend it blind.
            idempotent=False,
        )

    # --- the one place that talks HTTP ------------------------------------------------------

    @property
    def client_secret(self) -> str:
        return self._client_secret

    @property
    def command_timeout(self) -> httpx.Timeout:
        """The read timeout for commands (§1: minutes), for the v3 command calls too."""
        return self._command_timeout

    async def request(self, method: str, url: str, parse: Parser[T], **options: Any) -> T:
        """The public door to ``_request`` for the v3 client: same retries, logs, errors."""
        return await self._request(method, url, parse, **options)

    def _headers(
        self, method: str, token: str | None, *, json: bool, units: bool
    ) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if method == "GET" or units:
            headers["SC-Unit-System"] = "metric"
        if json:
            headers["Content-Type"] = "application/json"
        return headers

    async def _request(
        self,
        method: str,
        url: str,
        parse: Parser[T],
        *,
        token: str | None = None,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        unit_system: bool = False,
        idempotent: bool = True,
        secrets: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
        basic_auth: bool = True,
    ) -> T:
        """Send, translate, retry. Returns ``parse(body, meta)``; raises ``SmartcarError``."""
        headers = self._headers(method, token, json=json_body is not None, units=unit_system)
        if extra_headers:
            headers.update(extra_headers)  # v3: sc-user-id (§14.1)
        # §3: the user token endpoint takes HTTP Basic; iam.smartcar.com takes the form (§14.1).
        auth = (self.client_id, self._client_secret) if form is not None and basic_auth else None
        path = httpx.URL(url).path  # the path never holds a token; the query is left out
        grant_type = form.get("grant_type") if form is not None else None
        # Vehicles API calls count against Smartcar's limits; the token endpoint does not.
        limiter = self.limiter if form is None else None
        vehicle_id = _vehicle_in(path)
        purpose = current_call().purpose.value
        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            cause: Exception | None = None
            if form is None:
                self.ledger.check()  # before the limiter: a refused call takes no token
            if limiter is not None:
                try:
                    await limiter.acquire(vehicle_id)
                except HeldBack as held:
                    # Not sent: the service would have refused it. Same retry rules apply.
                    delay = self._delay(held, attempt)
                    log.info(
                        "smartcar.request_held", method=method, path=path, error=held.kind,
                        purpose=purpose, retry_in_s=delay, held_for_s=held.retry_after,
                    )  # fmt: skip
                    if delay is None:
                        raise
                    await self._sleep(delay)
                    continue
            if form is None:
                self.ledger.sent()
            try:
                response = await self._http.request(
                    method, url, params=params, json=json_body, data=form, headers=headers,
                    auth=auth, timeout=timeout or self._timeout,
                )  # fmt: skip
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                cause = exc
                error: SmartcarError = SmartcarTransportError(
                    f"{type(exc).__name__}: {exc}", code=type(exc).__name__
                )
                may_retry = idempotent or isinstance(exc, _UNSENT)
                status, request_id = None, None
            else:
                status = response.status_code
                request_id = response.headers.get("sc-request-id")
                log.info(
                    "smartcar.request", method=method, path=path, status=status,
                    request_id=request_id, attempt=attempt,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )  # fmt: skip
                if response.is_success:
                    if self._metrics is not None:
                        self._metrics.smartcar_call(
                            path, "ok", time.perf_counter() - started, purpose
                        )
                    if limiter is not None:
                        limiter.succeeded()
                    return self._parse(response, parse)
                error = error_from_response(
                    status, response.content, response.headers,
                    grant_type=grant_type, secrets=secrets, now=self._clock(),
                )  # fmt: skip
                error.request_id = error.request_id or request_id
                may_retry = _auto_retry(error)
                if limiter is not None:
                    await limiter.report_failure(vehicle_id, error)
            if self._metrics is not None:
                self._metrics.smartcar_call(
                    path, error.type, time.perf_counter() - started, purpose
                )
            delay = self._delay(error, attempt) if may_retry else None
            log.warning(
                "smartcar.request_failed", method=method, path=path, status=status,
                request_id=error.request_id or request_id, attempt=attempt, error=error.kind,
                retryable=error.retryable, retry_in_s=delay,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )  # fmt: skip
            if delay is None:
                raise error from cause
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, error: SmartcarError, attempt: int) -> float | None:
        """Seconds before the next attempt, or None to give up now."""
        if attempt >= self._max_attempts:
            return None
        if error.retry_after is not None:
            if error.retry_after > self._max_retry_after:
                # Sleeping that long inside one call would stall its caller: let it schedule.
                return None
            if error.kind == "RATE_LIMIT:VEHICLE":
                return error.retry_after  # §7: wait exactly Retry-After, never less
        # Full jitter (AWS "Exponential Backoff and Jitter"): spreads clients that failed together.
        ceiling = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
        backoff = self._rng.uniform(0.0, ceiling)
        return max(backoff, error.retry_after or 0.0)

    def _parse(self, response: httpx.Response, parse: Parser[T]) -> T:
        meta = responses.meta_from_headers(response.headers, self._clock())
        try:
            # A 204 (a v3 DELETE) has no body at all.
            body = response.json() if response.content else {}
            if not isinstance(body, Mapping):
                raise TypeError("body is not a JSON object")
            return parse(body, meta)
        except (ValueError, KeyError, TypeError) as exc:
            # Never echo the body: a token response holds tokens.
            raise SmartcarResponseError(
                f"unexpected {response.status_code} body from {response.request.url.path}: "
                f"{type(exc).__name__}",
                status=response.status_code,
                request_id=meta.request_id,
            ) from exc
