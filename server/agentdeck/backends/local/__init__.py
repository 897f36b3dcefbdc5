"""The embedded local platform: SQLite state, subprocess agents, channels, queues, routines."""
