"""ray_gan.serve.batcher: batches by image count that fill while the forward pass is busy."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ray_gan.serve.batcher import ImageBatcher


class Forward:
    """A stand-in forward pass that blocks until released, recording each batch."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.gate = threading.Event()

    def __call__(self, items: list) -> list:
        self.gate.wait(10)
        self.batches.append(list(items))
        return [ValueError(f"bad {i}") if i == "bad" else f"done {i}" for i in items]


async def _run(batcher: ImageBatcher, fwd: Forward, items: list[tuple[str, int]]) -> list:
    first = asyncio.ensure_future(batcher.submit("first", 4))
    await asyncio.sleep(0.05)  # the first batch is running (held at the gate)
    rest = [asyncio.ensure_future(batcher.submit(i, n)) for i, n in items]
    await asyncio.sleep(0.05)
    fwd.gate.set()
    return await asyncio.gather(first, *rest)


def test_waiting_sub_requests_fill_the_next_batch_by_image_count():
    fwd = Forward()
    batcher = ImageBatcher(fwd, ThreadPoolExecutor(1), max_images=16)
    items = [(f"r{k}", 4) for k in range(6)]  # 24 images wait while the first batch runs
    results = asyncio.run(_run(batcher, fwd, items))
    assert results == ["done first"] + [f"done r{k}" for k in range(6)]
    assert fwd.batches == [["first"], ["r0", "r1", "r2", "r3"], ["r4", "r5"]]  # 16 images, then the rest
    assert batcher.queued_images == 0


def test_without_batching_each_sub_request_runs_alone():
    fwd = Forward()
    batcher = ImageBatcher(fwd, ThreadPoolExecutor(1), max_images=16, max_items=1)
    asyncio.run(_run(batcher, fwd, [("a", 4), ("b", 4)]))
    assert fwd.batches == [["first"], ["a"], ["b"]]


def test_a_failing_item_fails_only_its_own_caller():
    fwd = Forward()
    batcher = ImageBatcher(fwd, ThreadPoolExecutor(1), max_images=16)
    results = asyncio.run(_run(batcher, fwd, [("ok", 4), ("bad", 4)]))
    assert results[1] == "done ok" and isinstance(results[2], ValueError)
    assert fwd.batches[1] == ["ok", "bad"]


def test_a_cancelled_caller_is_not_rendered():
    fwd = Forward()
    batcher = ImageBatcher(fwd, ThreadPoolExecutor(1), max_images=16)

    async def go():
        first = asyncio.ensure_future(batcher.submit("first", 4))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit("gone", 4))
        kept = asyncio.ensure_future(batcher.submit("kept", 4))
        await asyncio.sleep(0.01)
        gone.cancel()  # e.g. its request timed out
        fwd.gate.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(go()) == ["done first", "done kept"]
    assert fwd.batches == [["first"], ["kept"]]


def test_a_sub_request_larger_than_a_batch_is_refused():
    batcher = ImageBatcher(Forward(), ThreadPoolExecutor(1), max_images=8)
    with pytest.raises(ValueError, match="exceed"):
        asyncio.run(batcher.submit("big", 9))
