"""The face crops SyncNet scores: ``syncnet-pipeline`` (syncnet_python's tracked crop) and ``aligned``.

``syncnet-pipeline`` reproduces ``run_pipeline.py`` from per-frame face boxes:

1. tracking (``track_shot``): greedy tracks linking a detection to the track's last box when at most
   ``num_failed_det`` (25) frames apart and IoU > 0.5; tracks of ≤ ``min_track`` (100) detections are
   dropped; boxes are linearly interpolated over missed frames; a track is kept only if its mean box
   width or height exceeds ``min_face_size`` (100 px);
2. smoothing (``crop_video``): per frame half-size ``s = max(w, h) / 2`` and centre ``(x, y)``, each
   median-filtered with a 13-tap ``scipy.signal.medfilt`` (zero-padded at the track ends, as upstream);
3. crop: the frame is padded by ``int(s · (1 + 2·0.4))`` px of value 110, the window rows
   ``[y − s, y + 1.8 s)`` × columns ``[x − 1.4 s, x + 1.4 s)`` (a square 2.8 s side, shifted down to keep
   the mouth) is cut with ``int()`` truncation and resized to 224×224 (``cv2.resize``, bilinear) in BGR.

The audio of a track is samples ``[start · 640, stop · 640)`` (upstream cuts ``start/25 … (last+1)/25`` s).

Differences from running syncnet_python itself, by design: boxes come from our face backend
(``prep.faces``, dlib by default) unless the evaluation asks for ``lse_detector="s3fd"`` (upstream's S3FD
at 0.25 scale, ``evalkit.nets.s3fd``, when ``sfd_face.pth`` is available); the whole clip is one shot (no
PySceneDetect; benchmark clips are single-shot); and the lossy intermediate files (25 fps MPEG-4 AVI,
``-qscale 2`` JPEGs, XVID crop video) are skipped — crops go straight to the scorer.

``aligned`` mode resizes our aligned face crops (RGB, any square size) to 224×224 BGR.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from talkbase.timebase import SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

CROP_SIZE = 224
PAD_VALUE = 110
CROP_SCALE = 0.4
MEDIAN_KERNEL = 13

PIPELINE_PROTOCOL = dict(impl="syncnet_python run_pipeline.py", detector="prep.faces dlib", crop_scale=CROP_SCALE,
                         iou_threshold=0.5, num_failed_det=25, min_track=100, min_face_size=100,
                         median_kernel=MEDIAN_KERNEL, pad_value=PAD_VALUE, resize="cv2 bilinear",
                         crop_size=CROP_SIZE, scenes="single shot", intermediate_encodes="none")


@dataclass
class FaceTrack:
    """Frames ``frames[0] … frames[-1]`` (contiguous) with interpolated boxes (n, 4) x0, y0, x1, y1."""

    frames: np.ndarray
    boxes: np.ndarray

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def stop(self) -> int:
        return int(self.frames[-1]) + 1


@dataclass
class CropTrack:
    """224×224 BGR crops of output frames ``[start, stop)`` and the smoothed centre / half-size used."""

    start: int
    stop: int
    crops: np.ndarray  # (n, 224, 224, 3) uint8 BGR
    centre_x: np.ndarray
    centre_y: np.ndarray
    half_size: np.ndarray

    def audio_slice(self) -> slice:
        """The samples of 16 kHz audio that belong to this track."""
        return slice(self.start * SAMPLES_PER_FRAME, self.stop * SAMPLES_PER_FRAME)


def box_iou(a, b) -> float:
    """IoU of two x0, y0, x1, y1 boxes, in upstream's convention (no +1 on sizes)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / float(union)


def _box_list(dets) -> list[np.ndarray]:
    a = np.asarray(dets, np.float64)
    return [] if a.size == 0 else [row[:4] for row in a.reshape(-1, a.shape[-1])]


def track_faces(detections: Sequence, min_track: int = 100, num_failed_det: int = 25,
                iou_threshold: float = 0.5, min_face_size: float = 100.0) -> list[FaceTrack]:
    """syncnet_python's ``track_shot`` over per-frame detections (each (k, 4+) x0, y0, x1, y1[, score]).

    Upstream removes a face from its frame's list while iterating over that list, so the detection
    right after a taken one (same frame) is not considered for that track; mirrored here.
    """
    remaining = [_box_list(d) for d in detections]
    tracks = []
    while True:
        track: list[tuple[int, np.ndarray]] = []
        for frame, faces in enumerate(remaining):
            i = 0
            while i < len(faces):
                box = faces[i]
                if not track:
                    take = True
                elif frame - track[-1][0] <= num_failed_det:
                    take = box_iou(box, track[-1][1]) > iou_threshold
                else:
                    break
                if take:
                    track.append((frame, box))
                    faces.pop(i)
                i += 1  # a python list iterator advances past the element that slid into slot i
        if not track:
            break
        if len(track) <= min_track:
            continue
        frame_nums = np.array([f for f, _ in track])
        boxes = np.stack([b for _, b in track])
        frames = np.arange(frame_nums[0], frame_nums[-1] + 1)
        interp = np.stack([np.interp(frames, frame_nums, boxes[:, k]) for k in range(4)], axis=1)
        if max(np.mean(interp[:, 2] - interp[:, 0]), np.mean(interp[:, 3] - interp[:, 1])) > min_face_size:
            tracks.append(FaceTrack(frames, interp))
    return tracks


def smooth_track(track: FaceTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median-filtered centre x, centre y and half-size (upstream's ``dets`` after ``medfilt``)."""
    from scipy.signal import medfilt

    b = track.boxes
    half = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    cy, cx = (b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2
    return (medfilt(cx, kernel_size=MEDIAN_KERNEL), medfilt(cy, kernel_size=MEDIAN_KERNEL),
            medfilt(half, kernel_size=MEDIAN_KERNEL))


def crop_frame(frame: np.ndarray, cx: float, cy: float, half: float, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """One upstream crop (padded by 110s, square window shifted down, resized to 224). Channel order
    is kept (padding is grey and resizing is per channel, so RGB in → RGB out)."""
    import cv2

    pad = int(half * (1 + 2 * crop_scale))
    padded = cv2.copyMakeBorder(np.ascontiguousarray(frame), pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    my, mx = cy + pad, cx + pad
    face = padded[int(my - half):int(my + half * (1 + 2 * crop_scale)),
                  int(mx - half * (1 + crop_scale)):int(mx + half * (1 + crop_scale))]
    if face.size == 0:
        raise ValueError(f"empty SyncNet crop at centre ({cx:.1f}, {cy:.1f}) half-size {half:.1f}")
    return cv2.resize(face, (CROP_SIZE, CROP_SIZE))


def crop_track(frames: Sequence[np.ndarray], track: FaceTrack, crop_scale: float = CROP_SCALE) -> CropTrack:
    """Crops of ``track`` from RGB ``frames`` (indexable by output frame number) → BGR CropTrack."""
    cx, cy, half = smooth_track(track)
    crops = np.empty((len(track.frames), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for k, f in enumerate(track.frames):
        crops[k] = crop_frame(frames[int(f)], cx[k], cy[k], half[k], crop_scale)[..., ::-1]
    return CropTrack(track.start, track.stop, crops, cx, cy, half)


def pipeline_crops(frames: Sequence[np.ndarray], detections: Sequence, min_track: int = 100,
                   num_failed_det: int = 25, min_face_size: float = 100.0,
                   crop_scale: float = CROP_SCALE) -> list[CropTrack]:
    """``syncnet-pipeline`` crops of every kept face track, from RGB frames and per-frame boxes."""
    if len(detections) != len(frames):
        raise ValueError(f"{len(detections)} detection lists for {len(frames)} frames")
    tracks = track_faces(detections, min_track=min_track, num_failed_det=num_failed_det,
                         min_face_size=min_face_size)
    return [crop_track(frames, t, crop_scale) for t in tracks]


def detect_faces(frames: Sequence[np.ndarray], backend: str = "dlib", scale: float = 1.0, **backend_kw) -> list:
    """Per-frame (k, 5) boxes from a ``prep.faces`` backend (stands in for upstream's S3FD), or from
    upstream's S3FD itself with ``backend="s3fd"`` (needs ``sfd_face.pth``; ``evalkit.nets.s3fd``; pass
    ``scale=0.25`` for upstream's ``facedet_scale``)."""
    if backend == "s3fd":
        from .s3fd import S3FDDetector, load_s3fd

        weights = backend_kw.pop("weights", None)
        return S3FDDetector(load_s3fd(weights), **backend_kw).detect(frames, scale=scale)
    from prep.faces import get_backend

    return get_backend(backend, **backend_kw).detect(frames, scale=scale)


def aligned_crops(crops_rgb: np.ndarray) -> np.ndarray:
    """``aligned`` mode: our (n, S, S, 3) RGB aligned crops → (n, 224, 224, 3) uint8 BGR (bilinear)."""
    import cv2

    crops_rgb = np.asarray(crops_rgb)
    if crops_rgb.ndim != 4 or crops_rgb.shape[-1] != 3 or crops_rgb.dtype != np.uint8:
        raise ValueError(f"aligned crops must be (n, S, S, 3) uint8 RGB, got {crops_rgb.shape} {crops_rgb.dtype}")
    out = np.empty((len(crops_rgb), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for k, crop in enumerate(crops_rgb):
        resized = crop if crop.shape[:2] == (CROP_SIZE, CROP_SIZE) else cv2.resize(crop, (CROP_SIZE, CROP_SIZE))
        out[k] = resized[..., ::-1]
    return out


__all__ = ["FaceTrack", "CropTrack", "track_faces", "smooth_track", "crop_frame", "crop_track",
           "pipeline_crops", "detect_faces", "aligned_crops", "box_iou", "PIPELINE_PROTOCOL", "CROP_SIZE"]
