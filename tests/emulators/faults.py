"""Fault injection shared by every emulator.

Wrap an emulator's ASGI app in `FaultInjector` and queue faults for the requests that match:

    app = FaultInjector(starlette_app, error_body=lambda status, msg: {"error": msg})
    app.faults.add(Fault(status=429, retry_after=2, path="/api/agent/spawn", times=1))

Faults can also be queued over HTTP, so a standalone emulator can be driven from outside:

    POST   /_emulator/faults   {"status": 503, "retry_after": 1, "path": "/agent/runs", "times": 2}
    DELETE /_emulator/faults   clears the queue
    GET    /_emulator/stats    requests seen (method, path, status) and distinct client connections

Kinds of fault: an HTTP error status (with Retry-After when given), a delay before the real
answer (`delay`), a connection dropped after the headers (`drop`), and a 200 whose body is not
JSON (`malformed`). A fault without `status`, `drop` or `malformed` only delays.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorBody = Callable[[int, str], Any]

CONTROL_PREFIX = "/_emulator"


class DroppedConnection(Exception):
    """Raised inside the server to abort a response half-way, as a broken connection would."""


@dataclass
class Fault:
    """One fault, applied to the next `times` requests that match `method` and `path`."""

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    method: str | None = None
    path: str | None = None  # a prefix of the request path; None matches every path
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path is None or path.startswith(self.path)


@dataclass
class Faults:
    """The queue of pending faults and what the emulator has seen."""

    pending: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)

    def add(self, fault: Fault) -> None:
        self.pending.append(fault)

    def clear(self) -> None:
        self.pending.clear()

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.pending:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.pending.remove(fault)
                return fault
        return None

    def count(self, method: str, path: str) -> int:
        """How many requests with this method reached this exact path."""
        return sum(1 for r in self.requests if r["method"] == method and r["path"] == path)


def _default_error_body(status: int, message: str) -> Any:
    return {"error": message}


class FaultInjector:
    """ASGI middleware that injects queued faults and serves the /_emulator control routes."""

    def __init__(self, app: ASGIApp, error_body: ErrorBody = _default_error_body) -> None:
        self.app = app
        self.error_body = error_body
        self.faults = Faults()

    def __getattr__(self, name: str) -> Any:
        # Let callers reach the wrapped Starlette app's attributes (state, routes, ...).
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self._control(method, path, receive, send)
            return
        client = scope.get("client")
        if client:
            self.faults.connections.add((client[0], client[1]))
        record: dict[str, Any] = {"method": method, "path": path, "status": None, "faulted": False}
        self.faults.requests.append(record)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        fault = self.faults.take(method, path)
        if fault is None:
            await self.app(scope, receive, recording_send)
            return
        if fault.delay:
            await anyio.sleep(fault.delay)
        record["faulted"] = fault.drop or fault.malformed or fault.status is not None  # the platform never acted
        if fault.drop:
            await recording_send({"type": "http.response.start", "status": 200, "headers": _json_headers(1024)})
            await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})
            raise DroppedConnection(f"emulator dropped {method} {path} on purpose")
        if fault.malformed:
            await _respond(recording_send, 200, b'{"this is": not json', [])
            return
        if fault.status is not None:
            headers = []
            if fault.retry_after is not None:
                headers.append((b"retry-after", _seconds(fault.retry_after).encode()))
            body = json.dumps(self.error_body(fault.status, "injected fault")).encode()
            await _respond(recording_send, fault.status, body, headers)
            return
        await self.app(scope, receive, recording_send)

    async def _control(self, method: str, path: str, receive: Receive, send: Send) -> None:
        if path == f"{CONTROL_PREFIX}/faults" and method == "POST":
            body = await _read_body(receive)
            self.faults.add(Fault(**json.loads(body or b"{}")))
            await _respond(send, 201, json.dumps({"pending": len(self.faults.pending)}).encode(), [])
        elif path == f"{CONTROL_PREFIX}/faults" and method == "DELETE":
            self.faults.clear()
            await _respond(send, 204, b"", [])
        elif path == f"{CONTROL_PREFIX}/faults" and method == "GET":
            pending = [asdict(f) for f in self.faults.pending]
            await _respond(send, 200, json.dumps(pending).encode(), [])
        elif path == f"{CONTROL_PREFIX}/stats" and method == "GET":
            stats = {"requests": self.faults.requests, "connections": len(self.faults.connections)}
            await _respond(send, 200, json.dumps(stats).encode(), [])
        else:
            await _respond(send, 404, b'{"error": "unknown emulator control route"}', [])


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json_headers(length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    all_headers = headers + ([] if status == 204 else _json_headers(len(body)))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body if status != 204 else b""})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
