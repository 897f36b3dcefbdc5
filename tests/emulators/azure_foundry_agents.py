"""Agents and the Responses protocol of the Azure AI Foundry emulator (no HTTP here).

Sources: `azure-ai-projects` 2.10.0 (`build_agents_list_request`, `build_agents_get_request`,
models `AgentDetails`, `AgentVersionDetails`, `AgentObjectVersions`, `_patch.py`
`get_openai_client`), Microsoft's invoke script (`microsoft/GitHub-Copilot-for-Azure`,
`.../foundry-agent/invoke/scripts/invoke_agent_response.py`: create a session, then
`responses.create(input=..., extra_body={"agent_session_id": id})`), its session-management
reference (no session given: the server assigns one), and the OpenAI Responses object
(`id`, `status`, `output[]` messages with `output_text` content, `previous_response_id`).

The emulated hosted agent answers every prompt by quoting it: `You said: "<prompt>"`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.emulators.azure_foundry_state import ApiError, FoundryState

__all__ = ["agent_wire", "create_response", "list_agents"]

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


def _version_wire(state: FoundryState, name: str, version: str) -> dict[str, Any]:
    return {
        "object": "agent.version",
        "id": f"{name}:{version}",  # GUESS: the id format of an agent version is not documented
        "name": name,
        "version": version,
        "description": f"Emulated hosted agent {name}",
        "created_at": state.agent_created[name],
        "metadata": {},
        "definition": {"kind": "hosted"},  # GUESS: a real hosted definition carries its image and resources
        "status": "active",
    }


def agent_wire(state: FoundryState, name: str) -> dict[str, Any]:
    """AgentDetails: `versions.latest` is the newest version (the SDK sample reads its `.version`)."""
    with state.lock:
        versions = state.agents.get(name)
        if versions is None:
            raise ApiError(404, "not_found", f"Agent '{name}' was not found in this project.")
        return {
            "object": "agent",
            "id": name,  # GUESS: the agent id's format is not documented
            "name": name,
            "state": "enabled",
            "configuration_state": "enabled",
            "versions": {"latest": _version_wire(state, name, versions[-1])},
        }


def list_agents(state: FoundryState, *, kind: str | None, limit: int, order: str, after: str | None) -> dict[str, Any]:
    """One page of `GET /agents`: OpenAI-style `{data, first_id, last_id, has_more}`, paged by `after`."""
    with state.lock:
        names = sorted(state.agents, key=lambda n: (state.agent_created[n], n), reverse=order == "desc")
        if kind not in (None, "hosted"):
            names = []  # every emulated agent is a hosted one
        if after is not None:
            names = names[names.index(after) + 1 :] if after in names else []
        page = names[:limit]
        data = [agent_wire(state, n) for n in page]
        return {"data": data, "first_id": page[0] if page else None, "last_id": page[-1] if page else None, "has_more": len(names) > limit}


def _input_text(value: Any) -> str:
    """The text of a Responses `input`: a string, or a list of messages whose content is text or input_text parts."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ApiError(400, "invalid_value", "input must be a string or a list of input items.", param="input")
    parts = []
    for item in value:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") in ("input_text", "text")]
    return "\n".join(parts)


def create_response(state: FoundryState, agent_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """`POST .../agents/{agent}/endpoint/protocols/openai/responses`: one turn in the named session."""
    with state.lock:
        versions = state.agents.get(agent_name)
        if versions is None:
            raise ApiError(404, "not_found", f"Agent '{agent_name}' was not found in this project.")
        if "input" not in body:
            raise ApiError(400, "missing_required_parameter", "input is required.", param="input")
        prompt = _input_text(body["input"])
        session_id = body.get("agent_session_id")
        if session_id is None:
            session = state.create_session(agent_name, versions[-1], ready=True)  # the server assigns a session
        else:
            if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
                raise ApiError(400, "invalid_value", "agent_session_id must be 8-128 letters, digits, '_' or '-'.", param="agent_session_id")
            session = state.get_session(agent_name, session_id)  # GUESS: an unknown session is 404, not created
        previous = body.get("previous_response_id")
        if previous is not None and (previous not in state.responses or state.responses[previous]["agent"] != agent_name):
            # GUESS: OpenAI's answer to an unknown previous_response_id; Foundry's is not documented
            raise ApiError(400, "invalid_value", f"Previous response with id '{previous}' not found.", param="previous_response_id")
        state.touch(session)  # 409 for an ended session, as the file routes answer
        session.ready_at = min(session.ready_at, state.clock.now())  # GUESS: a prompt is served at once, even while creating
        response_id = "resp_" + uuid.uuid4().hex
        response = {
            "id": response_id,
            "object": "response",
            "created_at": state.clock.now(),
            "status": "completed",
            "model": agent_name,  # GUESS: what a hosted agent reports as its model is not documented
            "output": [
                {
                    "type": "message",
                    "id": "msg_" + uuid.uuid4().hex,
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": f'You said: "{prompt}"', "annotations": []}],
                }
            ],
            "previous_response_id": previous,
            "error": None,
            "incomplete_details": None,
        }
        state.responses[response_id] = {"agent": agent_name, "session_id": session.session_id, "body": response}
        return response
