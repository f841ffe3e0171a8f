"""Vehicles API v3, Management API and the client-credentials grant (smartcar-api.md §14).

Every call goes through ``SmartcarClient.request`` (the one request path: retries, logs,
metrics and the translation into ``SmartcarError``); this module only builds URLs, headers
and bodies. Raises: ``SmartcarError`` subclasses only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from smartcar_bridge import responses
from smartcar_bridge.client import SmartcarClient
from smartcar_bridge.errors import ResourceNotFoundError, SmartcarError
from smartcar_bridge.responses import CommandResult
from smartcar_bridge.v3 import choices, parse
from smartcar_bridge.v3.parse import AppToken, CommandExecution, Connection, Signal

# §14.2 command names and bodies: set-limit takes a whole percent, not v2.0's fraction.
START, STOP, SET_LIMIT = "charge/start", "charge/stop", "charge/set-limit"


class V3Client:
    def __init__(
        self, base: SmartcarClient, api_url: str, management_url: str, iam_url: str
    ) -> None:
        self._base = base
        self.api_url = api_url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        self.iam_url = iam_url.rstrip("/")

    @property
    def client_id(self) -> str:
        return self._base.client_id

    async def app_token(self) -> AppToken:
        """``POST iam.smartcar.com/oauth2/token`` with the client credentials in the form."""
        secret = self._base.client_secret
        form = {
            "grant_type": "client_credentials",
            "client_id": self._base.client_id,
            "client_secret": secret,
        }
        return await self._base.request(
            "POST",
            f"{self.iam_url}/oauth2/token",
            parse.app_token,
            form=form,
            basic_auth=False,
            secrets=(secret,),
        )

    def _user(self, user_id: str | None) -> dict[str, str]:
        return {"sc-user-id": user_id} if user_id else {}

    async def signal(self, token: str, user_id: str, vehicle_id: str, code: str) -> Signal:
        url = self.api_url + choices.vehicle_path(vehicle_id, f"/signals/{code}")
        return await self._base.request(
            "GET", url, parse.one_signal, token=token, extra_headers=self._user(user_id)
        )

    async def signals(
        self, token: str, user_id: str, vehicle_id: str, page_size: int | None = None
    ) -> dict[str, Signal]:
        """Every signal of the vehicle, following ``links.next`` (bounded).

        ``page_size`` asks for that many per page (§14.3's ``pageSize``): with
        ``choices.FULL_PAGE`` a car's whole state is one call instead of one per 10 signals.
        """
        url: str | None = self.api_url + choices.vehicle_path(vehicle_id, "/signals")
        if page_size is not None:
            url = f"{url}?page=1&pageSize={page_size}"
        found: dict[str, Signal] = {}
        for _ in range(choices.MAX_PAGES):
            if url is None:
                break
            page, body = await self._base.request(
                "GET", url, parse.signal_page, token=token, extra_headers=self._user(user_id)
            )
            found.update((s.code, s) for s in page)
            url = choices.next_url(body, url) if page else None
        return found

    async def vehicle(self, token: str, user_id: str, vehicle_id: str) -> parse.VehicleAttributes:
        url = self.api_url + choices.vehicle_path(vehicle_id)
        return await self._base.request(
            "GET", url, parse.vehicle, token=token, extra_headers=self._user(user_id)
        )

    async def command(
        self,
        token: str,
        user_id: str,
        vehicle_id: str,
        name: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> CommandExecution:
        """Send one command; a 200 or 202 both parse into the execution (never assume 202 is
        success: its body decides, §14.2)."""
        url = self.api_url + choices.vehicle_path(vehicle_id, f"/commands/{name}")
        body = {"data": {"attributes": dict(attributes)}} if attributes else None
        return await self._base.request(
            "POST",
            url,
            parse.execution,
            token=token,
            json_body=body,
            extra_headers={**self._user(user_id), "Content-Type": "application/json"},
            timeout=self._base.command_timeout,
            # A command whose answer we lost may have reached the car: never resend it blind.
            idempotent=False,
        )

    async def execution(
        self, token: str, user_id: str, vehicle_id: str, execution_id: str
    ) -> CommandExecution:
        url = self.api_url + choices.execution_path(vehicle_id, execution_id)
        return await self._base.request(
            "GET", url, parse.execution, token=token, extra_headers=self._user(user_id)
        )

    async def connections(
        self, token: str, *, user_id: str | None = None, vehicle_id: str | None = None
    ) -> list[Connection]:
        """``GET /connections`` filtered by user and/or vehicle, every page (§14.5)."""
        params = {}
        if user_id:
            params["filter[userId]"] = user_id
        if vehicle_id:
            params["filter[vehicleId]"] = vehicle_id
        url: str | None = f"{self.api_url}/connections"
        found: list[Connection] = []
        for page_number in range(choices.MAX_PAGES):
            if url is None:
                break
            page, body = await self._base.request(
                "GET",
                url,
                parse.connection_page,
                token=token,
                params=params if page_number == 0 else None,
                extra_headers=self._user(user_id),
            )
            found.extend(page)
            url = choices.next_url(body, url) if page else None
        return found

    async def disconnect(self, token: str, vehicle_id: str) -> None:
        """``DELETE /connections/{vehicleId}``: the application loses the vehicle (§14.5)."""
        await self._base.request(
            "DELETE",
            f"{self.api_url}/connections/{quote(vehicle_id, safe='')}",
            _ignore_body,
            token=token,
        )

    async def subscribe(
        self, token: str, webhook_id: str, user_id: str, vehicle_id: str
    ) -> CommandResult:
        """Subscribe a vehicle to the webhook (Management API, §14.4); 409 = already there."""
        attributes = {"webhookId": webhook_id, "userId": user_id, "vehicleId": vehicle_id}
        try:
            return await self._subscribe(
                token, self.management_url + choices.SUBSCRIPTIONS_PATH, attributes
            )
        except ResourceNotFoundError as exc:
            if exc.code == "VERSION":
                raise
            # The blog's path (§14.4 "Conflicting paths"), tried once when the reference 404s.
            path = choices.BLOG_SUBSCRIPTIONS_PATH.format(webhook_id=webhook_id)
            return await self._subscribe(token, self.management_url + path, attributes)

    async def _subscribe(
        self, token: str, url: str, attributes: Mapping[str, str]
    ) -> CommandResult:
        try:
            return await self._base.request(
                "POST",
                url,
                _subscription,
                token=token,
                json_body={"data": {"attributes": dict(attributes)}},
            )
        except SmartcarError as exc:
            if exc.status == 409:  # third-party code: "already subscribed"
                return CommandResult("already_subscribed", exc.description, _no_meta(exc))
            raise

    async def unsubscribe(self, token: str, webhook_id: str, vehicle_id: str) -> int:
        """Remove the vehicle's subscriptions to the webhook (§14.4: list filtered by both,
        then ``DELETE /subscriptions/{id}``); how many were removed."""
        url = self.management_url + choices.SUBSCRIPTIONS_PATH
        ids = await self._base.request(
            "GET",
            url,
            _subscription_ids,
            token=token,
            params={"filter[vehicleId]": vehicle_id, "filter[webhookId]": webhook_id},
        )
        for subscription_id in ids:
            await self._base.request(
                "DELETE", f"{url}/{quote(subscription_id, safe='')}", _ignore_body, token=token
            )
        return len(ids)


def _subscription_ids(body: Mapping[str, Any], meta: responses.Meta) -> list[str]:
    data = body.get("data")
    if not isinstance(data, list):
        return []
    return [str(item["id"]) for item in data if isinstance(item, Mapping) and item.get("id")]


def _ignore_body(body: Mapping[str, Any], meta: responses.Meta) -> None:
    return None


def _subscription(body: Mapping[str, Any], meta: responses.Meta) -> CommandResult:
    message = (body.get("meta") or {}).get("message")
    return CommandResult("accepted", str(message) if message else None, meta)


def _no_meta(exc: SmartcarError) -> responses.Meta:
    return responses.Meta(exc.request_id, datetime.now(UTC))
