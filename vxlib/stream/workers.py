"""Cancellable worker threads and closable queues: the thread plumbing of streaming pipelines.

A streaming request (LLMVoX text -> speech, a live LLVC conversion) runs a few threads joined by
queues. Two things make that leak-prone: a thread blocked in ``queue.get()`` never notices that the
client left, and a producer that dies leaves its consumer waiting forever. Here every blocking wait
polls a shared :class:`CancelToken`, a queue can be *closed* (its consumer then sees
:class:`Closed` once it is drained), and :class:`WorkerGroup` starts threads, forwards the first
exception to whoever is consuming, and on ``close()`` cancels and joins every thread it started,
so a finished or abandoned request leaves no thread behind.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import Any, Callable, Generic, Iterator, TypeVar

__all__ = ["CancelToken", "Cancelled", "Closed", "ClosableQueue", "WorkerGroup"]

T = TypeVar("T")

POLL_S = 0.05  # how often a blocked wait re-checks cancellation: bounds the time to stop a request


class Cancelled(Exception):
    """Raised inside a worker (or the consumer) once the request was cancelled."""


class Closed(Exception):
    """Raised by :meth:`ClosableQueue.get` when the queue is closed and drained."""


class CancelToken:
    """A one-way flag shared by every thread of one request."""

    def __init__(self):
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s; True as soon as the token is cancelled."""
        return self._event.wait(timeout)


class ClosableQueue(Generic[T]):
    """An unbounded FIFO with ``close()``: ``get`` blocks until an item arrives, the queue is closed
    and empty (:class:`Closed`), or ``token`` is cancelled (:class:`Cancelled`). Items put before
    ``close()`` are still delivered. Unbounded on purpose: producers here are a text stream and a
    speech generator whose output must never be dropped; the pipeline's length limits bound it."""

    def __init__(self, token: CancelToken):
        self.token = token
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("put on a closed queue")
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, timeout: float | None = None) -> T:
        """The next item. ``timeout`` (s): raise ``TimeoutError`` if nothing came in time."""
        waited = 0.0
        with self._cond:
            while True:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise Closed()
                self.token.raise_if_cancelled()
                if timeout is not None and waited >= timeout:
                    raise TimeoutError(f"no item within {timeout} s")
                self._cond.wait(POLL_S)
                waited += POLL_S

    def get_nowait(self) -> T | None:
        """The next item, or None when the queue is momentarily empty (Closed when closed and empty)."""
        with self._cond:
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise Closed()
            return None

    def __len__(self) -> int:
        return len(self._items)


class WorkerGroup:
    """The threads of one request. ``spawn(fn, *args)`` runs ``fn`` in a daemon thread; an exception
    other than :class:`Cancelled` is stored and cancels the group, and :meth:`check` re-raises it in
    the consumer. ``close()`` cancels, joins every thread (bounded by ``join_timeout``) and raises
    if one is still alive, so a leak is an error, not a silent background thread."""

    def __init__(self, name: str, token: CancelToken | None = None, join_timeout: float = 10.0):
        self.name = name
        self.token = token or CancelToken()
        self.join_timeout = join_timeout
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def queue(self) -> ClosableQueue[Any]:
        return ClosableQueue(self.token)

    def spawn(self, fn: Callable[..., None], *args: Any, name: str = "worker") -> threading.Thread:
        def run() -> None:
            try:
                fn(*args)
            except Cancelled:
                pass
            except BaseException as err:  # forwarded to the consumer by check()
                with self._lock:
                    if self._error is None:
                        self._error = err
                self.token.cancel(f"{name} failed: {err!r}")

        thread = threading.Thread(target=run, name=f"{self.name}/{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def check(self) -> None:
        """Re-raise a worker's exception (with its traceback) in the calling thread."""
        if self._error is not None:
            raise self._error

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def close(self, reason: str = "closed") -> None:
        self.token.cancel(reason)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(self.join_timeout)
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise RuntimeError(f"{self.name}: threads still running {self.join_timeout} s after cancel: {stuck}")


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads on the calling thread, then restore its count.

    Each Python thread that runs torch ops has its own OpenMP team; streaming stages of tiny ops
    (LLVC, the TTS replicas) sharing a small CPU run best with small teams. ``torch.set_num_threads``
    also sets the default of threads started later, which the restore puts back too."""
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
