"""CPBD: cumulative probability of blur detection (Narvekar & Karam, IEEE TIP 2011), a no-reference sharpness.

Higher is sharper (the fraction of edge pixels whose blur is *not* detected, in [0, 1]). The numbers are
those of the python ``cpbd`` package (1.0.7, a port of the authors' MATLAB code; the package itself no
longer imports on SciPy >= 1.2, ``cpbd-py312`` is the same code with the import fixed), vectorised:

1. grey image (PIL ``convert("L")`` of the RGB face crop: ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``)
   as float64 in 0-255;
2. block classification edges: ``skimage.feature.canny(image)`` (sigma 1, its default thresholds);
3. edge-width edges: Octave's Sobel, vertical edges only (``|h|``-normalised ``HSOBEL_WEIGHTS`` transposed,
   ``scipy.ndimage.convolve``), squared response kept above ``2·sqrt(mean)`` and thinned (local maximum
   along rows or columns);
4. Marziliano edge widths along rows at those edges whose gradient angle (``atan2(gy, gx)`` of
   ``numpy.gradient``; 0 where ``gx == 0``) rounds to 0° or ±180° (``45·round(angle/45)``): the walk
   left and right while the intensity keeps falling (180°) / rising (0°), at most 101 px a side;
5. 64×64 blocks (whole blocks only) with more than 0.2 % canny edges are edge blocks; their block
   contrast ``max − min`` picks the just-noticeable width (5 for contrast ≤ 50, else 3); each edge width
   ``w`` gives ``P = 1 − exp(−(w / w_JNB)^3.6)``;
6. CPBD = the fraction of those edges with ``round(100·P) ≤ 63`` (``P ≤ P_JNB = 63 %``); 0 without edges.

Applied to the face crop of every ``cpbd_stride``-th face frame of the generated video (the aligned crop
at ``crop_size``: the reference affine in reconstruction / cross mode, the video's own tracked face in
reference-free mode); the video value is the mean over those frames.
"""
from __future__ import annotations

import numpy as np

from ..geometry import CROP_PROTOCOL
from .base import VideoMeanMetric, base_protocol, frame_mean_spec

VERSION = "cpbd-1"
THRESHOLD = 0.002  # fraction of canny edge pixels that makes a block an edge block
BETA = 3.6
BLOCK = 64
JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST, CONTRAST_SPLIT = 5.0, 3.0, 50  # widths by block contrast (<= 50: 5)
P_JNB_BUCKET = 63  # histogram buckets 0 .. 63 (of 0 .. 100) count as "blur not detected"
MAX_WALK = 100  # margins 0 .. 100: an edge side is at most 101 px wide


def to_grey(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) → PIL ``convert("L")`` grey as float64; a 2-D image is used as it is."""
    a = np.asarray(image)
    if a.ndim == 2:
        return a.astype(np.float64)
    if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image or a 2-D grey one, got {a.shape} {a.dtype}")
    r, g, b = (a[..., k].astype(np.uint32) for k in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.float64)


def sobel_edges(image: np.ndarray) -> np.ndarray:
    """Octave-style thinned vertical-edge map (the package's ``octave.sobel``)."""
    from scipy.ndimage import convolve

    h1 = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 4.0  # skimage HSOBEL_WEIGHTS
    h1 /= np.sum(np.abs(h1))
    strength = np.square(convolve(image, h1.T))
    strength[strength <= 2 * np.sqrt(np.mean(strength))] = 0
    zc, zr = np.zeros((strength.shape[0], 1)), np.zeros((1, strength.shape[1]))
    x = (strength > np.c_[zc, strength[:, :-1]]) & (strength > np.c_[strength[:, 1:], zc])
    y = (strength > np.r_[zr, strength[:-1, :]]) & (strength > np.r_[strength[1:, :], zr])
    return x | y


def _runs(cond: np.ndarray, reverse: bool) -> np.ndarray:
    """Per row, how many consecutive True values start at each column (going right, or left)."""
    out = np.zeros(cond.shape, np.int64)
    cols = range(cond.shape[1] - 1, -1, -1) if not reverse else range(cond.shape[1])
    step = 1 if not reverse else -1
    prev = np.zeros(cond.shape[0], np.int64)
    for c in cols:
        nxt = prev if 0 <= c + step < cond.shape[1] else np.zeros_like(prev)
        prev = np.where(cond[:, c], nxt + 1, 0)
        out[:, c] = prev
    return out


def edge_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Marziliano widths at the edge pixels (0 elsewhere), as the package's ``marziliano_method``."""
    h, w = image.shape
    widths = np.zeros(image.shape)
    gy, gx = np.gradient(image)
    angles = np.where(gx != 0, np.arctan2(gy, gx) * (180 / np.pi), 0.0)
    if not np.any(angles) or h < 3 or w < 3:
        return widths
    q = 45 * np.round(angles / 45)
    d = np.diff(image, axis=1)  # d[:, k] = image[:, k+1] - image[:, k]
    # runs of falling (d < 0) / rising (d > 0) steps ending at (going left) or starting at (going right) k
    fall_left, fall_right = _runs(d < 0, reverse=True), _runs(d < 0, reverse=False)
    rise_left, rise_right = _runs(d > 0, reverse=True), _runs(d > 0, reverse=False)
    zero = np.zeros((h, 1), np.int64)
    pad = lambda r: np.concatenate([zero, r, zero, zero], axis=1)  # index k+1: d-index k; -1 and >= w-1: 0
    fall_left, fall_right, rise_left, rise_right = map(pad, (fall_left, fall_right, rise_left, rise_right))
    rows, cols = np.nonzero(edges[1:-1, 1:-1])
    rows, cols = rows + 1, cols + 1
    qa = q[rows, cols]
    left, right = cols - 2 + 1, cols + 1 + 1  # padded indices of d[col-2] and d[col+1]
    for sel, lr, rr in (((qa == 180) | (qa == -180), fall_left, fall_right), (qa == 0, rise_left, rise_right)):
        r, c = rows[sel], cols[sel]
        wl = np.minimum(lr[r, left[sel]], MAX_WALK) + 1
        wr = np.minimum(rr[r, right[sel]], MAX_WALK) + 1
        widths[r, c] = wl + wr
    return widths


def cpbd_grey(image: np.ndarray) -> float:
    """CPBD of a grey float64 (0-255) image."""
    from skimage.feature import canny

    image = np.asarray(image, np.float64)
    canny_edges = canny(image)
    widths = edge_widths(sobel_edges(image), image)
    hist = np.zeros(101)
    total = 0
    for i in range(image.shape[0] // BLOCK):
        for j in range(image.shape[1] // BLOCK):
            rs, cs = slice(BLOCK * i, BLOCK * (i + 1)), slice(BLOCK * j, BLOCK * (j + 1))
            if np.count_nonzero(canny_edges[rs, cs]) <= BLOCK * BLOCK * THRESHOLD:
                continue
            bw = widths[rs, cs]
            bw = bw[bw != 0]
            block = image[rs, cs]
            jnb = JNB_LOW_CONTRAST if int(np.max(block) - np.min(block)) <= CONTRAST_SPLIT else JNB_HIGH_CONTRAST
            p = 1 - np.exp(-np.abs(bw / jnb) ** BETA)
            np.add.at(hist, np.round(p * 100).astype(np.int64), 1)
            total += bw.size
    if total:
        hist = hist / total
    return float(np.sum(hist[:P_JNB_BUCKET + 1]))


def cpbd(image: np.ndarray) -> float:
    """CPBD sharpness of one RGB uint8 (or grey) image: higher is sharper, in [0, 1]."""
    return cpbd_grey(to_grey(image))


def cpbd_frames(frames) -> np.ndarray:
    return np.array([cpbd(f) for f in frames], np.float64)


class CPBD(VideoMeanMetric):
    """CPBD per video: ``update(face_crops)`` per chunk (NaN rows: frames not scored), ``end_video()``."""

    higher_is_better = True

    def frame_values(self, crops) -> np.ndarray:
        return cpbd_frames(crops)


def _protocol(config) -> dict:
    free = config.mode == "reference-free"
    return {**base_protocol(VERSION, config), "impl": "python cpbd 1.0.7 (Narvekar & Karam 2011), vectorised",
            "grey": "PIL convert('L') of RGB", "canny": "skimage.feature.canny(sigma=1, default thresholds)",
            "edge_width": "Marziliano along rows at Octave-Sobel vertical edges, angles 0/180 only",
            "block": BLOCK, "edge_block_threshold": THRESHOLD, "beta": BETA,
            "jnb": {"contrast<=50": JNB_LOW_CONTRAST, "else": JNB_HIGH_CONTRAST}, "p_jnb_bucket": P_JNB_BUCKET,
            "region": "aligned face crop of the generated video", "crop_size": config.crop_size,
            **({"crop_warp": "the video's own tracked face affine (prep.faces.FaceTracker)"} if free else CROP_PROTOCOL),
            "frames_scored": "every cpbd_stride-th frame with a face", "frame_stride": config.cpbd_stride,
            "aggregation": "mean over videos of the per-video mean over frames"}


def _feed(metric: CPBD, chunk) -> None:
    crops, pos = chunk.gen_face_crops
    keep = (chunk.index[pos] % int(chunk.config.cpbd_stride)) == 0 if len(pos) else np.zeros(0, bool)
    vals = np.full(chunk.size, np.nan)
    if keep.any():
        vals[pos[keep]] = metric.frame_values(crops[keep])
    metric.add_frame_values(vals)


SPECS = (frame_mean_spec(
    name="cpbd", label="CPBD", version=VERSION, unit="", higher_is_better=True,
    modes=("reconstruction", "cross", "reference-free"), needs=("gen_face_crops",),
    description="no-reference sharpness of the generated face crop (cumulative probability of blur detection)",
    protocol=_protocol, new=lambda config: CPBD(), feed=_feed, decimals=4, valid_range=(0.0, 1.0), order=80),)

__all__ = ["CPBD", "cpbd", "cpbd_grey", "cpbd_frames", "to_grey", "sobel_edges", "edge_widths", "SPECS"]
