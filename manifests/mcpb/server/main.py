"""Entry point of the agentdeck MCP bundle: `agentdeck serve` over stdio, or the given command."""

import sys

from agentdeck.cli import main

if __name__ == "__main__":
    main(sys.argv[1:] or ["serve"])
