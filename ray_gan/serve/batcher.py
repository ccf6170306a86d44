"""Batching by image count, while the forward pass is busy ("natural" batching).

A replica's sub-requests wait while the forward thread works; when it is free, it takes
the waiting sub-requests in arrival order — whole ones, as many as fit in
``max_images`` (at least one) — and renders them in one call. So batches are as large as
the load makes them, with no wait at all on an idle replica (unless ``wait_s`` asks for
one).

Why not ``@serve.batch(batch_size_fn=...)``: Ray Serve 2.60's batch queue forms the next
batch as soon as the previous one *starts*, not when it finishes; batches then queue on
``max_concurrent_batches``. Requests that arrive one by one — closed-loop HTTP clients —
each become a batch of their own: measured here with 16 clients on a 2-core machine,
every batch held one sub-request (15 requests/s). This queue forms a batch only when the
forward thread can take it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from typing import Any, Callable


class ImageBatcher:
    """``run(items) -> results`` (one result per item; an exception *returned* as a result
    fails only its item) runs on ``executor`` for each batch."""

    def __init__(self, run: Callable[[list], list], executor: Executor, max_images: int, wait_s: float = 0.0,
                 on_batch: Callable[[int, int], None] | None = None, max_items: int | None = None) -> None:
        """``max_items=1``: no batching (one sub-request per call), for comparison."""
        self.run, self.executor, self.max_images, self.wait_s = run, executor, max_images, wait_s
        self.max_items = max_items
        self.on_batch = on_batch  # (images, queued images left) per batch: metrics
        self._queue: deque[tuple[Any, int, asyncio.Future]] = deque()
        self.queued_images = 0
        self._busy = False

    async def submit(self, item: Any, images: int) -> Any:
        """Render ``item`` (``images`` images) in some batch; its result."""
        if images > self.max_images:
            raise ValueError(f"{images} images exceed a batch of {self.max_images}")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((item, images, fut))
        self.queued_images += images
        if not self._busy:
            self._busy = True
            loop.create_task(self._drain())
        return await fut

    def _take(self) -> list[tuple[Any, int, asyncio.Future]]:
        batch, size = [], 0
        while self._queue and (not batch or (size + self._queue[0][1] <= self.max_images
                                             and (self.max_items is None or len(batch) < self.max_items))):
            item, n, fut = self._queue.popleft()
            self.queued_images -= n
            if fut.cancelled():  # its caller gave up (timeout): not rendered
                continue
            batch.append((item, n, fut))
            size += n
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.wait_s > 0 and self.queued_images < self.max_images:
                    deadline = time.monotonic() + self.wait_s
                    while self.queued_images < self.max_images and time.monotonic() < deadline:
                        await asyncio.sleep(min(0.001, self.wait_s))
                batch = self._take()
                if not batch:
                    continue
                if self.on_batch:
                    self.on_batch(sum(n for _, n, _ in batch), self.queued_images)
                try:
                    results = await loop.run_in_executor(self.executor, self.run, [i for i, _, _ in batch])
                except Exception as e:  # noqa: BLE001 - run itself failed: every item of the batch fails
                    results = [e] * len(batch)
                for (_, _, fut), result in zip(batch, results):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._busy = False
