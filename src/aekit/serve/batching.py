"""Micro-batching: concurrent requests for the same model and endpoint share one forward pass.

Each :class:`MicroBatcher` owns a queue and one worker coroutine. The worker takes the first
waiting request, adds every request that queued meanwhile (and, with ``window_ms > 0``, those
arriving within that window) up to ``max_batch`` samples, concatenates their inputs, runs the
function once in a thread (off the event loop) and hands each request its rows of the result.
With ``window_ms = 0`` batches form only from requests that arrived while the previous batch
was computing; with a window, the worker waits for more only while other requests are in flight
(the app counts them), so a lone request is never delayed.

The merged pass gives each request the same numbers as running it alone (the models score
every sample independently; float rounding in the matrix products may differ in the last bits).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a batch function: (n, ...) inputs -> dict of per-sample arrays (first axis n) or None values
BatchFn = Callable[[np.ndarray], dict[str, Any]]


@dataclass
class _Item:
    x: np.ndarray
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters for /v1/models and the benchmark: how much merging happened."""

    requests: int = 0
    batches: int = 0
    samples: int = 0
    max_batch_requests: int = 0
    compute_s: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "batches": self.batches, "samples": self.samples,
            "mean_requests_per_batch": round(self.requests / self.batches, 3) if self.batches else None,
            "max_requests_per_batch": self.max_batch_requests, "compute_s": round(self.compute_s, 4),
        }


class MicroBatcher:
    """Merge concurrent calls of ``fn`` on arrays into one call.

    Parameters
    ----------
    fn : callable ``(n, ...) array -> dict[str, array | None]``; every array value's first axis
        has one entry per input row, so each request gets its slice back.
    executor : where ``fn`` runs (a thread pool); None uses the loop's default executor.
    window_ms : how long to wait for more requests after the first (0: only those already queued).
        The wait is skipped when ``in_flight()`` (requests the server is handling) says no other
        request could join, so a lone request is never delayed.
    max_batch : at most this many samples per merged call (one larger request still runs whole).
    """

    def __init__(self, fn: BatchFn, *, executor: Executor | None = None, window_ms: float = 0.0,
                 max_batch: int = 256, in_flight: Callable[[], int] | None = None) -> None:
        self.fn = fn
        self.in_flight = in_flight
        self.executor = executor
        self.window_s = max(0.0, float(window_ms)) / 1000.0
        self.max_batch = max(1, int(max_batch))
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_worker(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop or self._worker is None or self._worker.done():
            # a new event loop (tests run one per client) gets a fresh queue and worker
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        return self._queue

    async def submit(self, x: np.ndarray) -> dict[str, Any]:
        """Run ``fn`` on ``x`` (n rows), merged with whatever else is waiting; returns x's slice."""
        queue = self._ensure_worker()
        fut = asyncio.get_running_loop().create_future()
        await queue.put(_Item(x, fut))
        return await fut

    async def _collect(self, first: _Item) -> list[_Item]:
        assert self._queue is not None
        items, n = [first], len(first.x)
        deadline = time.perf_counter() + self.window_s
        while n < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0 or (self.in_flight is not None and self.in_flight() <= len(items)):
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except (asyncio.TimeoutError, TimeoutError):
                    break
            if item.future.cancelled():
                continue
            if n + len(item.x) > self.max_batch:
                # too big to join: push it back to lead the next batch
                self._queue.put_nowait(item)
                break
            items.append(item)
            n += len(item.x)
        return items

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if first.future.cancelled():
                continue
            items = await self._collect(first)
            x = items[0].x if len(items) == 1 else np.concatenate([it.x for it in items])
            t0 = time.perf_counter()
            try:
                out = await loop.run_in_executor(self.executor, self.fn, x)
            except Exception as err:  # noqa: BLE001 - handed to the waiting requests
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(err)
                continue
            finally:
                st = self.stats
                st.compute_s += time.perf_counter() - t0
            st = self.stats
            st.batches += 1
            st.requests += len(items)
            st.samples += len(x)
            st.max_batch_requests = max(st.max_batch_requests, len(items))
            st.sizes[len(items)] = st.sizes.get(len(items), 0) + 1
            lo = 0
            for it in items:
                hi = lo + len(it.x)
                part = {k: (None if v is None else v[lo:hi]) for k, v in out.items()}
                lo = hi
                if not it.future.done():
                    it.future.set_result(part)

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._worker
        self._worker = None
        self._queue = None


class Batchers:
    """One :class:`MicroBatcher` per key (model, endpoint, options), created on first use."""

    def __init__(self, *, enabled: bool, executor: Executor | None, window_ms: float, max_batch: int) -> None:
        self.in_flight = 0  # model requests being handled (kept by the app's middleware)
        self.enabled = enabled
        self.executor = executor
        self.window_ms = window_ms
        self.max_batch = max_batch
        self._by_key: dict[tuple, MicroBatcher] = {}

    async def run(self, key: tuple, fn: BatchFn, x: np.ndarray) -> dict[str, Any]:
        """``fn(x)``, merged with concurrent calls of the same ``key`` when batching is on."""
        if not self.enabled:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, fn, x)
        b = self._by_key.get(key)
        if b is None:
            b = self._by_key[key] = MicroBatcher(fn, executor=self.executor, window_ms=self.window_ms,
                                                 max_batch=self.max_batch, in_flight=lambda: self.in_flight)
        return await b.submit(x)

    def stats(self) -> dict[str, Any]:
        return {"/".join(map(str, k)): b.stats.to_dict() for k, b in self._by_key.items()}

    async def aclose(self) -> None:
        for b in self._by_key.values():
            await b.aclose()
