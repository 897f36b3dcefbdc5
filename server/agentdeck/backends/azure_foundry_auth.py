"""Entra ID bearer tokens for Azure AI Foundry, from azure-identity's DefaultAzureCredential.

azure-identity is optional (`agentdeck[azure]`); it is imported on first use, its blocking
calls run in a worker thread, and a token is renewed five minutes before it expires.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.to_thread

from agentdeck.errors import Unauthorized

__all__ = ["SCOPE", "EntraToken"]

SCOPE = "https://ai.azure.com/.default"
_REFRESH_MARGIN_SECONDS = 300


class EntraToken:
    """Entra ID bearer tokens from DefaultAzureCredential, cached until shortly before expiry."""

    def __init__(self, token_env: str) -> None:
        self.token_env = token_env
        """The variable a static token would come from, named in every refusal as the other way in."""
        self.token: str | None = None
        self._expires_on = 0.0
        self._credential: Any = None
        self._lock: anyio.Lock | None = None

    async def get(self) -> str:
        self._lock = self._lock or anyio.Lock()
        async with self._lock:
            if self.token and time.time() < self._expires_on - _REFRESH_MARGIN_SECONDS:
                return self.token
            try:
                from azure.core.exceptions import ClientAuthenticationError
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise Unauthorized(
                    "No static token is set and azure-identity is not installed: install agentdeck[azure] to sign in with "
                    "Entra ID (az login, managed identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), "
                    f"or set {self.token_env} to a bearer token."
                ) from None
            try:
                if self._credential is None:
                    self._credential = await anyio.to_thread.run_sync(DefaultAzureCredential)
                access = await anyio.to_thread.run_sync(self._credential.get_token, SCOPE)
            except (ClientAuthenticationError, ValueError) as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise Unauthorized(
                    f"Entra ID sign-in failed ({reason}). Run `az login`, configure a managed identity or service principal, "
                    f"or set {self.token_env} to a bearer token."
                ) from None
            self.token, self._expires_on = access.token, float(access.expires_on)
            return self.token

    def close(self) -> None:
        if self._credential is not None:
            self._credential.close()
