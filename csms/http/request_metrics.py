"""Counting HTTP requests for ``/metrics``: an ASGI middleware outside the routers."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms.metrics import OTHER, Metrics


class HttpMetrics:
    """ASGI middleware counting requests by route template, method and status class.

    The route is FastAPI's template (``/api/charge-points/{charge_point_id}``), so a charger
    id never becomes a label; a path no route matched is counted as ``other``.
    """

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics]) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or OTHER
            self._metrics().http_request(template, scope["method"], status)
