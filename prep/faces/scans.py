"""Frame views the face backends read, and full-frame face scans that run ahead of the tracker.

A full-frame scan (detection on the whole frame, :func:`full_scan`) is the tracker's most expensive step and
the one whose frame is known in advance: scheduled scans, and the first frame of every shot. dlib's HOG
detector releases the GIL, so such a scan runs in the process's scan thread (:func:`scan_pool`) while the
tracker works through the frames before it (:func:`scan_ahead`); the tracker takes the result when it gets
to that frame -- the same scan of the same pixels.
"""
from __future__ import annotations

import threading

import numpy as np

from ..frames import clip_box
from .config import FaceConfig


class View:
    """One frame (a :mod:`prep.frames` frame) as the backend sees it (``backend.prepare``), converted lazily:
    the whole frame only for a full-frame scan, otherwise just the regions that detection, landmarks and
    appearance read (``prepare`` is per pixel, so a region equals the same region of the prepared whole
    frame; a YUV frame converts only those regions, bit for bit as the whole frame would convert)."""

    def __init__(self, frame, backend):
        self.frame, self.backend, self._full = frame, backend, None
        self.h, self.w = frame.h, frame.w

    def full(self) -> np.ndarray:
        if self._full is None:
            self._full = self.backend.prepare(self.frame.full())
        return self._full

    def region(self, x0: float, y0: float, x1: float, y1: float):
        """(prepared region, (x0, y0)) of the frame box [x0, x1) x [y0, y1), clipped to the frame."""
        x0, y0, x1, y1 = clip_box(self.frame, x0, y0, x1, y1)
        if self._full is not None:
            return np.ascontiguousarray(self._full[y0:y1, x0:x1]), (x0, y0)
        return self.frame.prepared(x0, y0, x1, y1, self.backend.prepare), (x0, y0)

    def around(self, box: np.ndarray, margin: float):
        """The region of ``box`` grown by ``margin`` x its side on every side."""
        return self.region(*grown(box, margin))


def grown(box, margin: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of ``box`` grown by ``margin`` x its longer side on every side."""
    grow = margin * max(box[2] - box[0], box[3] - box[1])
    return box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow


def make_backend(config: FaceConfig, device: str = "auto"):
    """The face backend ``config`` names (``device``: an execution setting, PrepConfig.device; dlib ignores it)."""
    from .backends import get_backend

    kw = ({"detector": config.detector, "score_threshold": config.score_threshold}
          if config.backend == "dlib" else {"device": device})
    return get_backend(config.backend, **kw)


def full_scan(view: "View", config: FaceConfig, backend) -> tuple[np.ndarray, np.ndarray]:
    """(prepared whole frame, detections) of a full-frame scan of a frame view."""
    scale = config.detection_scale((view.h, view.w), backend.min_face_px)
    return view.full(), backend.detect([view.full()], scale=scale)[0]


def scan_ahead(frame, config: FaceConfig, backend):
    """A Future of the full-frame scan of ``frame`` in the scan thread, or None where the backend's
    detector cannot run beside the tracker's (see ``concurrent_detect``)."""
    if not getattr(backend, "concurrent_detect", False):
        return None
    return scan_pool().submit(full_scan, View(frame, backend), config, backend)


_SCAN_POOL: list = []
_SCAN_LOCK = threading.Lock()


def scan_pool():
    """The process's one thread for full-frame scans ahead of the trackers (it keeps its own detector)."""
    with _SCAN_LOCK:
        if not _SCAN_POOL:
            from concurrent.futures import ThreadPoolExecutor

            _SCAN_POOL.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkbench-scans"))
        return _SCAN_POOL[0]


__all__ = ["View", "grown", "make_backend", "full_scan", "scan_ahead", "scan_pool"]
