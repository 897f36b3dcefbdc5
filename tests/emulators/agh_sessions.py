"""The AGH daemon's session routes and agent catalog, beside the runtime agent API of `agh.py`.

Source: compozy/agh `8cb155af` (see /work/shared/platforms/agh.md §10):
- routes `internal/api/httpapi/routes.go::registerSessionRoutes` and `registerAgentRoutes` (`GET /api/agents`);
- every session route first checks the session lies in the path's workspace, else 404
  (`core/workspace_scope.go::routeSessionInWorkspace`); these routes read no `X-AGH-*` identity;
- prompt: `httpapi/prompt.go::promptSession` takes `contract.SendPromptRequest` `{message, messages, mode}`;
  no message -> 400 `message is required`; a session not active -> 400 (`statusForSessionError`,
  ErrSessionNotActive); an idle session streams the turn as SSE (`x-vercel-ai-ui-message-stream: v1`,
  first frame `{"type":"start","messageId":<turn id>}`, `core/prompt_stream.go`); a busy session in mode
  `queue` answers 202 `{"prompt": {...queued...}}`; the turn goes on when the client leaves (its execution
  context is `context.WithoutCancel`);
- events: `GET .../events?after_sequence=&limit=&type=&turn_id=` -> `{"events": [SessionEventPayload]}` whose
  `content` is the canonical `agh.session.event.v1` payload (`transcript.MarshalAgentEvent`); event types
  `user_message`, `agent_message`, `done`, ... (`acp/types.go`) and `session_stopped` (`session/session.go`);
- stop: `POST .../stop` -> 204; the session stops with `stop_reason` `user_canceled`
  (`session/stop_reason.go`); delete: `DELETE ...` -> 204 (it stops the session first);
- get: `GET ...` -> `{"session": SessionPayload}` whose `badge` is `running` while a turn is active and
  `idle` once it ended (`session/badge.go::CanonicalBadge`).

The emulated agent is not a model: it answers every prompt by quoting it (GUESS: the words are ours;
a real agent's answer comes from its LLM). A turn ends after `turn_seconds` of emulator time (0: at once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.emulators.agh_state import AghError, AghState, Session, new_id

SCHEMA = "agh.session.event.v1"


def answer_to(prompt: str) -> str:
    """What the emulated agent says back: the prompt, quoted (GUESS: the wording is the emulator's)."""
    return f'You said: "{prompt}"'


@dataclass
class Turn:
    id: str
    message: str
    ends_at: datetime


@dataclass
class Activity:
    """One session's event log and its turn in progress."""

    events: list[dict[str, Any]] = field(default_factory=list)
    turn: Turn | None = None
    queue: list[str] = field(default_factory=list)
    stopped_logged: bool = False


class SessionRoutes:
    """The session routes over one AghState; `turn_seconds` is how long the emulated agent takes."""

    def __init__(self, agh: AghState, *, turn_seconds: float = 0.0, agents: list[dict[str, Any]] | None = None) -> None:
        self.agh = agh
        self.turn_seconds = turn_seconds
        self.agents = agents if agents is not None else []
        self.activity: dict[str, Activity] = {}

    def routes(self) -> list[Route]:
        base = "/api/workspaces/{workspace_id}/sessions/{session_id}"
        return [
            Route("/api/agents", self.list_agents, methods=["GET"]),
            Route("/api/sessions", self.list_sessions, methods=["GET"]),
            Route(base, self.get_session, methods=["GET"]),
            Route(base, self.delete_session, methods=["DELETE"]),
            Route(base + "/stop", self.stop, methods=["POST"]),
            Route(base + "/prompt", self.prompt, methods=["POST"]),
            Route(base + "/events", self.events, methods=["GET"]),
        ]

    # -- state ---------------------------------------------------------------------------------

    def _log(self, session: Session, kind: str, turn_id: str = "", **content: Any) -> None:
        act = self.activity.setdefault(session.id, Activity())
        now = self.agh.clock.now()
        payload = {"schema": SCHEMA, "type": kind, "session_id": session.id, "turn_id": turn_id,
                   "timestamp": _ts(now), **content}
        act.events.append({"id": new_id("evt"), "session_id": session.id, "sequence": len(act.events) + 1,
                           "turn_id": turn_id, "type": kind, "agent_name": session.agent_name,
                           "spawn_depth": (session.lineage or {}).get("spawn_depth", 0),
                           "content": {k: v for k, v in payload.items() if v not in ("", None)},
                           "timestamp": _ts(now)})

    def settle(self, session: Session) -> None:
        """Finish a turn whose time has come, start the next queued prompt, log a stop once."""
        act = self.activity.setdefault(session.id, Activity())
        if session.state == "stopped":
            if act.turn is not None:
                self._log(session, "done", act.turn.id, stop_reason="cancelled")  # GUESS: the stop_reason text
                act.turn = None
            if not act.stopped_logged:
                act.stopped_logged = True
                self._log(session, "session_stopped")
                act.events[-1] |= {"stop_reason": session.stop_reason, "stop_detail": session.stop_detail}
            return
        while act.turn is not None and act.turn.ends_at <= self.agh.clock.now():
            turn = act.turn
            self._log(session, "agent_message", turn.id, text=answer_to(turn.message))
            self._log(session, "done", turn.id, stop_reason="end_turn")  # GUESS: the stop_reason text
            act.turn = None
            if act.queue:
                self._start(session, act.queue.pop(0))

    def _start(self, session: Session, message: str) -> Turn:
        act = self.activity.setdefault(session.id, Activity())
        turn = Turn(new_id("turn"), message, self.agh.clock.now() + timedelta(seconds=self.turn_seconds))
        act.turn = turn
        self._log(session, "user_message", turn.id, text=message)
        return turn

    def busy(self, session_id: str) -> bool:
        act = self.activity.get(session_id)
        return act is not None and act.turn is not None

    def _session(self, request: Request) -> Session:
        self.agh.maintain()
        session = self.agh.sessions.get(request.path_params["session_id"].strip())
        if session is None:
            # GUESS: the wording of both 404 texts (the statuses are from the source).
            raise AghError(404, f"session: session not found: {request.path_params['session_id']}")
        if session.workspace_id != request.path_params["workspace_id"].strip():
            raise AghError(404, "workspace scoped resource not found")
        self.settle(session)
        return session

    # -- handlers ------------------------------------------------------------------------------

    async def list_agents(self, request: Request) -> Response:
        return JSONResponse({"agents": [dict(a) for a in self.agents]})

    async def list_sessions(self, request: Request) -> Response:
        """`GET /api/sessions?workspace=`: every session, or those of one workspace (core/handlers.go::ListSessions)."""
        workspace = (request.query_params.get("workspace") or "").strip()
        with self.agh.lock:
            self.agh.maintain()
            if workspace and workspace not in self.agh.workspaces:
                return _error(AghError(404, f'workspace: workspace not found: "{workspace}"'))
            found = [s for s in self.agh.sessions.values() if not workspace or s.workspace_id == workspace]
            return JSONResponse({"sessions": [self._payload(s) for s in found]})

    def _payload(self, session: Session) -> dict[str, Any]:
        from tests.emulators.agh import session_payload

        self.settle(session)
        payload = session_payload(session)
        turn = self.activity[session.id].turn
        if turn:
            payload["badge"] = "running"
            payload["activity"] = dict(payload.get("activity") or {}, turn_id=turn.id)
        return payload

    async def get_session(self, request: Request) -> Response:
        with self.agh.lock:
            try:
                session = self._session(request)
            except AghError as err:
                return _error(err)
            return JSONResponse({"session": self._payload(session)})

    async def stop(self, request: Request) -> Response:
        with self.agh.lock:
            try:
                session = self._session(request)
            except AghError as err:
                return _error(err)
            # GUESS: stopping a stopped session answers 204 again (the source's Stop on one is not traced).
            if session.state != "stopped":
                self.agh.stop_session(session.id, "user_canceled", "")
            self.settle(session)
        return Response(status_code=204)

    async def delete_session(self, request: Request) -> Response:
        with self.agh.lock:
            try:
                session = self._session(request)
            except AghError as err:
                return _error(err)
            if session.state != "stopped":
                self.agh.stop_session(session.id, "user_canceled", "session deleted")
            del self.agh.sessions[session.id]
            self.activity.pop(session.id, None)
        return Response(status_code=204)

    async def events(self, request: Request) -> Response:
        query = request.query_params
        try:
            after = int(query.get("after_sequence") or 0)
            limit = int(query.get("limit") or 0)
        except ValueError as exc:
            return _error(AghError(400, str(exc)))
        with self.agh.lock:
            try:
                session = self._session(request)
            except AghError as err:
                return _error(err)
            found = [e for e in self.activity[session.id].events if e["sequence"] > after
                     and (not query.get("type") or e["type"] == query["type"])
                     and (not query.get("turn_id") or e["turn_id"] == query["turn_id"])]
        return JSONResponse({"events": found[:limit] if limit > 0 else found})

    async def prompt(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return _error(AghError(400, "invalid request payload"))
        if not isinstance(body, dict):
            return _error(AghError(400, "invalid request payload"))
        message = _message(body)
        if not message:
            return _error(AghError(400, "message is required"))
        mode = (body.get("mode") or "queue").strip()  # GUESS: the daemon's configured default mode is `queue`
        if mode not in ("queue", "interrupt", "steer"):
            return _error(AghError(500, f'session: invalid busy input mode "{mode}"'))
        with self.agh.lock:
            try:
                session = self._session(request)
            except AghError as err:
                return _error(err)
            if session.state != "active":
                # GUESS: the wording (the 400 for ErrSessionNotActive is from the source).
                return _error(AghError(400, f"session: session not active: {session.id} ({session.state})"))
            act = self.activity[session.id]
            if act.turn is not None:
                # GUESS: only `queue` is emulated for a busy session; interrupt and steer queue as well.
                act.queue.append(message)
                entry = new_id("queue")
                return JSONResponse({"prompt": {"status": "queued", "mode": "queue", "queued": True,
                                                "queue_entry_id": entry, "queue_position": len(act.queue)}},
                                    status_code=202)
            turn = self._start(session, message)
            self.settle(session)
        return StreamingResponse(self._stream(session, turn), media_type="text/event-stream",
                                 headers={"x-vercel-ai-ui-message-stream": "v1"})

    async def _stream(self, session: Session, turn: Turn) -> Any:
        yield _frame({"type": "start", "messageId": turn.id})
        while True:
            with self.agh.lock:
                self.settle(session)
                if self.activity.get(session.id, Activity()).turn is not turn:
                    break
            await anyio.sleep(0.05)
        block = f"text-{turn.id}"  # GUESS: the text block id format
        for frame in ({"type": "text-start", "id": block}, {"type": "text-delta", "id": block, "delta": answer_to(turn.message)},
                      {"type": "text-end", "id": block}, {"type": "finish"}):
            yield _frame(frame)
        yield "data: [DONE]\n\n"


def _message(body: dict[str, Any]) -> str:
    """`message`, else the text of the last user entry of `messages` (prompt.go::extractPromptMessage)."""
    message = body.get("message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    for entry in reversed(body.get("messages") or []):
        if not isinstance(entry, dict) or str(entry.get("role", "")).strip() != "user":
            continue
        if str(entry.get("content") or "").strip():
            return str(entry["content"]).strip()
        parts = [str(p.get("text", "")).strip() for p in entry.get("parts") or []
                 if isinstance(p, dict) and str(p.get("type") or "text").strip().lower() == "text"]
        if any(parts):
            return "\n".join(p for p in parts if p)
    return ""


def _frame(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _ts(moment: datetime) -> str:
    from tests.emulators.agh import ts

    return ts(moment) or ""


def _error(err: AghError) -> JSONResponse:
    return JSONResponse({"error": err.message}, status_code=err.status)
