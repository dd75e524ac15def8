"""Eye blinks for the synthetic demo set: a known random schedule and an eyelid-closing warp.

:class:`BlinkSchedule` draws blinks the way people blink at rest: intervals of ``MIN_INTERVAL_S`` plus an
exponential part (mean interval ~3.5 s, i.e. ~17 blinks a minute), each blink 0.2-0.36 s long with a fast
closing phase and a slower opening one. ``closure(t)`` is the lid closure in [0, 1] at time ``t`` (1 = shut).

:func:`close_eyes` renders a closure on a still: for each eye the upper-lid skin between a line above the
lid and the lid itself is stretched down (a per-column backward warp through the dlib eye landmarks
36-41 / 42-47) so the lid edge sits ``closure`` of the way from the upper to the lower lid line, and a
soft dark lash line is drawn along the new lid edge. Below the lid edge and outside the eye corners
nothing changes, so eye-aspect-ratio measured by a landmark detector dips with the schedule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_INTERVAL_S = 1.2  # shortest gap between two blink onsets
MEAN_EXTRA_S = 2.3  # mean of the exponential part of the interval (mean interval 3.5 s)
DURATION_S = (0.2, 0.36)  # uniform range of one blink's length
CLOSING_FRACTION = 0.35  # share of a blink spent closing (then a short hold, then opening)
HOLD_FRACTION = 0.12
RAISE = 0.1  # the closing lid starts this far (x eye width) above the detected upper lid, mid-eye
OVERSHOOT = 0.15  # a shut lid ends this far (x eye width) below the lower lid line
_EYES = (np.arange(36, 42), np.arange(42, 48))  # dlib: corner, upper, upper, corner, lower, lower


@dataclass(frozen=True)
class BlinkSchedule:
    """Blink onsets and durations (seconds) of one clip."""

    onsets: tuple
    durations: tuple

    @classmethod
    def random(cls, rng: np.random.Generator, seconds: float) -> "BlinkSchedule":
        onsets, durations = [], []
        t = float(rng.uniform(0.3, 2.5))  # short clips still get a blink
        while t < seconds:
            d = float(rng.uniform(*DURATION_S))
            onsets.append(round(t, 4))
            durations.append(round(d, 4))
            t += d + MIN_INTERVAL_S + float(rng.exponential(MEAN_EXTRA_S))
        return cls(tuple(onsets), tuple(durations))

    def closure(self, t: float) -> float:
        """Lid closure at time ``t`` s: 0 open .. 1 shut (smooth close, hold, slower open)."""
        for onset, dur in zip(self.onsets, self.durations):
            u = (t - onset) / dur
            if 0.0 <= u < 1.0:
                if u < CLOSING_FRACTION:
                    return float(np.sin(0.5 * np.pi * u / CLOSING_FRACTION) ** 2)
                if u < CLOSING_FRACTION + HOLD_FRACTION:
                    return 1.0
                v = (u - CLOSING_FRACTION - HOLD_FRACTION) / (1.0 - CLOSING_FRACTION - HOLD_FRACTION)
                return float(np.cos(0.5 * np.pi * v) ** 2)
        return 0.0

    def per_frame(self, num_frames: int, fps: float) -> np.ndarray:
        """(num_frames,) float32 closure at each frame time ``i / fps``."""
        return np.array([self.closure(i / fps) for i in range(num_frames)], np.float32)

    def to_dict(self, seconds: float, fps: float = 25.0) -> dict:
        n = int(np.ceil(seconds * fps - 1e-4))
        return {"onsets_s": list(self.onsets), "durations_s": list(self.durations),
                "closure_25fps": [round(float(c), 4) for c in self.per_frame(n, fps)]}


def catmull_rom(points: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """Smooth open curve through ``points`` (n, 2), end points kept (mouth and eye corners stay sharp)."""
    p = np.concatenate([points[:1], points, points[-1:]])
    u = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * u ** 3))
    out.append(points[-1:])
    return np.concatenate(out)


def _lid_line(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """y of the smooth curve through ``points`` (corner, ..., corner) at columns ``xs``."""
    curve = catmull_rom(points[np.argsort(points[:, 0])] if points[0, 0] > points[-1, 0] else points, 8)
    order = np.argsort(curve[:, 0])
    return np.interp(xs, curve[order, 0], curve[order, 1])


def close_eyes(image: np.ndarray, landmarks: np.ndarray, closure: float) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with both eyes closed by ``closure`` in [0, 1] (a copy; the input is kept)."""
    import cv2

    c = float(np.clip(closure, 0.0, 1.0))
    if c <= 0.0:
        return image
    out = image.copy()
    h_img, w_img = image.shape[:2]
    for idx in _EYES:
        eye = np.asarray(landmarks, np.float64)[idx]
        width = float(np.linalg.norm(eye[3] - eye[0]))
        upper = eye[[0, 1, 2, 3]]
        lower = eye[[0, 5, 4, 3]]
        reach = 0.3 * width  # lid skin taken from this far above the lid
        x0 = max(int(np.floor(min(eye[0, 0], eye[3, 0]))) - 1, 0)
        x1 = min(int(np.ceil(max(eye[0, 0], eye[3, 0]))) + 2, w_img)
        y0 = max(int(np.floor(eye[:, 1].min() - reach)) - 2, 0)
        y1 = min(int(np.ceil(eye[:, 1].max() + OVERSHOOT * width)) + 3, h_img)
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        xs = np.arange(x0, x1, dtype=np.float64)
        # the detector's upper-lid points tend to sit inside the visible opening: start a little above them
        y_up = _lid_line(upper, xs) - RAISE * width * np.clip(
            1.0 - np.abs(2.0 * (xs - (eye[0, 0] + eye[3, 0]) / 2) / max(width, 1e-6)), 0.0, 1.0)
        y_lo = np.maximum(_lid_line(lower, xs), y_up)
        inside = (xs >= min(eye[0, 0], eye[3, 0])) & (xs <= max(eye[0, 0], eye[3, 0]))
        # the new lid edge; a shut eye's lid reaches a little past the lower lid line (the detector's lower
        # lid points sit on the lid margin, the iris shows slightly below them)
        y_new = np.where(inside, y_up + c * (y_lo + OVERSHOOT * c * width - y_up), y_up)
        y_top = y_up - reach
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        col = (xx - x0).astype(int)
        top, up, new = y_top[col], y_up[col], y_new[col]
        in_lid = (yy >= top) & (yy <= new) & (new > up + 1e-6)
        src_y = np.where(in_lid, top + (yy - top) * (up - top) / np.maximum(new - top, 1e-6), yy)
        patch = cv2.remap(image, xx.astype(np.float32), src_y.astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
        # lash line: a soft dark band just above the new lid edge, darker the more the eye is shut
        thick = max(0.8, 0.07 * width)
        d = (new - yy) / thick
        lash = np.where(inside[col], np.exp(-0.5 * (d - 0.5) ** 2) * (yy <= new + thick), 0.0) * (0.55 * c)
        patch = patch * (1.0 - lash[..., None]) + np.array([40.0, 28.0, 26.0]) * lash[..., None]
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return out


__all__ = ["BlinkSchedule", "close_eyes", "catmull_rom", "MIN_INTERVAL_S", "MEAN_EXTRA_S", "DURATION_S"]
