"""Small A2A agents served by the official a2a-sdk reference server, for the A2A backend's tests.

Each agent is an `AgentExecutor` from the SDK's own server package; `create_app` serves one on
both bindings the backend speaks (JSON-RPC at /rpc, HTTP+JSON at /rest) with its agent card at
the standard well-known path. Nothing here is agentdeck code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from a2a.helpers.proto_helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import a2a_pb2 as pb
from starlette.applications import Starlette

__all__ = ["EXECUTORS", "create_app"]


def _text(context: RequestContext) -> str:
    return context.get_user_input()


async def _updater(context: RequestContext, event_queue: EventQueue) -> TaskUpdater:
    """The task's updater; a new task is announced first, as the protocol requires."""
    if context.current_task is None:
        await event_queue.enqueue_event(new_task(context.task_id, context.context_id, pb.TASK_STATE_SUBMITTED, history=[context.message]))
    return TaskUpdater(event_queue, context.task_id, context.context_id)


class Quoter(AgentExecutor):
    """Answers by quoting the message, in a status message and a text artifact."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _updater(context, event_queue)
        await updater.start_work()
        said = f'You said: "{_text(context)}"'
        await updater.add_artifact([pb.Part(text=said)], name="answer")
        await updater.complete(updater.new_agent_message([pb.Part(text=said)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class Streamer(AgentExecutor):
    """Works in several visible steps, then leaves a text, a data and a file artifact."""

    steps = 4

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _updater(context, event_queue)
        await updater.start_work()
        for step in range(1, self.steps + 1):
            await asyncio.sleep(0.2)
            await updater.update_status(pb.TASK_STATE_WORKING, updater.new_agent_message([pb.Part(text=f"step {step} of {self.steps}")]))
        await updater.add_artifact([pb.Part(text="report body")], name="report.txt")
        data = pb.Part()
        data.data.struct_value.update({"score": 7, "ok": True})
        await updater.add_artifact([data], name="result.json")
        await updater.add_artifact([pb.Part(raw=b"\x00\x01binary", filename="blob.bin", media_type="application/octet-stream")], name="blob.bin")
        await updater.complete(updater.new_agent_message([pb.Part(text=f"done: {_text(context)}")]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class Asker(AgentExecutor):
    """Asks for input first; the next message on the same task completes it."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        first = context.current_task is None
        updater = await _updater(context, event_queue)
        if first:
            await updater.requires_input(updater.new_agent_message([pb.Part(text="Which branch?")]))
            return
        await updater.complete(updater.new_agent_message([pb.Part(text=f"Working on {_text(context)}")]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class Forever(AgentExecutor):
    """Works until cancelled."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _updater(context, event_queue)
        await updater.start_work()
        await asyncio.sleep(3600)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class Failer(AgentExecutor):
    """Fails with a reason."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _updater(context, event_queue)
        await updater.failed(updater.new_agent_message([pb.Part(text="the disk is full")]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


EXECUTORS: dict[str, type[AgentExecutor]] = {"quoter": Quoter, "streamer": Streamer, "asker": Asker, "forever": Forever, "failer": Failer}


def card(name: str, base_url: str, *, streaming: bool = True, bindings: tuple[str, ...] = ("JSONRPC", "HTTP+JSON"), bearer: bool = False) -> pb.AgentCard:
    interfaces = [pb.AgentInterface(url=f"{base_url}/rpc" if b == "JSONRPC" else f"{base_url}/rest", protocol_binding=b, protocol_version="1.0") for b in bindings]
    result = pb.AgentCard(
        name=name,
        description=f"test agent {name}",
        version="1.2.3",
        supported_interfaces=interfaces,
        capabilities=pb.AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[pb.AgentSkill(id=f"{name}-skill", name=f"{name} skill", description=f"what {name} does", tags=["test"])],
    )
    if bearer:
        result.security_schemes["bearer"].http_auth_security_scheme.scheme = "Bearer"
        req = result.security_requirements.add()
        req.schemes["bearer"].SetInParent()
    return result


def create_app(name: str, base_url: str, **card_options: Any) -> Starlette:
    agent_card = card(name, base_url, **card_options)
    handler = DefaultRequestHandlerV2(agent_executor=EXECUTORS[name](), task_store=InMemoryTaskStore(), agent_card=agent_card)
    routes = [*create_agent_card_routes(agent_card), *create_jsonrpc_routes(handler, rpc_url="/rpc"), *create_rest_routes(handler, path_prefix="/rest")]
    return Starlette(routes=routes)
