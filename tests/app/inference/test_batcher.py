"""app.inference.batcher: every job is queued, forming, in flight or answered; every way out tested, with a fake run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.errors import NotReadyError, OverloadedError, QueueTimeoutError
from app.inference.batcher import Batcher


class FakeRun:
    """Doubles each item; records each batch; can be held at a gate, or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return [2 * item for item in items]


def batcher_for(run: FakeRun, **options: Any) -> Batcher[int, int]:
    settings = {"max_batch_size": 4, "max_wait_s": 0.05, "queue_size": 8, "queue_timeout_s": 30.0, **options}
    return Batcher(run, **settings)


def scenario(body: Callable[[Batcher[int, int], FakeRun], Awaitable[None]], **options: Any) -> FakeRun:
    run = FakeRun()

    async def main() -> None:
        batcher = batcher_for(run, **options)
        await batcher.start()
        try:
            await body(batcher, run)
        finally:
            await batcher.stop()

    asyncio.run(main())
    return run


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def test_concurrent_jobs_are_batched_in_order() -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        assert await asyncio.gather(*(batcher.submit(i) for i in range(6))) == [0, 2, 4, 6, 8, 10]

    assert scenario(body).batches == [[0, 1, 2, 3], [4, 5]]


def test_a_full_queue_refuses_at_once() -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        run.gate = asyncio.Event()
        first = asyncio.create_task(batcher.submit(0))
        await run.started.wait()  # the worker is busy; the next two fill the queue
        queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
        await until(lambda: batcher.queue_depth() == 2)
        with pytest.raises(OverloadedError):
            await batcher.submit(3)
        run.gate.set()
        assert await asyncio.gather(first, *queued) == [0, 2, 4]

    scenario(body, queue_size=2)


def test_a_cancelled_queued_job_is_never_computed() -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        run.gate = asyncio.Event()
        first = asyncio.create_task(batcher.submit(0))
        await run.started.wait()
        leaving = asyncio.create_task(batcher.submit(1))
        staying = asyncio.create_task(batcher.submit(2))
        await until(lambda: batcher.queue_depth() == 2)
        leaving.cancel()
        run.gate.set()
        assert await asyncio.gather(first, staying) == [0, 4]

    assert scenario(body).batches == [[0], [2]]


def test_a_job_cancelled_while_its_batch_is_forming_is_dropped() -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        leaving = asyncio.create_task(batcher.submit(1))
        await until(lambda: batcher.jobs()["forming"] == 1)  # taken, waiting (0.3 s) for company
        leaving.cancel()
        staying = asyncio.create_task(batcher.submit(2))
        await until(lambda: batcher.jobs()["forming"] == 2)
        assert await staying == 4

    assert scenario(body, max_wait_s=0.3).batches == [[2]]


def test_a_job_cancelled_in_flight_does_not_disturb_its_batch_or_the_worker() -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        run.gate = asyncio.Event()
        leaving = asyncio.create_task(batcher.submit(1))
        staying = asyncio.create_task(batcher.submit(2))
        await run.started.wait()
        assert batcher.jobs() == {"queued": 0, "forming": 0, "in_flight": 2}
        leaving.cancel()
        run.gate.set()
        assert await staying == 4
        assert await batcher.submit(3) == 6

    scenario(body)


@pytest.mark.parametrize("error", [RuntimeError("boom"), MemoryError()])
def test_a_failed_batch_fails_its_jobs_and_the_worker_serves_on(error: BaseException) -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        run.error = error
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        assert results == [error, error]
        assert batcher.is_running()
        assert await batcher.submit(3) == 6

    scenario(body)


def test_a_job_that_waited_past_the_queue_deadline_gets_503_uncomputed() -> None:
    async def body(batcher: Batcher[int, int], run: FakeRun) -> None:
        run.gate = asyncio.Event()
        first = asyncio.create_task(batcher.submit(0))
        await run.started.wait()
        late = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.15)  # longer than the 0.1 s deadline, while the worker is busy
        run.gate.set()
        assert await first == 0
        with pytest.raises(QueueTimeoutError):
            await late

    assert scenario(body, queue_timeout_s=0.1).batches == [[0]]


@pytest.mark.parametrize("where", ["queued", "forming", "in_flight"])
def test_stop_answers_every_job_wherever_it_is(where: str) -> None:
    async def main() -> None:
        run = FakeRun()
        run.gate = asyncio.Event()
        batcher = batcher_for(run, max_wait_s=5.0 if where == "forming" else 0.0, max_batch_size=2)
        await batcher.start()
        if where == "queued":
            busy = asyncio.create_task(batcher.submit(0))
            await run.started.wait()
        job = asyncio.create_task(batcher.submit(1))
        await until(lambda: batcher.jobs()[where] >= 1)
        await batcher.stop()
        with pytest.raises(NotReadyError):
            await job
        if where == "queued":
            with pytest.raises(NotReadyError):
                await busy

    asyncio.run(main())


def test_a_worker_that_dies_fails_queued_and_forming_jobs_and_refuses_new_ones() -> None:
    async def main() -> None:
        run = FakeRun()
        batcher = batcher_for(run, max_wait_s=5.0, max_batch_size=2)

        async def crashing_next_batch(queue: Any) -> Any:
            batcher._forming = [await queue.get()]
            raise RuntimeError("the worker's own bug")

        batcher._next_batch = crashing_next_batch  # type: ignore[method-assign]
        await batcher.start()
        job = asyncio.create_task(batcher.submit(1))
        with pytest.raises(NotReadyError):
            await asyncio.wait_for(job, 5)
        assert not batcher.is_running()
        with pytest.raises(NotReadyError):
            await batcher.submit(2)
        assert run.batches == []

    asyncio.run(main())
