"""All model work of the server on one thread, with the text queries of concurrent requests embedded
together.

The server runs one model, so requests take turns with it. Running every turn on the same thread also
keeps the model's memory in one allocator arena: turns taken by whichever request thread came first
grew the server's memory by a third under load (``benchmarks/server_load.py``). A text query is queued
and a "drain" turn scheduled; the first drain to run embeds every text queued by then in one call, so
under load the texts that arrived while the model was busy go through as one batch, which costs little
more than one text on a CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")


class ModelWorker:
    def __init__(self, embed_texts: Callable[[Sequence[str]], np.ndarray], max_batch: int = 32) -> None:
        self._embed_texts = embed_texts
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="clamp3-model")
        self._queue: list[tuple[str, Future]] = []
        self._queue_lock = threading.Lock()
        self.text_batches = 0
        """How many times the text tower ran for queued queries (for tests and benchmarks)."""

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the model thread and wait for its result."""
        return self._executor.submit(work).result()

    def embed_text(self, text: str) -> np.ndarray:
        """The vector of ``text``, embedded alone or with other requests' texts."""
        future: Future = Future()
        with self._queue_lock:
            self._queue.append((text, future))
        self._executor.submit(self._drain)
        return future.result()

    def _drain(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        if not batch:
            return
        self.text_batches += 1
        try:
            vectors = self._embed_texts([text for text, _ in batch])
        except Exception as exc:  # every waiting request gets the same error
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), vector in zip(batch, vectors, strict=True):
            future.set_result(vector)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
