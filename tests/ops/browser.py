"""A headless Chromium page driven over the Chrome DevTools Protocol, for the dashboard.

Just what the tests need: navigate, evaluate JavaScript, wait for a condition, click,
take a full-page screenshot, and collect the page's uncaught JavaScript errors so a
test fails on them. Chromium picks a free debugging port and writes it to
``DevToolsActivePort`` in its profile directory; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import TIMEOUT

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
)


class PageError(AssertionError):
    """JavaScript threw, or a condition did not come true in time."""


class Page:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []  # uncaught exceptions and console.error in the page
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            future = self._waiting.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description", str(details)))
            elif message.get("method") == "Runtime.consoleAPICalled":
                if message["params"]["type"] == "error":
                    self.errors.append(
                        " ".join(str(a.get("value")) for a in message["params"]["args"])
                    )

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        async with asyncio.timeout(6 * TIMEOUT):
            answer = await future
        if "error" in answer:
            raise PageError(f"{method}: {answer['error']}")
        return answer["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise PageError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait_for(self, expression: str, timeout: float = 6 * TIMEOUT) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        last: Any = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with contextlib.suppress(PageError):  # mid-navigation: try again
                        last = await self.evaluate(expression)
                        if last:
                            return last
                    await asyncio.sleep(0.1)
        except TimeoutError:
            text = await self.text()
            detail = f"never true: {expression} (last {last!r}); errors: {self.errors}"
            detail += f"; page: {text[:1500]}"
            raise PageError(detail) from None

    async def text(self) -> str:
        return str(await self.evaluate("document.body ? document.body.innerText : ''"))

    async def click(self, selector: str) -> None:
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise PageError(f"nothing to click at {selector}")

    async def fill(self, selector: str, value: str) -> None:
        await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input')); }})()"
        )

    async def screenshot(self, path: Path) -> None:
        """The whole page, not only the window, as PNG."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000)}
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**clip, "scale": 1},
        )
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


@contextlib.asynccontextmanager
async def chromium_page(
    chromium: Path, profile: Path, *, timezone: str = "UTC"
) -> AsyncIterator[Page]:
    """A fresh Chromium (own profile, the given time zone) and its one page."""
    await asyncio.to_thread(profile.mkdir, parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        str(chromium),
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "TZ": timezone},
    )
    try:
        port = await _debugging_port(profile / "DevToolsActivePort", process)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            targets = (await client.get("/json/list")).json()
        target = next(t for t in targets if t["type"] == "page")
        async with connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
            page = Page(ws)
            try:
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                yield page
            finally:
                await page.close()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _debugging_port(marker: Path, process: asyncio.subprocess.Process) -> int:
    async with asyncio.timeout(6 * TIMEOUT):
        while True:
            if process.returncode is not None:
                raise PageError(f"Chromium exited {process.returncode} before listening")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int((await asyncio.to_thread(marker.read_text)).splitlines()[0])
            await asyncio.sleep(0.05)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
