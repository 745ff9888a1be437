"""Text queries of concurrent requests embedded together.

The server runs one model, so requests take turns with it (``model_lock``). A request thread queues
its text and waits for the lock; whoever gets it embeds every text queued by then in one call and
hands each request its vector. Under load the texts that arrived while the model was busy go through
as one batch, which costs little more than one text on a CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np


class TextBatcher:
    def __init__(
        self,
        embed: Callable[[Sequence[str]], np.ndarray],
        model_lock: threading.Lock,
        max_batch: int = 32,
    ) -> None:
        self._embed = embed
        self._model_lock = model_lock
        self._max_batch = max_batch
        self._queue: list[tuple[str, Future]] = []
        self._queue_lock = threading.Lock()
        self.batches = 0
        """How many model calls were made (for tests and benchmarks)."""

    def embed(self, text: str) -> np.ndarray:
        """The vector of ``text``, embedded alone or with other requests' texts."""
        future: Future = Future()
        with self._queue_lock:
            self._queue.append((text, future))
        while not future.done():
            with self._model_lock:
                if future.done():
                    break
                with self._queue_lock:
                    batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                self._run(batch)
        return future.result()

    def _run(self, batch: list[tuple[str, Future]]) -> None:
        self.batches += 1
        try:
            vectors = self._embed([text for text, _ in batch])
        except Exception as exc:  # every waiting request gets the same error
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), vector in zip(batch, vectors, strict=True):
            future.set_result(vector)
