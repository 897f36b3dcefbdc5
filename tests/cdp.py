"""A small Chrome DevTools Protocol client for browser tests: headless Chromium, one page.

Chromium is the distribution's (/usr/bin/chromium, installed by .ci/run); it listens on a
loopback port it picks itself and writes to DevToolsActivePort in its profile folder. The
protocol travels over the `websockets` client; commands are JSON with ids, answered in turn,
and events (such as a JavaScript dialog opening) are kept for the test to inspect.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from websockets.asyncio.client import connect

from tests.helpers import stop_process

__all__ = ["CHROMIUM", "Page", "chromium_page"]

CHROMIUM = os.environ.get("AGENTDECK_TEST_CHROMIUM", "/usr/bin/chromium")
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,860",
]


class CdpError(Exception):
    pass


class Page:
    """One attached page: navigate, evaluate JavaScript, click, type, screenshot."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.session = ""
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            future = self._waiting.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
            elif "method" in message:
                self.events.append(message)

    async def send(self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if not browser:
            message["sessionId"] = self.session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self.ws.send(json.dumps(message))
        with anyio.fail_after(30):
            answer = await future
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails'].get('text')} {result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Poll `expression` until it is truthy; its value. While a page loads it may throw: that counts as not yet."""
        last: CdpError | None = None
        try:
            with anyio.fail_after(timeout):
                while True:
                    try:
                        value = await self.evaluate(expression)
                    except CdpError as exc:
                        value, last = None, exc
                    if value:
                        return value
                    await anyio.sleep(0.1)
        except TimeoutError:
            raise CdpError(f"{expression!r} was not true within {timeout}s" + (f"; last error: {last}" if last else "")) from None

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    async def click(self, selector: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def fill(self, selector: str, text: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(text)}")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))

    def dialogs(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Page.javascriptDialogOpening"]


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    """Headless Chromium with a fresh profile, and one page attached over the DevTools protocol."""
    profile = Path(tempfile.mkdtemp(prefix="agentdeck-chromium-"))
    proc = subprocess.Popen([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        active = profile / "DevToolsActivePort"
        with anyio.fail_after(30):
            while not (active.exists() and len(active.read_text().splitlines()) >= 2):
                if proc.poll() is not None:
                    raise CdpError(f"chromium exited with {proc.returncode}")
                await anyio.sleep(0.1)
        port, path = active.read_text().splitlines()[:2]
        async with connect(f"ws://127.0.0.1:{port}{path}", max_size=64 * 1024 * 1024) as ws:
            page = Page(ws)
            async with anyio.create_task_group() as tg:
                tg.start_soon(page.read)
                target = await page.send("Target.createTarget", {"url": "about:blank"}, browser=True)
                attached = await page.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, browser=True)
                page.session = attached["sessionId"]
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                await page.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": False})
                try:
                    yield page
                finally:
                    tg.cancel_scope.cancel()
    finally:
        stop_process(proc)
        shutil.rmtree(profile, ignore_errors=True)
