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
    from threadpoolctl import ThreadpoolController

    key = tuple(m in sys.modules for m in ("scipy.linalg", "torch", "cv2"))  # what may have loaded a pool
    if key not in _CONTROLLERS:
        _CONTROLLERS[key] = ThreadpoolController()
    with _CONTROLLERS[key].limit(limits=n):
        yield


def limit_process_threads(n: int = 1) -> None:
    """For a worker process that only ever runs one-thread tasks: set the limits once, for good. torch is
    limited only when something has imported it already (importing it here would cost ~2 s of start-up
    in a prep process that never uses it)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover
        pass


__all__ = ["one_thread", "blas_threads", "limit_process_threads"]
