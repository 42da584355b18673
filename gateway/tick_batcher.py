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

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        on_unawaited: Callable[[Exception | None, int], object] | None = None,
    ) -> None:
        """``on_unawaited(error, n)``: told how each batch with ``n`` items of
        :meth:`submit_nowait` ended (``error`` None: it succeeded)."""
        self._run = run
        self._on_unawaited = on_unawaited
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R] | None] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._add(item, future)
        return await future

    def submit_nowait(self, item: T) -> None:
        """Adds ``item`` to the current batch without waiting for its result."""
        self._add(item, None)

    def _add(self, item: T, future: asyncio.Future[R] | None) -> None:
        if not self._items:
            asyncio.get_running_loop().call_soon(self._dispatch)
        self._items.append(item)
        self._futures.append(future)

    def _dispatch(self) -> None:
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        task = asyncio.get_running_loop().create_task(self._send(items, futures))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, items: list[T], futures: list[asyncio.Future[R] | None]) -> None:
        unawaited = futures.count(None)
        try:
            results = await self._run(items)
        except Exception as error:  # noqa: BLE001 - handed to every caller of the batch
            for future in futures:
                if future is not None and not future.done():
                    future.set_exception(error)
            if unawaited and self._on_unawaited is not None:
                self._on_unawaited(error, unawaited)
            return
        except BaseException:  # cancelled (the loop is closing): so are its callers
            for future in futures:
                if future is not None:
                    future.cancel()
            raise
        for future, result in zip(futures, results, strict=True):
            if future is not None and not future.done():
                future.set_result(result)
        if unawaited and self._on_unawaited is not None:
            self._on_unawaited(None, unawaited)
