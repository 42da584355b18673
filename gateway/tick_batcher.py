"""Calls made in the same event-loop iteration, sent as one batch.

Under load several requests reach the same step (a cache lookup, a cache store) in one
iteration of the loop; one Redis MGET or pipeline for all of them costs about what one GET
costs. A lone call waits for nothing: its batch goes out as soon as the loop has run what was
already ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class TickBatcher(Generic[T, R]):
    """``await submit(item)`` returns ``run(batch)[i]`` for the item's position in its batch;
    an exception of ``run`` is raised to every caller of that batch. ``run`` runs in a task of
    its own, so a caller that is cancelled never cancels the others' batch."""

    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._run = run
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._items:
            loop.call_soon(self._dispatch)
        self._items.append(item)
        self._futures.append(future)
        return await future

    def _dispatch(self) -> None:
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        task = asyncio.get_running_loop().create_task(self._send(items, futures))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._run(items)
        except Exception as error:  # noqa: BLE001 - handed to every caller of the batch
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (the loop is closing): so are its callers
            for future in futures:
                future.cancel()
            raise
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)
