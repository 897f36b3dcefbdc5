"""Faithful in-memory emulators of the platforms agentdeck's remote adapters speak to.

Each module `tests/emulators/<name>.py` exposes `create_app(**options) -> Starlette`, keeps
its state in memory, seeds a little data, and wraps itself in `faults.FaultInjector` so any
test can make it misbehave. Run one standalone with `python -m tests.emulators NAME --port N`.
"""

EMULATORS = ("agh", "oz", "archastro", "azure_foundry", "agent_os")
