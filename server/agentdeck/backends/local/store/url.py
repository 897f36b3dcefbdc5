"""What a store URL names: its dialect, its SQLite file, and how to show it without a password.

Stdlib only: the supervisor imports this module and must start fast.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from agentdeck.errors import ConfigError

__all__ = ["describe_store", "is_postgres", "sqlite_path"]


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in ("postgres", "postgresql")


def sqlite_path(url: str | None, data_dir: Path) -> Path:
    """The SQLite file of a store URL: none means `agentdeck.db` in the data dir.

    Raises:
        ConfigError: a URL that is neither sqlite nor postgresql.
    """
    if not url:
        return data_dir / "agentdeck.db"
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not parts.path:
        raise ConfigError(f"store: {describe_store(url)} is not a store URL; use postgresql://user@host/db or sqlite:///path/to/agentdeck.db")
    if parts.path.startswith("/"):
        return Path("/" + parts.path.lstrip("/"))  # sqlite:///abs and sqlite:////abs alike
    return data_dir / parts.path  # sqlite:name.db, relative to the data dir


def describe_store(url: str | None) -> str:
    """The store for humans and logs: scheme, host and database, never a password."""
    if not url:
        return "sqlite (the data dir)"
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return f"sqlite {parts.path}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'store'}://{host}{port}{parts.path or ''}"
