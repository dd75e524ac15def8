"""Aligned-crop geometry shared by the pixel, landmark and sync metrics: the reference frame's stored affine,
rescaled to the evaluation crop size and to the generated video's resolution, applied to both sides."""
from __future__ import annotations

import numpy as np

SEQ_SIZE = 224  # crops for SyncNet (its input size) and the sync expert (which resizes itself)

CROP_PROTOCOL = {
    "crop_warp": "reference frame's stored affine (rescaled to crop_size), bilinear, border replicate, applied "
                 "to reference and generated frames alike (generated frames of another size: affine composed "
                 "with the size ratio)"}


def affine_matrix(values) -> np.ndarray:
    """Stored 6 floats (2x3 row-major, source px -> crop px) as a float64 (2, 3) matrix."""
    return np.asarray(values, dtype=np.float64).reshape(2, 3)


def rescale_affine(affine: np.ndarray, out_scale: float = 1.0, src_scale=(1.0, 1.0)) -> np.ndarray:
    """Affine for a crop ``out_scale`` times larger, taking a source ``src_scale`` (sx, sy) times smaller.

    ``src_scale`` maps the generated frame's pixels to the reference frame's (``ref_w / gen_w``, ...),
    so the reference affine can be applied to a generated video of another resolution.
    """
    a = np.asarray(affine, dtype=np.float64).reshape(2, 3)
    m = np.vstack([a, [0.0, 0.0, 1.0]])
    pre = np.diag([float(src_scale[0]), float(src_scale[1]), 1.0])
    post = np.diag([float(out_scale), float(out_scale), 1.0])
    return (post @ m @ pre)[:2]


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(…, 2) points through a (2, 3) affine."""
    a = np.asarray(affine, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return p @ a[:, :2].T + a[:, 2]


def fill_affines(affines: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Affines with invalid rows replaced by the nearest valid row (earlier wins a tie); for metrics that
    need a crop on every frame (SyncNet windows). All-invalid input is returned unchanged."""
    out = np.array(affines, dtype=np.float64, copy=True)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    for i in np.flatnonzero(~np.asarray(valid, bool)):
        out[i] = out[idx[np.argmin(np.abs(idx - i))]]
    return out


def crop_affines(affines: np.ndarray, out_scale: float, src_scale) -> np.ndarray:
    """(n, 6) stored affines → (n, 2, 3) rescaled ones (NaN where the stored one is missing)."""
    if not len(affines):
        return np.zeros((0, 2, 3))
    return np.stack([rescale_affine(a, out_scale, src_scale) if np.all(np.isfinite(a)) else np.full((2, 3), np.nan)
                     for a in np.asarray(affines).reshape(-1, 2, 3)])


def warp_many(frames: np.ndarray, affines: np.ndarray, size: int) -> np.ndarray:
    """Aligned crops of ``frames`` (prep's own warp, so crops match the shards)."""
    from prep.faces.align import warp_crop

    if not len(frames):
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([warp_crop(f, np.asarray(a, np.float64).reshape(2, 3), int(size)) for f, a in zip(frames, affines)])


def resize_to(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Frames resized (bilinear) to (H, W) when they are another size."""
    import cv2

    if frames.shape[1:3] == tuple(hw):
        return frames
    return np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for f in frames])


__all__ = ["SEQ_SIZE", "CROP_PROTOCOL", "affine_matrix", "rescale_affine", "transform_points", "fill_affines",
           "crop_affines", "warp_many", "resize_to"]
