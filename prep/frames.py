"""Decoded frames that convert to RGB only where they are read.

Prep reads little of each frame: the face region (landmarks, the appearance check, a window
re-detection), the crop's footprint, a downscaled copy for the shot detector, and the whole frame only
for a full-frame face scan (every ``full_detect_every`` frames). An 8-bit 4:2:0 frame (``yuv420p`` /
``yuvj420p``, even size, not rotated) therefore stays YUV (:class:`YUVFrame`): a region is converted by
FFmpeg's own converter (``swscale``, with the frame's colour space and range) from the matching planes,
which gives exactly the pixels of the whole-frame conversion :func:`prep.media.rgb_array` (tested on
random regions of the shared clips). Any other frame is converted whole, once (:class:`ArrayFrame`).

On the 1080p clips this removes the whole-frame RGB conversion (and the 6 MB per frame it allocates)
from every frame; see ``bench/README.md``.
"""
from __future__ import annotations

import math
import threading

import numpy as np

YUV_FORMATS = ("yuv420p", "yuvj420p")
QUANTUM = 32  # converted regions are multiples of this (even): few distinct sizes, cached converters

_local = threading.local()


def _reformatter(use: str = "region"):
    """One ``VideoReformatter`` per thread and use: it keeps its swscale context while the conversion stays
    the same (``frame.reformat`` builds a new one for every frame). Region conversions and the shot
    detector's downscale each have their own, so neither resets the other's context."""
    r = getattr(_local, use, None)
    if r is None:
        from av.video.reformatter import VideoReformatter

        r = VideoReformatter()
        setattr(_local, use, r)
    return r


class ArrayFrame:
    """An (H, W, 3) uint8 RGB frame."""

    def __init__(self, rgb: np.ndarray):
        self.array = rgb
        self.h, self.w = rgb.shape[:2]

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def full(self) -> np.ndarray:
        return self.array

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """RGB pixels of [x0, x1) x [y0, y1) (clipped to the frame by the caller)."""
        return self.array[y0:y1, x0:x1]

    def prepared(self, x0: int, y0: int, x1: int, y1: int, prepare) -> np.ndarray:
        """``prepare`` (a per-pixel function, e.g. a face backend's) of the region."""
        return prepare(self.region(x0, y0, x1, y1))

    def small_bgr(self, width: int, height: int) -> np.ndarray:
        import cv2

        return np.ascontiguousarray(cv2.resize(self.array, (width, height), interpolation=cv2.INTER_LINEAR)[..., ::-1])


class YUVFrame:
    """An 8-bit 4:2:0 frame kept as its decoder planes (the ``av.VideoFrame`` is held, so they stay valid)."""

    def __init__(self, frame):
        self._frame = frame
        self.h, self.w = frame.height, frame.width
        hc, wc = self.h // 2, self.w // 2
        self._y = np.frombuffer(frame.planes[0], np.uint8).reshape(self.h, -1)[:, :self.w]
        self._u = np.frombuffer(frame.planes[1], np.uint8).reshape(hc, -1)[:, :wc]
        self._v = np.frombuffer(frame.planes[2], np.uint8).reshape(hc, -1)[:, :wc]
        self._full = None
        self._cache: list = []
        self._prepared: list = []  # (box, prepare, prepare(region)) of regions prepared ahead

    @property
    def nbytes(self) -> int:
        return self.h * self.w * 3 // 2

    def full(self) -> np.ndarray:
        if self._full is None:
            from .media import rgb_array

            self._full = rgb_array(self._frame)
        return self._full

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        if self._full is not None:
            return self._full[y0:y1, x0:x1]
        for (cx0, cy0, cx1, cy1), rgb in self._cache:  # a region already converted for this frame
            if cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1:
                return rgb[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        # an even-aligned box (chroma is shared by 2x2 pixels) of a size rounded up to QUANTUM px, so one
        # converter (swscale context) serves the frames of a track
        ex0, ey0 = x0 - x0 % 2, y0 - y0 % 2
        w = min(self.w, -(-(x1 - ex0) // QUANTUM) * QUANTUM)
        h = min(self.h, -(-(y1 - ey0) // QUANTUM) * QUANTUM)
        ex0, ey0 = min(ex0, self.w - w), min(ey0, self.h - h)  # against the right / bottom edge: shift back
        ex0, ey0 = ex0 - ex0 % 2, ey0 - ey0 % 2
        rgb = self._convert(ex0, ey0, w, h)
        self._cache.append(((ex0, ey0, ex0 + w, ey0 + h), rgb))
        return rgb[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]

    def prepared(self, x0: int, y0: int, x1: int, y1: int, prepare) -> np.ndarray:
        """``prepare`` (a per-pixel function, e.g. a face backend's) of the region: cut from a region
        prepared ahead (:func:`convert_ahead`) where one covers it (contiguous), which equals preparing the
        region itself."""
        for (cx0, cy0, cx1, cy1), fn, arr in self._prepared:
            if fn == prepare and cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1:
                return np.ascontiguousarray(arr[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0])
        return prepare(self.region(x0, y0, x1, y1))

    def _convert(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        import av

        sub = av.VideoFrame(w, h, "yuv420p")
        for k, src in enumerate((self._y[y0:y0 + h, x0:x0 + w], self._u[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2],
                                 self._v[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2])):
            plane = sub.planes[k]
            np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:src.shape[0], :src.shape[1]] = src
        sub.colorspace, sub.color_range = self._frame.colorspace, self._frame.color_range
        if self._frame.format.name == "yuvj420p":  # full-range planes, as the decoder flagged them
            sub.color_range = 2
        return _reformatter().reformat(sub, format="rgb24", threads=1).to_ndarray()

    def small_bgr(self, width: int, height: int) -> np.ndarray:
        # point sampling: closest to what SceneManager's cv2.resize (INTER_LINEAR: 2x2 taps, no prefilter)
        # makes of the RGB frame, and 2.5x cheaper than swscale's filtered bilinear on a 1080x1920 frame
        return _reformatter("small").reformat(self._frame, width=width, height=height, format="bgr24",
                                              interpolation="POINT", threads=1).to_ndarray()


def convert_ahead(frame, box, prepare=None) -> None:
    """Convert the region ``box`` (x0, y0, x1, y1 floats) of a YUV frame now, and ``prepare`` it if given, so
    later reads inside it are served from the converted (prepared) pixels (a decoder thread does this for
    the tracker); other frames: nothing."""
    if isinstance(frame, YUVFrame) and box is not None:
        x0, y0, x1, y1 = clip_box(frame, *box)
        rgb = frame.region(x0, y0, x1, y1)
        if prepare is not None:
            frame._prepared.append(((x0, y0, x1, y1), prepare, prepare(rgb)))


def from_av(frame):
    """The prep frame of a decoded ``av.VideoFrame``."""
    if frame.format.name in YUV_FORMATS and frame.width % 2 == 0 and frame.height % 2 == 0 \
            and not getattr(frame, "rotation", 0):
        return YUVFrame(frame)
    from .media import rgb_array

    return ArrayFrame(rgb_array(frame))


def as_frames(frames) -> list:
    """A chunk's frames as prep frames (an (n, H, W, 3) RGB array, or frames already)."""
    if isinstance(frames, np.ndarray):
        return [ArrayFrame(f) for f in frames]
    return list(frames)


def clip_box(frame, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    """Integer [x0, x1) x [y0, y1) covering the float box, clipped to the frame (never empty)."""
    ix0, iy0 = int(max(0, math.floor(x0))), int(max(0, math.floor(y0)))
    ix1, iy1 = int(min(frame.w, math.ceil(x1))), int(min(frame.h, math.ceil(y1)))
    return ix0, iy0, max(ix1, ix0 + 1), max(iy1, iy0 + 1)


__all__ = ["ArrayFrame", "YUVFrame", "from_av", "as_frames", "clip_box", "convert_ahead", "YUV_FORMATS"]
