"""The human's view: a live web dashboard of runs, channels, tasks and routines.

    dashboard.py  the Dashboard: its own deck acting as `human:<name>`, templates, the app
    guard.py      who may look (same bind and token rules as the HTTP transport) and CSRF
    pages.py      server-rendered pages and the fragments they are made of
    live.py       server-sent events: fragments re-rendered when the store wakes them
    actions.py    what a person can do (post, reply, cancel, release, fail, invoke), audited
    audit.py      the audit trail, a table in the local store

Served by `agentdeck ui` on its own, and under /ui by `agentdeck serve --http`.
"""

from agentdeck.ui.dashboard import MOUNT, Dashboard

__all__ = ["MOUNT", "Dashboard"]
