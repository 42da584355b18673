"""Where the rollout state of each model lives: Redis, under the gateway's key prefix, shared by
every replica. Each replica re-reads it on a short interval (gateway/rollout.py) and keeps the
last state it knew while Redis cannot be read; a change is refused while it cannot be written.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from gateway.errors import BackendUnavailable
from gateway.rollout_state import RolloutState

log = logging.getLogger(__name__)


class RolloutStore:
    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self._client = redis_asyncio.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = prefix
        self._timeout_s = timeout_s

    def key(self, model: str) -> str:
        return f"{self._prefix}rollout:{model}"

    async def load(self, model: str) -> RolloutState | None:
        """The stored state; None when there is none. Raises BackendUnavailable when Redis
        cannot be read (the caller keeps what it knew)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._client.get(self.key(model))
        except (RedisError, OSError, TimeoutError) as error:
            raise BackendUnavailable(f"the rollout state store (Redis) cannot be read: {error!r}") from None
        if raw is None:
            return None
        try:
            return RolloutState.from_json(raw)
        except ValueError as error:
            log.error("ignoring the rollout state of %s in Redis (%s): %s", model, self.key(model), error)
            return None

    async def save(self, state: RolloutState) -> None:
        """Raises BackendUnavailable when Redis cannot be written (the change is then refused)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.set(self.key(state.model), state.to_json())
        except (RedisError, OSError, TimeoutError) as error:
            raise BackendUnavailable(f"the rollout state store (Redis) cannot be written: {error!r}") from None

    async def close(self) -> None:
        await self._client.aclose()
