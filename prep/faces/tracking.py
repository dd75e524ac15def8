"""Causal face tracking: detect sometimes, follow the landmarks in between, crop every frame.

Per frame (in order; chunks must be consecutive):

1. **Detect** only when due: a full-frame scan when there is no track and every ``full_detect_every``
   frames (this also counts the faces in view); otherwise a scan of a window around the tracked face, at
   the scale its size calls for, only where the tracking is unsure -- the aligned face correlates less
   than ``anchor_ncc`` with how it looked when the box was last anchored by a detection (slow landmark
   drift), or its scale moved by more than ``rescale_detect`` (log) since (the box size comes from the
   detector) -- and at the latest every ``detect_every`` frames. A detection continues the track
   when its IoU with the predicted box is >= ``iou_threshold``. After more than
   ``max_missed_detections`` consecutive misses the track is dropped; until then it coasts on its
   landmarks (e.g. through a turned head HOG cannot see).
2. **Predict** the box from the previous frame's landmarks (see :class:`_Track`): position from the
   landmarks, size and offset from the detector (blended over matched detections), so the landmark
   model always gets a box with the detector's geometry. A matched detection with IoU below
   ``reanchor_iou`` means drift: that frame's landmarks restart from the detector box.
3. **Landmarks** from the box, then checks: a face-scale jump > ``max_scale_change`` (log), a centre
   jump of more than half the face or a centre outside the frame ends the track; an aligned 32x32 grey
   crop that correlates (NCC) less than ``verify_ncc`` with the previous frame's (scene cut, occlusion,
   face gone) must be confirmed by a detection on the spot. A track that ends triggers a full scan on
   the same frame.
4. **Smooth** (one-euro, causal): the crop placement (centre, size, angle of the template similarity)
   and, more lightly, the landmarks. Filters restart with every new track.
5. **Crop** with the smoothed similarity.

Everything but a full-frame scan reads only a region of the frame (the backend's ``prepare`` -- dlib: grey
-- is applied to that region: the same pixels as the prepared whole frame, at a fraction of the cost).
Until issue 15 window re-detections ran every 5 frames and full scans every 25; the schedule above
finds as many faces on the shared clips with a landmark error vs per-frame detection within 0.2 % of the
face size of the old one, at 2-4x fewer detections (``bench/README.md``).

Frames without a face keep their row (``face_found=False``, no box/landmarks); their ``affine`` and
``crop`` hold the last face's placement (or, before any face, the centred square of the frame's short
side), so every row decodes to a crop. The main track is the largest (or most central) face when a
track is (re)acquired and stays the main track while IoU association keeps it; ``num_faces`` is the
count of the latest full-frame scan (at least 1 while a face is tracked).
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..frames import as_frames, clip_box
from . import align
from .config import FaceConfig
from .scans import View, full_scan, grown, make_backend, scan_ahead
from .smoothing import OneEuroFilter

log = logging.getLogger(__name__)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` (n, >=4) against one box ``b`` (>=4,) -> (n,)."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    ix = np.clip(np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1]), 0, None)
    inter = ix * iy
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / np.maximum(union, 1e-9)


def _scale(affine: np.ndarray) -> float:
    return float(np.hypot(affine[0, 0], affine[1, 0]))


class _Track:
    """The main face being followed.

    Its box has the detector's geometry: the side is the detector's (blended over matched detections),
    the centre is the detector box centre expressed in the aligned-crop frame of the face, mapped back
    through each frame's alignment. The landmarks thus steer the box's position every frame, but never
    its size: landmark sets that shrink on a turned face would otherwise shrink the next box, and so on.
    """

    def __init__(self, start: int):
        self.start = start
        self.last_detect = start
        self.misses = 0
        self.rel_c = None  # detector box centre in crop px of the face's alignment
        self.side = None  # detector box side, source px
        self.affine = None  # raw alignment of the last landmarks
        self.appearance = None  # small grey aligned crop of the last frame
        self.anchor_scale = 1.0  # alignment scale of the landmarks when the box was last anchored
        self.anchor_appearance = None  # appearance then

    def anchor(self, lms: np.ndarray, box: np.ndarray, crop_size: int, weight: float = 1.0) -> None:
        """Blend a detector box (seen with landmarks ``lms``) into the box relation."""
        a = align.similarity_from_landmarks(lms, crop_size)
        c = align.apply_affine(a, [(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
        side = (box[2] - box[0] + box[3] - box[1]) / 2.0
        if self.rel_c is None or weight >= 1.0:
            self.rel_c, self.side = c, side
        else:
            self.rel_c = (1 - weight) * self.rel_c + weight * c
            self.side = (1 - weight) * self.side + weight * side

    def box_from(self, affine: np.ndarray) -> np.ndarray:
        """The detector-convention box of the face aligned by ``affine`` (source px)."""
        c = align.apply_affine(align.invert_affine(affine), self.rel_c)
        half = self.side / 2.0
        return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])

    def predicted_box(self) -> np.ndarray:
        return self.box_from(self.affine)


APPEARANCE_SIZE = 32


def appearance(img: np.ndarray, lms: np.ndarray, affine: np.ndarray | None = None, crop_size: int = 256,
               origin=(0, 0)) -> np.ndarray:
    """A 32x32 grey aligned crop, zero-mean and unit-norm (for normalised cross-correlation).

    ``img`` is the grey frame, or a region of it whose top-left pixel is ``origin`` in the frame;
    ``affine`` the (frame -> ``crop_size``) alignment of ``lms`` when already computed."""
    if affine is None:
        affine = align.similarity_from_landmarks(lms, crop_size)
    a = rescale_affine(affine, crop_size, APPEARANCE_SIZE)
    if origin != (0, 0):
        a = a.copy()
        a[:, 2] += a[:, :2] @ np.asarray(origin, np.float64)
    gray = img if img.ndim == 2 else img.mean(-1).astype(np.uint8)
    x = align.warp_crop(gray, a, APPEARANCE_SIZE).astype(np.float64)
    x -= x.mean()
    n = np.linalg.norm(x)
    return x / n if n > 1e-6 else np.zeros_like(x)


def rescale_affine(affine: np.ndarray, size: int, new_size: int) -> np.ndarray:
    """The alignment to a ``new_size`` crop from the one to a ``size`` crop (templates scale with the crop:
    ``template(n) = (template(s) + 0.5) * n / s - 0.5``)."""
    k = new_size / float(size)
    out = np.asarray(affine, np.float64) * k
    out[:, 2] += 0.5 * k - 0.5
    return out


def crop_frame(frame, affine: np.ndarray, size: int, border: str) -> np.ndarray:
    """The aligned crop of a :mod:`prep.frames` frame, warped from the region under it (plus a margin for
    the bilinear kernel and, for ``reflect``, the mirrored strip): the RGB of a YUV frame is needed there
    only. Both kinds of frame give the same crop (same region pixels, same warp)."""
    inv = align.invert_affine(affine)
    corners = align.apply_affine(inv, np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5],
                                                [size - 0.5, size - 0.5]]))
    (x0, y0), (x1, y1) = corners.min(0) - 2.0, corners.max(0) + 3.0
    if border == "reflect":  # mirrored pixels come from as far inside the edge as the crop reaches outside
        x1, y1 = max(x1, -x0 + 2.0), max(y1, -y0 + 2.0)
        x0, y0 = min(x0, 2.0 * frame.w - x1 - 2.0), min(y0, 2.0 * frame.h - y1 - 2.0)
    x0, y0, x1, y1 = clip_box(frame, x0, y0, x1, y1)
    shifted = np.asarray(affine, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
    return align.warp_crop(frame.region(x0, y0, x1, y1), shifted, size, border)


LANDMARK_MARGIN = 0.7  # region around the box the landmark model (and the appearance crop) may read
REGION_AHEAD_MARGIN = 1.0  # FaceTracker.face_region: the box grown by this x its side on every side


class FaceTracker:
    """Stateful, causal face processing of one clip, fed chunk by chunk (see the module docstring).

    ``process(chunk)`` returns one row per frame with the ``prep.schema.FRAMES_SCHEMA`` face columns
    (``crop`` as an (S, S, 3) uint8 array); ``summary()`` the clip-level numbers. Feeding the clip in
    any chunking gives identical rows and summary. ``device``: where a ``fan`` backend built here runs
    (``PrepConfig.device``: auto, cpu or cuda).
    """

    def __init__(self, config: FaceConfig | None = None, backend=None, device: str = "auto",
                 scan_ahead: bool = False):
        self.config = config or FaceConfig()
        self.backend = backend = backend if backend is not None else make_backend(self.config, device)
        c = self.config
        self._f_centre = OneEuroFilter(c.pose_min_cutoff, c.pose_beta, c.d_cutoff)
        self._f_shape = OneEuroFilter(c.pose_min_cutoff, c.pose_beta, c.d_cutoff)
        self._f_lms = OneEuroFilter(c.landmark_min_cutoff, c.landmark_beta, c.d_cutoff)
        self._track: _Track | None = None
        self._next: int | None = None
        self._hw: tuple[int, int] | None = None
        self._last_full = -10 ** 9
        self._num_faces = 0
        self._held_affine = None
        # with scan_ahead, a scheduled full-frame scan starts when its frame's chunk arrives, in the scan
        # thread (the detector releases the GIL): the same scan of the same pixels, done while the frames
        # before it are tracked. Unused if the schedule moves (a lost track scans earlier).
        self._scan_ahead = scan_ahead and getattr(backend, "concurrent_detect", False)
        self._scans: dict = {}  # frame index -> Future of (prepared frame, detections)
        self.scans_ahead_used = 0
        # where the face was at the end of the last chunk, grown to cover what the next frames' landmarks,
        # appearance and crop read if the face stays near: the decoder converts that region of frames it
        # decodes ahead (prep.pipeline), so the tracker finds it converted (same pixels either way)
        self.face_region = None
        # clip statistics
        self._n = 0
        self._found = 0
        self._sides: list[float] = []
        self._num_faces_max = 0
        self._tracks = 0
        self._n_full = 0
        self._n_roi = 0
        self._prev = None  # (raw crop landmarks, smoothed crop landmarks) of the previous frame
        self._jit = np.zeros(3)  # sum raw, sum smoothed, pairs

    # ------------------------------------------------------------ detection

    def expect_scan(self, t: int, scan) -> None:
        """``scan``, a Future of :func:`scan_ahead` for frame ``t`` (e.g. the first frame of a shot, started
        by the decoder), is used if this tracker scans frame ``t``."""
        if self._scan_ahead:
            self._scans[t] = scan

    def _detect_full(self, view: View, t: int) -> np.ndarray:
        ahead = self._scans.pop(t, None)
        if ahead is not None:  # started ahead on a view of its own: this view takes its prepared frame
            view._full, dets = ahead.result()
            self.scans_ahead_used += 1
        else:
            dets = full_scan(view, self.config, self.backend)[1]
        self._last_full = t
        self._n_full += 1
        self._num_faces = len(dets)
        return dets

    def _detect_roi(self, view: View, box: np.ndarray) -> np.ndarray:
        c = self.config
        side = max(box[2] - box[0], box[3] - box[1])
        self._n_roi += 1
        img, (x0, y0) = view.around(box, c.roi_margin)
        if img.shape[0] < 8 or img.shape[1] < 8:
            return np.zeros((0, 5))
        scale = min(max(1.1 * self.backend.min_face_px / (c.roi_shrink * side), 0.05), c.max_upscale)
        dets = self.backend.detect([img], scale=scale)[0]
        dets[:, [0, 2]] += x0
        dets[:, [1, 3]] += y0
        return dets

    def _landmarks(self, view: View, box: np.ndarray):
        """Landmarks in the box (read from a region around it) and the region, for the appearance crop."""
        img, origin = view.around(box, LANDMARK_MARGIN)
        local = np.asarray(box[:4], np.float64) - [origin[0], origin[1], origin[0], origin[1]]
        lms = self.backend.landmarks([img], local[None])[0] + np.asarray(origin, np.float64)
        return lms, img, origin

    def _choose(self, dets: np.ndarray) -> np.ndarray:
        area = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
        if self.config.main_track == "largest":
            return dets[int(np.argmax(area))]
        h, w = self._hw
        cx, cy = (dets[:, 0] + dets[:, 2]) / 2 - w / 2, (dets[:, 1] + dets[:, 3]) / 2 - h / 2
        dist = np.hypot(cx, cy) / np.hypot(w, h)
        return dets[int(np.lexsort((-area, np.round(dist, 3)))[0])]

    # ------------------------------------------------------------ one frame

    def _acquire(self, view: View, dets: np.ndarray, t: int):
        """Start a track on the main detection; returns its landmarks, or None without detections."""
        if len(dets) == 0:
            return None
        box = self._choose(dets)
        lms, img, origin = self._landmarks(view, box)
        track = _Track(t)
        track.anchor(lms, box, self.config.crop_size)
        track.appearance = appearance(img, lms, crop_size=self.config.crop_size, origin=origin)
        track.anchor_appearance = track.appearance
        track.anchor_scale = _scale(align.similarity_from_landmarks(lms, self.config.crop_size))
        self._track = track
        self._tracks += 1
        for f in (self._f_centre, self._f_shape, self._f_lms):
            f.reset()
        self._prev = None
        return lms

    def _match(self, dets: np.ndarray, pred: np.ndarray):
        """(detection, IoU) continuing the track, or (None, 0)."""
        if len(dets) == 0:
            return None, 0.0
        iou = box_iou(dets[:, :4], pred)
        best = int(np.argmax(iou))
        return (dets[best], float(iou[best])) if iou[best] >= self.config.iou_threshold else (None, 0.0)

    def _plausible(self, a: np.ndarray, track: _Track) -> bool:
        """Landmarks (aligned by ``a``) that continue the track: no face-scale jump, no centre jump, centre
        in frame."""
        if abs(math.log(_scale(a) / _scale(track.affine))) > self.config.max_scale_change:
            return False
        centre = align.apply_affine(align.invert_affine(a), track.rel_c)
        prev_centre = align.apply_affine(align.invert_affine(track.affine), track.rel_c)
        h, w = self._hw
        inside = 0 <= centre[0] < w and 0 <= centre[1] < h
        return inside and float(np.hypot(*(centre - prev_centre))) <= 0.5 * track.side

    def _due(self, t: int, track: _Track) -> str | None:
        """Which detection this frame needs while a face is tracked: a full scan on schedule (new faces,
        the face count), or a window re-detection when the tracking is unsure (the face scale moved away
        from the one the box size was anchored at) or on the slower safety schedule."""
        c = self.config
        if t - self._last_full >= c.full_detect_every:
            return "full"
        if t - track.last_detect >= c.detect_every:
            return "roi"
        if track.affine is not None and abs(math.log(_scale(track.affine) / track.anchor_scale)) > c.rescale_detect:
            return "roi"
        if track.appearance is not None and track.anchor_appearance is not None and \
                float((track.appearance * track.anchor_appearance).sum()) < c.anchor_ncc:
            return "roi"  # the aligned face drifted away from how it looked when the box was anchored
        return None

    def _face(self, view: View, t: int):
        """Raw landmarks of the main face in this frame and their alignment (or None), updating the track."""
        c = self.config
        track = self._track
        if track is None:
            lms = self._acquire(view, self._detect_full(view, t), t)
            return lms, (None if lms is None else align.similarity_from_landmarks(lms, c.crop_size))
        pred = track.predicted_box()
        due = self._due(t, track)
        det, iou, dets = None, 0.0, None
        if due is not None:
            dets = self._detect_full(view, t) if due == "full" else self._detect_roi(view, pred)
            det, iou = self._match(dets, pred)
            track.last_detect = t
            track.misses = 0 if det is not None else track.misses + 1
        drift = det is not None and iou < c.reanchor_iou  # restart landmarks from the detector box
        lms, img, origin = self._landmarks(view, det if drift else pred)
        a = align.similarity_from_landmarks(lms, c.crop_size)
        ok = drift or self._plausible(a, track)
        app = appearance(img, lms, a, c.crop_size, origin)
        if ok and det is None and float((app * track.appearance).sum()) < c.verify_ncc:
            # the aligned face changed abruptly (cut, occlusion, face gone): confirm with a detection
            if due is None:
                det, iou = self._match(self._detect_roi(view, pred), pred)
                track.last_detect = t
            ok = det is not None
        if ok and det is None and track.misses > c.max_missed_detections:
            ok = False
        if not ok:
            self._track = None  # lost: the largest/central face of a full scan (if any) takes over
            lms = self._acquire(view, dets if due == "full" else self._detect_full(view, t), t)
            return lms, (None if lms is None else align.similarity_from_landmarks(lms, c.crop_size))
        if det is not None:
            track.misses = 0
            track.anchor(lms, det, c.crop_size, 1.0 if drift else c.anchor_rate)
            track.anchor_scale, track.anchor_appearance = _scale(a), app
        track.appearance = app
        return lms, a

    def _step(self, t: int, frame) -> dict:
        c = self.config
        s = c.crop_size
        lms, raw = self._face(View(frame, self.backend), t)
        self._n += 1
        if lms is None:
            self._prev = None
            if self._held_affine is None:
                self._held_affine = align.default_affine(self._hw, s)
            n = self._num_faces
            self._num_faces_max = max(self._num_faces_max, n)
            return {"frame_index": t, "face_found": False, "num_faces": n, "box": None, "landmarks": None,
                    "landmarks_src": None, "affine": self._held_affine.astype(np.float32),
                    "placement": (frame, self._held_affine)}
        track = self._track
        track.affine = raw
        if c.smoothing == "one_euro":
            p = align.similarity_params(raw, s)
            side = math.exp(p[2])
            centre = self._f_centre(p[:2], scale=side)
            shape = self._f_shape(p[2:], scale=1.0)
            affine = align.affine_from_params(np.concatenate([centre, shape]), s)
            lms_s = self._f_lms(lms, scale=side)
        else:
            affine, lms_s = raw, lms
        box = track.box_from(affine)
        lms_crop = align.apply_affine(affine, lms_s)
        raw_crop = align.apply_affine(raw, lms)
        if self._prev is not None:
            self._jit += [np.linalg.norm(raw_crop - self._prev[0], axis=1).mean(),
                          np.linalg.norm(lms_crop - self._prev[1], axis=1).mean(), 1]
        self._prev = (raw_crop, lms_crop)
        self._held_affine = affine
        self._found += 1
        self._sides.append(float((box[2] - box[0] + box[3] - box[1]) / 2))
        n = max(self._num_faces, 1)
        self._num_faces_max = max(self._num_faces_max, n)
        return {"frame_index": t, "face_found": True, "num_faces": n, "box": box.astype(np.float32),
                "landmarks": lms_crop.astype(np.float32), "landmarks_src": lms_s.astype(np.float32),
                "affine": affine.astype(np.float32), "placement": (frame, affine)}

    # ------------------------------------------------------------ public

    def process(self, chunk) -> list[dict]:
        """Rows for the frames of one ``prep.media.FrameChunk`` (must follow the previous chunk)."""
        return self.crop(self.track(chunk))

    def track(self, chunk) -> list[dict]:
        """:meth:`process` without the crops: each row holds ``placement`` (its frame and the crop's
        float64 alignment) instead, for :meth:`crop` -- which may run in another thread, since it reads
        only that frame and this tracker's (fixed) config."""
        if isinstance(chunk.frames, np.ndarray) or not all(hasattr(f, "region") for f in chunk.frames):
            arr = np.asarray(chunk.frames)
            if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise ValueError(f"expected (n, H, W, 3) uint8 RGB frames, got {arr.shape} {arr.dtype}")
        frames = as_frames(chunk.frames)
        if self._next is not None and chunk.start != self._next:
            raise ValueError(f"chunk starts at frame {chunk.start}, expected {self._next} (chunks must be consecutive)")
        for f in frames:
            if self._hw is None:
                self._hw = (f.h, f.w)
            elif (f.h, f.w) != self._hw:
                raise ValueError(f"frame size changed from {self._hw} to {(f.h, f.w)}")
        self._schedule_scan(chunk.start, frames)
        rows = [self._step(chunk.start + j, f) for j, f in enumerate(frames)]
        self._next = chunk.start + len(frames)
        track = self._track
        if track is None or track.affine is None:
            self.face_region = None
        else:
            self.face_region = grown(track.predicted_box(), REGION_AHEAD_MARGIN)
        for t in [t for t in self._scans if t < self._next]:  # the schedule moved (a lost track scanned
            del self._scans[t]  # earlier): not needed
        return rows

    def look_ahead(self, chunk) -> None:
        """``chunk`` will follow the next one: with ``scan_ahead``, a full-frame scan due in it starts now
        (a scan takes longer than tracking part of a chunk). Changes no result."""
        self._schedule_scan(chunk.start, as_frames(chunk.frames))

    def _schedule_scan(self, start: int, frames: list) -> None:
        if not self._scan_ahead or self._track is None:
            return
        t = self._last_full + self.config.full_detect_every
        if start <= t < start + len(frames) and t not in self._scans:
            self._scans[t] = scan_ahead(frames[t - start], self.config, self.backend)

    def crop(self, rows: list[dict]) -> list[dict]:
        """Rows from :meth:`track` with their ``placement`` replaced by the ``crop``, in place."""
        c = self.config
        for r in rows:
            frame, affine = r.pop("placement")
            r["crop"] = crop_frame(frame, affine, c.crop_size, c.border)
        return rows

    def summary(self) -> dict:
        """Clip-level numbers so far: see the keys; NaN where not measurable."""
        pairs = self._jit[2]
        return {
            "main_track": self.config.main_track_rule(),
            "num_frames": self._n,
            "num_faces_max": int(self._num_faces_max),
            "face_fraction": self._found / self._n if self._n else float("nan"),
            "face_size": float(np.median(self._sides)) if self._sides else float("nan"),
            "jitter": float(self._jit[1] / pairs) if pairs else float("nan"),
            "jitter_raw": float(self._jit[0] / pairs) if pairs else float("nan"),
            "tracks": self._tracks,
            "full_detections": self._n_full,
            "window_detections": self._n_roi,
            "crop_size": self.config.crop_size,
        }


__all__ = ["FaceTracker", "box_iou"]
