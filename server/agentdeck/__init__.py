"""agentdeck: an MCP server for the everyday operations of agent platforms."""

__version__ = "0.1.0"
__all__ = ["__version__"]
