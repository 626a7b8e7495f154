"""Feeding a whole array to a streaming meter or processor in bounded pieces."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

_parallel_within_file = True


def file_threads() -> int:
    """How many threads one file's work may spread over (the input's meters, the chain's two
    halves, the closed loops' trials): 2, or 1 once :func:`serial_within_file` was called in
    this process: a batch worker that masters files beside other workers, where splitting
    a file costs CPU the others need (20 three-minute files, ``--jobs 2``, four alternating runs
    each: 40.7 s wall and 78 s CPU with each file on one thread, 43.7 s and 84 s split)."""
    return 2 if _parallel_within_file else 1


def serial_within_file() -> None:
    """Keep each file's work in this process to one thread beside its writer (see
    :func:`file_threads`). The results do not change: only the threads."""
    global _parallel_within_file
    _parallel_within_file = False


def chunks(samples: np.ndarray, frames: int) -> Iterator[np.ndarray]:
    """Consecutive ``(channels, <=frames)`` views of a ``(channels, n)`` array, in order."""
    step = max(1, int(frames))
    for start in range(0, samples.shape[-1], step):
        yield samples[..., start : start + step]


def ahead(blocks: Iterable[np.ndarray], work: Callable[[np.ndarray], np.ndarray]) -> Iterator[np.ndarray]:
    """``work(block)`` for each block, in order, computed in a worker thread one block ahead of
    the consumer: the first half of a chain renders block k + 1 while the caller runs the second
    half on block k. At most two blocks are in flight."""
    with ThreadPoolExecutor(1, thread_name_prefix="mixbridge-ahead") as pool:
        pending: Future | None = None
        try:
            for block in blocks:
                submitted = pool.submit(work, block)
                if pending is not None:
                    yield pending.result()
                pending = submitted
            if pending is not None:
                yield pending.result()
                pending = None
        finally:
            if pending is not None:
                pending.cancel()


class Background:
    """Hand blocks to ``consume`` in one worker thread, in order, while the caller produces the
    next ones: a write pass measures what it writes on the second core. numpy, scipy's FFT,
    libsndfile and pedalboard release the GIL for most of their work.

    At most ``depth`` blocks wait (bounded memory). Leaving the ``with`` block waits for the
    worker; an error raised by ``consume`` is raised again there (or by the next :meth:`put`).
    """

    def __init__(self, consume: Callable[[np.ndarray], None], depth: int = 1):
        self._consume, self._depth = consume, max(1, int(depth))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mixbridge-block")
        self._pending: deque[Future] = deque()

    def put(self, block: np.ndarray) -> None:
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._consume, block))

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if exc_info[0] is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)


@contextmanager
def fanned_out(consumers: Sequence[Callable[[np.ndarray], None]], *,
               here: bool = True) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that gives each block, in order, to every consumer: each in a
    :class:`Background` thread of its own, but the first in the caller's thread when ``here``
    (the meters of a signal side by side: their halves keep separate state). With one thread
    per file (:func:`file_threads`), all of them one after another: in the caller's thread
    when ``here``, else in one Background thread. Leaving the ``with`` block waits for the
    threads and raises a consumer's error."""
    if file_threads() < 2 and len(consumers) > 1:
        def serial(block: np.ndarray, each: Sequence[Callable[[np.ndarray], None]] = tuple(consumers)) -> None:
            for consume in each:
                consume(block)
        consumers = (serial,)
    with ExitStack() as stack:
        local = consumers[:1] if here else []
        workers = [stack.enter_context(Background(consume)) for consume in consumers[len(local):]]

        def give(block: np.ndarray) -> None:
            for worker in workers:
                worker.put(block)
            for consume in local:
                consume(block)
        yield give
