"""Every tool, in the fixed order tools/list shows them, grouped by toolset."""

from agentdeck.tools import agents, channels, files, routines, runs, tasks
from agentdeck.tools.base import ToolSpec, tool

__all__ = ["ALL_TOOLS", "TOOLSETS", "ToolSpec", "tool"]

ALL_TOOLS: list[ToolSpec] = [*agents.TOOLS, *runs.TOOLS, *channels.TOOLS, *tasks.TOOLS, *routines.TOOLS, *files.TOOLS]
TOOLSETS: dict[str, str] = {
    "agents": "list and start agents",
    "runs": "follow, steer and stop runs",
    "channels": "messages between agents",
    "tasks": "queued work under leases",
    "routines": "saved agent invocations",
    "files": "files in a run's session, and the session itself",
}
