"""Aligned face crops: a fixed 68-point template, similarity alignment, crop warping, mouth mask, paste-back.

Coordinates are pixel-index coordinates (pixel ``(i, j)`` has its centre at ``x = j, y = i``), as in
OpenCV. The template is given in unit crop coordinates ``u`` in [0, 1]; for a crop of side ``S`` it sits
at ``u * S - 0.5``, so crops of every size cover exactly the same region of the face.

The template is the mean shape of the 3DDFA/BFM 3DMM (its 68 iBUG keypoints, identity 0, neutral
expression) projected frontally, made left/right symmetric, scaled so the jaw width (point 0 to 16)
is 0.62 of the crop and centred so the span from the brow tops to the chin is centred at y = 0.56.
That leaves the whole face plus a margin of forehead, cheeks and chin in the crop (brows near
y = 0.27, mouth near y = 0.65, chin at y = 0.85).

Alignment uses the landmarks that do not move with speech -- eye corners, the nose bridge and base --
and the mouth corners at half weight (they anchor the vertical scale; the weight keeps smiles and
open mouths from moving the crop much). The jaw contour is not used: it slides with head yaw.
"""
from __future__ import annotations

import functools

import numpy as np

# 68 iBUG points in unit crop coordinates (see the module docstring for how they were derived).
TEMPLATE = np.array([
    (0.1900, 0.4022), (0.1981, 0.4865), (0.2139, 0.5631), (0.2299, 0.6324),
    (0.2530, 0.7063), (0.2944, 0.7653), (0.3437, 0.8005), (0.4067, 0.8296),
    (0.5000, 0.8471), (0.5933, 0.8296), (0.6563, 0.8005), (0.7056, 0.7653),
    (0.7470, 0.7063), (0.7701, 0.6324), (0.7861, 0.5631), (0.8019, 0.4865),
    (0.8100, 0.4022), (0.2577, 0.3094), (0.2928, 0.2819), (0.3380, 0.2729),
    (0.3812, 0.2769), (0.4202, 0.2878), (0.5798, 0.2878), (0.6188, 0.2769),
    (0.6620, 0.2729), (0.7072, 0.2819), (0.7423, 0.3094), (0.5000, 0.3690),
    (0.5000, 0.4201), (0.5000, 0.4710), (0.5000, 0.5146), (0.4494, 0.5525),
    (0.4709, 0.5570), (0.5000, 0.5628), (0.5291, 0.5570), (0.5506, 0.5525),
    (0.3170, 0.3709), (0.3445, 0.3544), (0.3835, 0.3536), (0.4194, 0.3720),
    (0.3866, 0.3810), (0.3462, 0.3827), (0.5806, 0.3720), (0.6165, 0.3536),
    (0.6555, 0.3544), (0.6830, 0.3709), (0.6538, 0.3827), (0.6134, 0.3810),
    (0.3931, 0.6557), (0.4302, 0.6304), (0.4757, 0.6138), (0.5000, 0.6186),
    (0.5243, 0.6138), (0.5698, 0.6304), (0.6069, 0.6557), (0.5669, 0.6734),
    (0.5345, 0.6856), (0.5000, 0.6878), (0.4655, 0.6856), (0.4331, 0.6734),
    (0.4020, 0.6536), (0.4689, 0.6424), (0.5000, 0.6415), (0.5311, 0.6424),
    (0.5980, 0.6536), (0.5303, 0.6524), (0.5000, 0.6540), (0.4697, 0.6524),
], dtype=np.float64)

# iBUG index of each point's mirror image (left <-> right)
MIRROR = np.array([16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20,
                   19, 18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36,
                   41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65])

EYE_CORNERS = (36, 39, 42, 45)
NOSE = (27, 28, 29, 30, 31, 32, 33, 34, 35)
MOUTH_CORNERS = (48, 54)
ALIGN_POINTS = np.array(EYE_CORNERS + NOSE + MOUTH_CORNERS)
ALIGN_WEIGHTS = np.array([1.0] * len(EYE_CORNERS) + [1.0] * len(NOSE) + [0.5] * len(MOUTH_CORNERS))

BORDER_MODES = ("replicate", "reflect", "constant")


def template(crop_size: int) -> np.ndarray:
    """The 68-point template in pixel coordinates of a ``crop_size`` crop, (68, 2) float64."""
    return TEMPLATE * float(crop_size) - 0.5


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection) mapping ``src`` to ``dst``.

    Closed form (Umeyama 1991) with optional per-point weights. Returns a (2, 3) float64 matrix ``M``
    with ``dst ~= M[:, :2] @ src + M[:, 2]``.
    """
    return _umeyama_to(np.asarray(src, np.float64), _UmeyamaTarget(dst, weights))


class _UmeyamaTarget:
    """What :func:`umeyama` computes from ``dst`` and the weights alone (kept for a fixed template)."""

    def __init__(self, dst, weights=None):
        dst = np.asarray(dst, np.float64)
        w = np.ones(len(dst)) if weights is None else np.asarray(weights, np.float64)
        self.w = w / w.sum()
        self.mu_d = self.w @ dst
        self.weighted_t = ((dst - self.mu_d) * self.w[:, None]).T


def _umeyama_to(src: np.ndarray, target: _UmeyamaTarget) -> np.ndarray:
    w = target.w
    mu_s = w @ src
    s0 = src - mu_s
    cov = target.weighted_t @ s0
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if (u[0, 0] * u[1, 1] - u[0, 1] * u[1, 0]) * (vt[0, 0] * vt[1, 1] - vt[0, 1] * vt[1, 0]) < 0:
        sign[-1] = -1.0  # a reflection: the determinants of orthogonal u, vt are +-1
    rot = (u * sign) @ vt
    var_s = float((w * (s0 ** 2).sum(1)).sum())
    scale = float((sig * sign).sum()) / max(var_s, 1e-12)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = target.mu_d - m[:, :2] @ mu_s
    return m


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a (2, 3) affine."""
    a = np.asarray(affine, np.float64)
    p = np.asarray(points, np.float64)
    return p @ a[:, :2].T + a[:, 2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine (crop -> source for an alignment affine)."""
    a = np.asarray(affine, np.float64)
    lin = np.linalg.inv(a[:, :2])
    return np.hstack([lin, -(lin @ a[:, 2])[:, None]])


def similarity_from_landmarks(lms68: np.ndarray, crop_size: int = 256) -> np.ndarray:
    """The (2, 3) source->crop similarity aligning 68 source-pixel landmarks to the template."""
    lms68 = np.asarray(lms68, np.float64)
    if lms68.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lms68.shape}")
    return _umeyama_to(lms68[ALIGN_POINTS], _template_target(int(crop_size)))


@functools.lru_cache(maxsize=8)
def _template_target(crop_size: int) -> _UmeyamaTarget:
    return _UmeyamaTarget(template(crop_size)[ALIGN_POINTS], ALIGN_WEIGHTS)


# ---- a similarity as (centre x, centre y, log side, angle): the form that is smoothed over time

def similarity_params(affine: np.ndarray, crop_size: int) -> np.ndarray:
    """(cx, cy, log(side), angle) of the crop square in the source frame for a source->crop similarity.

    ``cx, cy`` is the crop centre in source px, ``side`` the crop side in source px, ``angle`` the
    rotation of the crop's x axis in the source frame (radians).
    """
    inv = invert_affine(affine)
    c = apply_affine(inv, np.array([crop_size / 2.0 - 0.5, crop_size / 2.0 - 0.5]))
    scale = float(np.hypot(inv[0, 0], inv[1, 0]))
    angle = float(np.arctan2(inv[1, 0], inv[0, 0]))
    return np.array([c[0], c[1], np.log(scale * crop_size), angle])


def affine_from_params(params: np.ndarray, crop_size: int) -> np.ndarray:
    """Inverse of :func:`similarity_params`: the (2, 3) source->crop similarity."""
    cx, cy, log_side, angle = (float(v) for v in params)
    scale = np.exp(log_side) / crop_size  # source px per crop px
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    lin = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([crop_size / 2.0 - 0.5] * 2)
    inv = np.hstack([lin, (np.array([cx, cy]) - lin @ centre)[:, None]])
    return invert_affine(inv)


def default_affine(frame_hw: tuple[int, int], crop_size: int) -> np.ndarray:
    """Source->crop affine of the centred square covering the frame's short side (no face ever seen)."""
    h, w = frame_hw
    side = float(min(h, w))
    return affine_from_params(np.array([(w - 1) / 2.0, (h - 1) / 2.0, np.log(side), 0.0]), crop_size)


def _border(mode: str):
    import cv2

    try:
        return {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101,
                "constant": cv2.BORDER_CONSTANT}[mode]
    except KeyError:
        raise ValueError(f"border mode {mode!r} not one of {BORDER_MODES}") from None


def warp_crop(frame: np.ndarray, affine: np.ndarray, crop_size: int = 256,
              border: str = "replicate") -> np.ndarray:
    """The aligned (S, S, C) crop: bilinear sampling of ``frame`` at ``invert_affine(affine)``.

    Parts of the crop outside the frame use ``border``: "replicate" (default; repeats the edge pixel so
    a model never sees an artificial black edge), "reflect", or "constant" (black).
    """
    import cv2

    # a row-strided view (a region of a frame) is read in place: no copy, the same pixels out
    return cv2.warpAffine(np.asarray(frame), np.asarray(affine, np.float64),
                          (int(crop_size), int(crop_size)), flags=cv2.INTER_LINEAR,
                          borderMode=_border(border), borderValue=0)


def _ramp_outside(hard: np.ndarray, width: float) -> np.ndarray:
    """1 on ``hard``, falling linearly to 0 at ``width`` px outside it."""
    import cv2

    if width <= 0:
        return hard.astype(np.float32)
    dist = cv2.distanceTransform((hard == 0).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(1.0 - dist / float(width), 0.0, 1.0).astype(np.float32)


def mouth_mask(crop_size: int = 256, landmarks: np.ndarray | None = None,
               feather: float | None = None) -> np.ndarray:
    """Lower-face inpainting region of an aligned crop, (S, S) float32 in [0, 1].

    Definition: the inside of the jaw contour (points 1..15, closed by the chord from 1 to 15) below the
    horizontal line through the nose tip (point 30), grown by 2 % of ``S`` so the chin edge and the
    lips' surroundings are included, then feathered by a linear ramp of ``feather`` px (default 3 % of
    ``S``) outward. It covers mouth, lips, chin and lower cheeks -- everything that moves with speech --
    and leaves eyes and nose visible as identity/pose reference. With ``landmarks`` (68 crop-coordinate
    points of the frame) the region follows that face; without, the template face (same mask for every
    frame, as Wav2Lip/LatentSync-style models use).
    """
    import cv2

    s = int(crop_size)
    pts = template(s) if landmarks is None else np.asarray(landmarks, np.float64)
    feather = 0.03 * s if feather is None else float(feather)
    hard = np.zeros((s, s), np.uint8)
    hull = cv2.convexHull(np.round(pts[1:16] * 16).astype(np.int32))
    cv2.fillConvexPoly(hard, hull, 1, lineType=cv2.LINE_8, shift=4)
    top = int(np.ceil(pts[30, 1]))
    hard[:max(0, min(top, s))] = 0
    if hard.any():
        dist = cv2.distanceTransform((hard == 0).astype(np.uint8), cv2.DIST_L2, 5)
        hard = (dist <= 0.02 * s).astype(np.uint8)
        hard[:max(0, min(top, s))] = 0  # growing never raises the top edge above the nose tip
    return _ramp_outside(hard, feather)


def crop_border_alpha(crop_size: int, feather: float) -> np.ndarray:
    """(S, S) alpha that is 1 inside and ramps to 0 over ``feather`` px at the crop's edges."""
    s = int(crop_size)
    d = np.minimum(np.arange(s) + 0.5, s - 0.5 - np.arange(s))
    ramp = np.clip(d / max(float(feather), 1e-6), 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :]).astype(np.float32)


def paste_back(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None,
               feather: float | None = None) -> np.ndarray:
    """Blend an aligned (S, S, 3) crop back into a copy of the source ``frame``.

    ``affine`` is the source->crop affine the crop was taken with. ``mask`` (S, S) in [0, 1] limits
    the pasted region (e.g. :func:`mouth_mask`, so only the generated lower face replaces the source);
    without it the whole crop is pasted. Either way the crop's own edges are feathered over
    ``feather`` crop px (default 4 % of S) so no seam shows. Only the frame region under the crop is
    touched; the result is uint8 like ``frame``.
    """
    import cv2

    frame = np.asarray(frame)
    crop = np.asarray(crop)
    s = crop.shape[0]
    if crop.shape[:2] != (s, s):
        raise ValueError(f"crop must be square, got {crop.shape}")
    feather = 0.04 * s if feather is None else float(feather)
    alpha = crop_border_alpha(s, feather)
    if mask is not None:
        mask = np.asarray(mask, np.float32)
        if mask.shape != (s, s):
            raise ValueError(f"mask shape {mask.shape} does not match crop {crop.shape[:2]}")
        alpha = alpha * np.clip(mask, 0.0, 1.0)
    h, w = frame.shape[:2]
    inv = invert_affine(affine)
    corners = apply_affine(inv, np.array([[-0.5, -0.5], [s - 0.5, -0.5], [-0.5, s - 0.5], [s - 0.5, s - 0.5]]))
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 1, 0, w))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, 0, w))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 1, 0, h))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, 0, h))
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    # affine of the region of interest: ROI px -> crop px
    roi_affine = np.asarray(affine, np.float64).copy()
    roi_affine[:, 2] += roi_affine[:, :2] @ np.array([x0, y0], np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(np.ascontiguousarray(crop), roi_affine, size, flags=flags,
                            borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, roi_affine, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if warped.ndim == 2:
        warped = warped[..., None]
    a = a[..., None] if frame.ndim == 3 else a
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region * (1.0 - a) + warped.reshape(region.shape).astype(np.float32) * a
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(frame.dtype)
    return out


__all__ = ["TEMPLATE", "MIRROR", "ALIGN_POINTS", "ALIGN_WEIGHTS", "BORDER_MODES", "template", "umeyama",
           "apply_affine", "invert_affine", "similarity_from_landmarks", "similarity_params",
           "affine_from_params", "default_affine", "warp_crop", "mouth_mask", "crop_border_alpha",
           "paste_back"]
