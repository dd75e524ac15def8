"""One intra-op thread per task: numbers must not depend on a worker's thread count, tasks run in
parallel already, and OpenMP / BLAS pools spin-waiting beside each other thrash a small machine."""
from __future__ import annotations

import contextlib
import sys

_CONTROLLERS: dict = {}


@contextlib.contextmanager
def one_thread():
    """torch, OpenCV and BLAS limited to one thread inside the block (restored after)."""
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    saved = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])


@contextlib.contextmanager
def blas_threads(n: int = 1):
    """BLAS (numpy's and scipy's OpenBLAS) limited to ``n`` threads inside the block, cheaply: the loaded
    libraries are discovered once per process (``threadpool_limits`` rescans them on every call, ~30 ms
    with torch loaded). Import scipy.linalg before the first call so its BLAS is found too."""
    with _controller().limit(limits=n):
        yield


def _controller():
    """threadpoolctl's view of the loaded pools, rescanned only when a module that may load one has come."""
    from threadpoolctl import ThreadpoolController

    key = tuple(m in sys.modules for m in ("scipy.linalg", "torch", "cv2"))
    if key not in _CONTROLLERS:
        _CONTROLLERS[key] = ThreadpoolController()
    return _CONTROLLERS[key]


def prefetch(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead (same items, same order).

    For a producer whose work mostly releases the GIL (video decoding, OpenCV): it overlaps with the
    consumer's. An exception in the producer is raised in the consumer at that point; leaving the loop
    early stops the producer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run():
        try:
            for item in iterable:
                if not put((None, item)):
                    return
            put((None, done))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((e, None))

    worker = threading.Thread(target=run, name="talkbench-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            err, item = q.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5.0)


class SerialWorker:
    """Runs submitted calls one after another in one background thread, in submission order, with at most
    ``depth`` waiting (``submit`` blocks until the oldest is done): a pipeline stage whose work mostly
    releases the GIL (OpenCV, swscale, JPEG) overlaps with its producer's, and memory stays bounded.
    An exception in a call is raised by the ``submit`` or ``drain`` that collects it. As a context manager,
    the block's exit drains (or, leaving on an exception, drops what has not started)."""

    def __init__(self, depth: int = 2, name: str = "talkbench-serial"):
        import collections
        from concurrent.futures import ThreadPoolExecutor

        self.depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: collections.deque = collections.deque()

    def submit(self, fn, *args) -> None:
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        """Wait for every submitted call (raising the first error)."""
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.drain()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()


def limit_process_threads(n: int = 1, load_scipy: bool = True) -> None:
    """For a worker process that only ever runs one-thread tasks: set the limits once, for good. torch is
    limited only when something has imported it already (importing it here would cost ~2 s of start-up
    in a prep process that never uses it). BLAS too (numpy's and scipy's OpenBLAS): beside the task's own
    threads its pool only spin-waits after each call (~2 % of an inline prep run's CPU at the default of one
    thread per core), and its thread count would otherwise be the machine's. ``load_scipy=False`` limits
    scipy's BLAS only if scipy.linalg is loaded already, for a caller that never uses it: importing it
    costs ~0.2 s, and a job's first task waited 0.47 s here while a warm-up thread imported it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover
        pass
    if load_scipy:
        import scipy.linalg  # noqa: F401 - loads scipy's own OpenBLAS now, so the limit covers it

    _controller().limit(limits=n, user_api="blas")  # kept: never restored


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt() parameters (malloc.h)
_HEAP_KEPT = False


def keep_freed_memory(mmap_threshold: int = 1 << 30) -> bool:
    """Keep big freed blocks on glibc's heap (``mallopt``: mmap threshold 1 GiB, no trimming).

    By default glibc serves every allocation at least as large as the last freed mapping (>= 128 KiB,
    adaptive up to 32 MiB) with a fresh ``mmap``, so each one is page-faulted and zeroed anew: a decoded HD
    frame or chunk in prep (on the 1080p clips that doubled ``prep.media.iter_frames``' time), every
    activation of a training step (~18k page faults per ``tiny`` diffusion step; ~190 with this). Process-wide
    and permanent, memory is reused rather than leaked; prep's processes, the training loops and the benches
    call it. Returns whether it took effect (glibc only)."""
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and \
            libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1  # an int: the largest trim threshold
    except (OSError, AttributeError):  # not glibc
        return False
    _HEAP_KEPT = bool(ok)
    return _HEAP_KEPT


__all__ = ["one_thread", "blas_threads", "prefetch", "SerialWorker", "limit_process_threads", "keep_freed_memory"]
