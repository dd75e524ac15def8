"""Per-clip 3DMM and landmark series read from the prep shards, and the face measures every part uses.

For each clip (``load_series``): ``mm_pose`` / ``mm_exp`` per frame, the 68 landmarks (crop and source px),
the stored affine, the crops (encoded), the mel, and measures derived from the landmarks:

- **eye aspect ratio** (Soukupová & Čech 2016): ``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)`` per eye, mean of both;
  the **blink target** is its relative drop below the clip's open-eye value (``open_quantile`` of the
  clip's EAR): 0 with open eyes, ~0.6-0.8 for a shut eye;
- **mouth shape**: inner-lip gap, outer-lip height and mouth width, each over the interocular distance;
- **pose features** (:func:`pose_features`): yaw/pitch/roll (rad) and log scale relative to the clip mean,
  translation relative to the clip mean in units of the face radius (RMS landmark radius, source px).

Shards without the 3DMM columns raise :class:`MissingThreeDMM` naming ``talkbench models fetch 3ddfa``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

POSE_DIM = 6  # yaw, pitch, roll, tx, ty, log scale


class MissingThreeDMM(ValueError):
    """The prep output has no 3DMM coefficients (prep ran without the basis)."""


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) → (...) mean eye aspect ratio of both eyes (NaN where landmarks are NaN)."""
    lm = np.asarray(landmarks, np.float64)
    out = []
    for s in (36, 42):
        e = lm[..., s:s + 6, :]
        v = np.linalg.norm(e[..., 1, :] - e[..., 5, :], axis=-1) + np.linalg.norm(e[..., 2, :] - e[..., 4, :], axis=-1)
        h = np.linalg.norm(e[..., 0, :] - e[..., 3, :], axis=-1)
        out.append(v / np.maximum(2.0 * h, 1e-9))
    return (out[0] + out[1]) / 2.0


def interocular(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    return np.linalg.norm(lm[..., 42:48, :].mean(-2) - lm[..., 36:42, :].mean(-2), axis=-1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) → (...) inner-lip gap (points 62-66, mean of the three vertical pairs) / interocular."""
    lm = np.asarray(landmarks, np.float64)
    gap = sum(np.linalg.norm(lm[..., a, :] - lm[..., b, :], axis=-1) for a, b in ((61, 67), (62, 66), (63, 65))) / 3
    return gap / np.maximum(interocular(lm), 1e-9)


def mouth_shape(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) → (..., 3): inner-lip gap, outer-lip height (51-57), mouth width (48-54), / interocular."""
    lm = np.asarray(landmarks, np.float64)
    io = np.maximum(interocular(lm), 1e-9)
    height = np.linalg.norm(lm[..., 51, :] - lm[..., 57, :], axis=-1) / io
    width = np.linalg.norm(lm[..., 48, :] - lm[..., 54, :], axis=-1) / io
    return np.stack([mouth_opening(lm), height, width], -1)


def blink_target(ear: np.ndarray, valid: np.ndarray, open_quantile: float = 0.9) -> tuple[np.ndarray, float]:
    """Relative EAR drop ``clip(1 - ear / ear_open, 0, 1)`` and ``ear_open`` (the clip's open-eye EAR)."""
    ok = valid & np.isfinite(ear)
    ear_open = float(np.quantile(ear[ok], open_quantile)) if ok.any() else float("nan")
    drop = np.clip(1.0 - ear / max(ear_open, 1e-6), 0.0, 1.0)
    return np.where(ok, drop, 0.0).astype(np.float32), ear_open


def face_radius(landmarks_src: np.ndarray, valid: np.ndarray) -> float:
    """Median RMS radius of the landmarks about their centroid (source px): the clip's face size."""
    lm = np.asarray(landmarks_src, np.float64)[valid]
    if not len(lm):
        return float("nan")
    return float(np.median(np.sqrt(((lm - lm.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1))))


def pose_features(mm_pose: np.ndarray, radius: float, centre: np.ndarray | None = None) -> np.ndarray:
    """(T, 6) mm_pose → (T, 6) yaw, pitch, roll, tx, ty, log scale relative to ``centre`` (default: the
    mean over frames of the same quantities); translations in units of ``radius`` source px."""
    p = np.asarray(mm_pose, np.float64)
    raw = np.column_stack([p[:, 0], p[:, 1], p[:, 2], p[:, 3] / radius, p[:, 4] / radius, np.log(p[:, 5])])
    c = raw.mean(0) if centre is None else np.asarray(centre, np.float64)
    return (raw - c).astype(np.float32)


def pose_centre(mm_pose: np.ndarray, radius: float) -> np.ndarray:
    """The raw (un-centred) pose features of frames ``mm_pose`` (T, 6), mean over frames."""
    p = np.atleast_2d(np.asarray(mm_pose, np.float64))
    return np.array([p[:, 0].mean(), p[:, 1].mean(), p[:, 2].mean(), p[:, 3].mean() / radius,
                     p[:, 4].mean() / radius, np.log(p[:, 5]).mean()])


@dataclass
class ClipSeries:
    """One clip's per-frame series (index = frame at 25 fps); ``valid`` marks frames with a face and a fit."""

    clip_id: str
    split: str | None
    speaker: str | None
    num_frames: int
    crop_size: int
    valid: np.ndarray  # (T,) bool
    mm_pose: np.ndarray  # (T, 6)
    mm_exp: np.ndarray  # (T, 10)
    landmarks: np.ndarray  # (T, 68, 2) crop px
    landmarks_src: np.ndarray  # (T, 68, 2) source px
    affine: np.ndarray  # (T, 2, 3) source -> crop
    mel: np.ndarray  # (80, T_mel)
    crops: list | None  # encoded crops (None when not loaded)
    ear: np.ndarray
    blink: np.ndarray  # relative EAR drop (the blink code's target)
    ear_open: float
    mouth: np.ndarray  # (T, 3) mouth_shape
    radius: float

    @property
    def pose(self) -> np.ndarray:
        """(T, 6) pose features relative to the clip mean over its valid frames."""
        centre = pose_centre(self.mm_pose[self.valid], self.radius)
        with np.errstate(invalid="ignore"):
            f = pose_features(self.mm_pose, self.radius, centre)
        return np.where(self.valid[:, None], f, 0.0).astype(np.float32)


def require_3dmm(prep) -> None:
    if not prep.has_3dmm:
        raise MissingThreeDMM(
            f"{prep.path}: the shards have no 3DMM coefficients (prep ran without the 3DMM basis), and the "
            "oneshot3dmm model needs mm_pose / mm_exp. Get the basis with `talkbench models fetch 3ddfa` (or set "
            "TALKBENCH_3DDFA_DIR), then re-run `talkbench prep` into a new output.")


def load_series(prep_out, clip_ids=None, splits=None, crops: bool = False, open_quantile: float = 0.9
                ) -> list[ClipSeries]:
    """The clips of a prep output (``clip_ids``, or those whose split is in ``splits``; all by default) as
    :class:`ClipSeries`, sorted by clip id. ``crops``: also keep the encoded crops."""
    from refmodel.data import open_prep

    prep = open_prep(prep_out)
    require_3dmm(prep)
    clips = prep.clips(audio=True, clip_ids=clip_ids)
    if splits is not None:
        clips = [c for c in clips if c.split in set(splits)]
    cols = ["frame_index", "face_found", "landmarks", "landmarks_src", "affine", "mm_pose", "mm_exp"]
    cols += ["crop"] if crops else []
    out = []
    for clip in clips:
        if clip.mel is None:
            continue
        n = clip.num_frames
        t = prep.clip_frames(clip.clip_id, cols).to_pydict()
        valid = np.zeros(n, bool)
        pose, exp = np.full((n, 6), np.nan, np.float32), np.full((n, 10), np.nan, np.float32)
        lm, lms = np.full((n, 68, 2), np.nan, np.float32), np.full((n, 68, 2), np.nan, np.float32)
        aff = np.full((n, 2, 3), np.nan, np.float32)
        enc = [None] * n if crops else None
        for i, fi in enumerate(t["frame_index"]):
            if not 0 <= fi < n:
                continue
            if t["affine"][i] is not None:
                aff[fi] = np.asarray(t["affine"][i], np.float32).reshape(2, 3)
            if crops:
                enc[fi] = t["crop"][i]
            ok = bool(t["face_found"][i]) and t["mm_exp"][i] is not None and t["landmarks"][i] is not None
            if ok:
                pose[fi], exp[fi] = t["mm_pose"][i], t["mm_exp"][i]
                lm[fi] = np.asarray(t["landmarks"][i], np.float32).reshape(68, 2)
                lms[fi] = np.asarray(t["landmarks_src"][i], np.float32).reshape(68, 2)
                valid[fi] = np.isfinite(pose[fi]).all() and np.isfinite(exp[fi]).all() and pose[fi, 5] > 0
        if not valid.any():
            log.warning("%s: no frame with a face and a 3DMM fit; left out", clip.clip_id)
            continue
        ear = eye_aspect_ratio(lm)
        blink, ear_open = blink_target(ear, valid, open_quantile)
        out.append(ClipSeries(clip.clip_id, clip.split, clip.speaker, n, clip.crop_size, valid, pose, exp, lm, lms,
                              aff, clip.mel, enc, ear.astype(np.float32), blink, ear_open,
                              mouth_shape(lm).astype(np.float32), face_radius(lms, valid)))
    if not out:
        raise ValueError(f"{prep.path}: no clip with faces and 3DMM coefficients"
                         + (f" in splits {list(splits)}" if splits is not None else ""))
    return out


def training_series(prep_out, cfg, crops: bool = False) -> list[ClipSeries]:
    """The clips a config trains on: those of ``cfg.train_splits``, or every clip when none is there."""
    try:
        return load_series(prep_out, splits=cfg.train_splits, crops=crops, open_quantile=cfg.ae.open_quantile)
    except ValueError as e:
        if isinstance(e, MissingThreeDMM):
            raise
        log.warning("no clip in splits %s: training on every clip", list(cfg.train_splits))
        return load_series(prep_out, crops=crops, open_quantile=cfg.ae.open_quantile)


__all__ = ["ClipSeries", "MissingThreeDMM", "load_series", "training_series", "require_3dmm", "eye_aspect_ratio",
           "mouth_opening", "mouth_shape", "interocular", "blink_target", "face_radius", "pose_features",
           "pose_centre", "POSE_DIM"]
