"""Dynamic batching in which every job is always in one known place: queued, forming, in flight or answered.

A job enters the bounded queue (or is refused at once: 503 ``overloaded``). The worker takes the first job and
waits at most ``max_wait_s`` for company, up to ``max_batch_size`` jobs: those are *forming*. It then runs the
batch (*in flight*) and answers each job. Whatever happens, no caller waits forever:

- a caller that goes away (its task cancelled) is dropped wherever its job is, and never computed if not yet run;
- a job that waited longer than ``queue_timeout_s`` is answered 503 ``queue_timeout`` without being computed;
- a batch that raises answers each of its jobs with that exception (a 500, or 503 for ``MemoryError``) and the
  worker goes on;
- when the worker stops (``stop()``, or a crash) every job queued, forming or in flight gets 503 ``not_ready``.

Waits use ``asyncio.timeout``, not ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation that
arrives as its inner wait completes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from app.errors import NotReadyError, OverloadedError, QueueTimeoutError

logger = logging.getLogger(__name__)
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]
    enqueued: float = field(default_factory=time.monotonic)


class Batcher(Generic[ItemT, ResultT]):
    """Batches ``submit``-ted items for ``run`` (a list of items -> one result per item, in order)."""

    def __init__(
        self,
        run: Callable[[list[ItemT]], Awaitable[list[ResultT]]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
        queue_timeout_s: float,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self._run, self._observe = run, observe
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self.queue_size, self.queue_timeout_s = queue_size, queue_timeout_s
        self._queue: asyncio.Queue[_Pending[ItemT, ResultT]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._forming: list[_Pending[ItemT, ResultT]] = []
        self._in_flight: list[_Pending[ItemT, ResultT]] = []

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._worker = asyncio.create_task(self._serve(), name="chexnet-batcher")
        self._worker.add_done_callback(self._on_worker_exit)

    async def stop(self) -> None:
        """Stop the worker; every job not yet answered gets 503 ``not_ready``."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    def is_running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def jobs(self) -> dict[str, int]:
        """How many jobs are queued, forming and in flight (for tests and metrics)."""
        return {"queued": self.queue_depth(), "forming": len(self._forming), "in_flight": len(self._in_flight)}

    async def submit(self, item: ItemT) -> ResultT:
        """The result for ``item``; raises OverloadedError at once when the queue is full, NotReadyError when
        the worker is not running, QueueTimeoutError when it waited too long, or what ``run`` raised."""
        if self._queue is None or not self.is_running():
            raise NotReadyError()
        pending: _Pending[ItemT, ResultT] = _Pending(item, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise OverloadedError() from None
        return await pending.future  # a cancelled caller cancels this future: the worker then skips the job

    def _on_worker_exit(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("the batching worker stopped (%s); failing its jobs", type(task.exception()).__name__)
        self._fail_pending()

    def _fail_pending(self) -> None:
        pending = [*self._forming, *self._in_flight]
        self._forming, self._in_flight = [], []
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            if not job.future.done():
                job.future.set_exception(NotReadyError())

    def _still_wanted(self, job: _Pending[ItemT, ResultT]) -> bool:
        """False for a job whose caller left, or that waited too long (answered 503 here, not computed)."""
        if job.future.done():
            return False
        if time.monotonic() - job.enqueued > self.queue_timeout_s:
            job.future.set_exception(QueueTimeoutError())
            return False
        return True

    async def _next_batch(self, queue: asyncio.Queue[_Pending[ItemT, ResultT]]) -> list[_Pending[ItemT, ResultT]]:
        """Up to ``max_batch_size`` wanted jobs, kept in ``_forming`` from the moment each leaves the queue."""
        self._forming = [await queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(self._forming) < self.max_batch_size:
            if queue.empty():
                try:
                    async with asyncio.timeout_at(deadline):
                        self._forming.append(await queue.get())
                except TimeoutError:
                    break
            else:
                self._forming.append(queue.get_nowait())
        return [job for job in self._forming if self._still_wanted(job)]

    async def _serve(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._next_batch(self._queue)
            self._in_flight, self._forming = batch, []
            if not batch:
                continue
            start = time.perf_counter()
            try:
                results = await self._run([job.item for job in batch])
            except Exception as exc:  # a failed batch fails its jobs, not the worker
                logger.error("batch of %d failed (%s)", len(batch), type(exc).__name__)  # no exception text
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                self._in_flight = []
                continue
            # (on cancellation _in_flight stays set, so _fail_pending answers these jobs)
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
            self._in_flight = []
            self._report(len(batch), time.perf_counter() - start)

    def _report(self, size: int, seconds: float) -> None:
        if self._observe is None:
            return
        try:
            self._observe(size, seconds)
        except Exception:  # metrics must never stop the worker
            logger.warning("batch observer failed")
