"""One intra-op thread per task: numbers must not depend on a worker's thread count, tasks run in
parallel already, and OpenMP / BLAS pools spin-waiting beside each other thrash a small machine."""
from __future__ import annotations

import contextlib


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


def limit_process_threads(n: int = 1) -> None:
    """For a worker process that only ever runs one-thread tasks: set the limits once, for good."""
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover
        pass


__all__ = ["one_thread", "limit_process_threads"]
