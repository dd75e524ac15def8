"""A small synthetic talking-face dataset for the offline demo, made from nothing but installed packages.

Faces are real photographs shipped by dependencies (scikit-image's ``astronaut``: Eileen Collins, NASA,
public domain; matplotlib's ``grace_hopper.jpg``: Grace Hopper, US Navy, public domain). Each is cropped to
a head-and-shoulders frame and animated:

* **Audio** is speech-like (:func:`synthesize_speech`): syllables at ~4.5 Hz grouped into words and
  phrases with pauses, a voiced harmonic source with a moving pitch contour, shaped by vowel formants
  (additive synthesis with a cascade-resonator spectral envelope), plus consonant noise bursts.
* **Mouth drive** (:func:`mouth_openness`) is a pure function of that audio (band-limited loudness per
  video frame), so the audio → mouth relation a lip-sync model learns is real and measurable.
* **Video**: dlib's 68 landmarks are found once on the still; per frame a thin-plate-spline warp drops the
  jaw and lower lip by the drive (upper lip rises slightly, corners come in), the cavity between the inner
  lips is painted (dark mouth, upper teeth), and a slow head motion (rotation, translation, scale) is
  applied to the head region only, fading out towards the background.
* **Blinks** (:mod:`talkbench.demo_blinks`): the eyelids close on a random schedule known per clip
  (~17 blinks a minute, 0.2-0.36 s each), recorded frame by frame in ``synthesis.json``.

:func:`synthesize_dataset` writes ``OUT/<speaker>/<clip>.mp4`` (H.264 + AAC via ``prep.media.write_video``),
``OUT/speakers.csv`` (path, split, speaker) and ``OUT/synthesis.json`` (provenance and parameters).
Same arguments → byte-identical files on the same platform.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .demo_blinks import BlinkSchedule, close_eyes
from .demo_blinks import catmull_rom as _catmull_rom
from .demo_speech import (FPS, OPEN_FLOOR_DB, OPEN_TOP_DB, SAMPLE_RATE, mouth_openness,  # noqa: F401 (public API)
                          synthesize_speech)

log = logging.getLogger(__name__)

_JAW = np.arange(0, 17)
_CHIN = 8
_STABLE = np.arange(17, 48)  # brows, nose, eyes: do not move when the jaw drops
_INNER_LIPS = np.arange(60, 68)
_INTEROCULAR_FRAC = 0.2  # interocular distance as a fraction of the output side
_EYES_Y_FRAC = 0.41  # vertical position of the eye centre in the output


@dataclass(frozen=True)
class FaceSource:
    """A real face photograph shipped by an installed package."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    origin: str  # where it comes from and its licence


_PHOTOS = (  # (name, package, path inside the package, origin and licence)
    ("astronaut", "skimage", "data/astronaut.png",
     "scikit-image skimage.data.astronaut(): Eileen Collins, NASA portrait, public domain"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
     "matplotlib sample_data/grace_hopper.jpg: Grace Hopper, US Navy portrait, public domain"),
)


def source_faces() -> list[FaceSource]:
    """Real human-face photos shipped inside installed packages (read as files: importing scikit-image
    or matplotlib just for them costs seconds). Missing ones are skipped with a warning."""
    from PIL import Image

    from talkbase.weights import WeightsNotFound, package_data_dir

    out = []
    for name, package, rel, origin in _PHOTOS:
        try:
            path = package_data_dir(package) / rel
            with Image.open(path) as im:
                out.append(FaceSource(name, np.asarray(im.convert("RGB")), origin))
        except (WeightsNotFound, OSError) as e:
            log.warning("face photo %s unavailable: %s", name, e)
    if not out:
        raise RuntimeError("no face photo found in scikit-image or matplotlib; the demo needs one")
    return out


_DLIB_CACHE: dict = {}


def dlib_face_models():
    """(HOG frontal face detector, 68-point shape predictor), loaded once per process."""
    if not _DLIB_CACHE:
        import dlib

        from talkbase.weights import dlib_model

        _DLIB_CACHE["detector"] = dlib.get_frontal_face_detector()
        _DLIB_CACHE["predictor"] = dlib.shape_predictor(str(dlib_model("shape_predictor_68_face_landmarks.dat")))
    return _DLIB_CACHE["detector"], _DLIB_CACHE["predictor"]


def detect_landmarks(rgb: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """68 dlib landmarks (68, 2) float of the largest face (HOG detector), or None without a face."""
    detector, predictor = dlib_face_models()
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    boxes = detector(img, upsample)
    if not boxes:
        return None
    shape = predictor(img, max(boxes, key=lambda b: b.area()))
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def _eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)


@dataclass
class FaceStill:
    """A head-and-shoulders still at the output size with its 68 landmarks (output px)."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray
    origin: str

    @property
    def interocular(self) -> float:
        a, b = _eye_centres(self.landmarks)
        return float(np.linalg.norm(b - a))


def frame_face(source: FaceSource, size: int) -> FaceStill:
    """Crop and scale a photo so the eyes sit at a fixed place and scale in a ``size``² frame."""
    import cv2

    lm = detect_landmarks(source.image)
    if lm is None:
        raise RuntimeError(f"{source.name}: dlib finds no face in the source photo")
    left, right = _eye_centres(lm)
    scale = _INTEROCULAR_FRAC * size / float(np.linalg.norm(right - left))
    mid = (left + right) / 2
    m = np.array([[scale, 0, size / 2 - scale * mid[0]], [0, scale, _EYES_Y_FRAC * size - scale * mid[1]]])
    img = cv2.warpAffine(source.image, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT_101)
    lm_out = detect_landmarks(img)  # re-detect: landmarks of the resampled pixels themselves
    if lm_out is None:
        lm_out = lm @ m[:, :2].T + m[:, 2]
    return FaceStill(source.name, img, lm_out, source.origin)


def _jaw_drop_displacements(lm: np.ndarray, gap: float) -> np.ndarray:
    """Displacement (68, 2) of every landmark at full mouth opening; ``gap`` = inner-lip opening, px.

    The jaw rotates down: chin and lower lip follow (sides less), the upper lip rises a little,
    the corners drop and come in. Brows, eyes and nose stay put.
    """
    d = np.zeros((68, 2))
    mouth_centre = lm[60:68].mean(axis=0)
    for i in _JAW:
        d[i, 1] = 0.85 * gap * [1.0, 0.94, 0.8, 0.58, 0.33, 0.12, 0, 0, 0][abs(i - _CHIN)]
    d[[55, 56, 57, 58, 59], 1] = gap * np.array([0.6, 0.85, 0.95, 0.85, 0.6])
    d[[65, 66, 67], 1] = gap * np.array([0.75, 0.9, 0.75])
    d[[49, 50, 51, 52, 53], 1] = -gap * np.array([0.03, 0.06, 0.08, 0.06, 0.03])
    d[[61, 62, 63], 1] = -gap * np.array([0.08, 0.1, 0.08])
    for i in (48, 54, 60, 64):  # corners: down and towards the mouth centre
        d[i, 1] = 0.3 * gap
        d[i, 0] = 0.12 * gap * np.sign(mouth_centre[0] - lm[i, 0])
    return d


class MouthAnimator:
    """Renders frames of one still with a given mouth opening and head pose (backward warps, cv2.remap).

    The jaw-drop field is a thin-plate spline through the landmark displacements at full opening, pinned
    at the stable landmarks, the frame border and a ring below the jaw; a frame with opening ``o`` uses
    ``o`` times it (inverted by fixed-point iteration). Head motion is a similarity about the face centre,
    applied fully on the head and faded out towards the background; a camera similarity moves everything.
    """

    def __init__(self, still: FaceStill, max_gap_frac: float = 0.32):
        import cv2
        from scipy.interpolate import RBFInterpolator

        self.still = still
        size = still.image.shape[0]
        lm = still.landmarks
        e = still.interocular
        self.gap = max_gap_frac * e
        disp = _jaw_drop_displacements(lm, self.gap)
        self.lip_displacement = disp[_INNER_LIPS]
        centre = lm.mean(axis=0)
        # ring below the jaw: skin under the chin follows the jaw partly, further out not at all
        jaw_out = lm[2:15] + 0.45 * (lm[2:15] - centre)
        jaw_far = lm[2:15] + 1.1 * (lm[2:15] - centre)
        border = np.linspace(0, size - 1, 9)
        edge = np.array([(x, y) for x in border for y in (0, size - 1)] + [(x, y) for y in border[1:-1]
                                                                         for x in (0, size - 1)], float)
        # The inner lips of a closed mouth coincide but move apart: pin the lip bodies instead, a
        # quarter of the way from the inner towards the outer lip line; the seam between them stretches
        # and is painted over by the oral cavity.
        upper_body = lm[[61, 62, 63]] + 0.25 * (lm[[50, 51, 52]] - lm[[61, 62, 63]])
        lower_body = lm[[67, 66, 65]] + 0.25 * (lm[[58, 57, 56]] - lm[[67, 66, 65]])
        keep = np.r_[_JAW, 48:60, 60, 64]
        src = np.concatenate([lm[keep], upper_body, lower_body, lm[_STABLE], jaw_out, jaw_far, edge])
        val = np.concatenate([disp[keep], disp[[61, 62, 63]], disp[[67, 66, 65]], np.zeros((len(_STABLE), 2)),
                              0.35 * disp[2:15], np.zeros((len(jaw_far) + len(edge), 2))])
        # a little smoothing keeps the spline well-posed if two landmarks nearly coincide
        tps = RBFInterpolator(src, val, kernel="thin_plate_spline", smoothing=1e-3)
        step = 4
        coarse = np.arange(0, size + step, step, dtype=np.float64)
        gx, gy = np.meshgrid(coarse, coarse)
        field = tps(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(len(coarse), len(coarse), 2)
        # resample the coarse field to pixel centres (coarse node k sits at pixel k * step)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        self._xs, self._ys = xs, ys
        self.field = cv2.remap(field.astype(np.float32), xs / step, ys / step, cv2.INTER_LINEAR)
        # head region weight: 1 on the head, smooth fall-off to 0 on the background
        self.head_centre = centre - np.array([0.0, 0.3 * e])
        r = np.sqrt(((xs - self.head_centre[0]) / (1.7 * e)) ** 2 + ((ys - self.head_centre[1]) / (2.2 * e)) ** 2)
        u = np.clip(r - 1.0, 0.0, 1.0)
        self.head_weight = (1.0 - u * u * (3 - 2 * u)).astype(np.float32)

    @staticmethod
    def _similarity(angle_deg: float, scale: float, shift, centre) -> np.ndarray:
        a = math.radians(angle_deg)
        rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        c = np.asarray(centre, float)
        return np.hstack([rot, (c + np.asarray(shift, float) - rot @ c)[:, None]])

    def render(self, openness: float, head=(0.0, 1.0, (0.0, 0.0)), camera=(0.0, 1.0, (0.0, 0.0)),
               blink: float = 0.0) -> np.ndarray:
        """One RGB frame: mouth opened by ``openness`` in [0, 1], eyelids closed by ``blink`` in [0, 1];
        ``head``/``camera`` = (degrees, scale, (dx, dy) px) similarities about the head / frame centre."""
        import cv2

        size = self.still.image.shape[0]
        h = self._similarity(*head, self.head_centre)
        c = self._similarity(*camera, (size / 2, size / 2))
        hi = cv2.invertAffineTransform(h).astype(np.float32)
        ci = cv2.invertAffineTransform(c).astype(np.float32)
        xs, ys = self._xs, self._ys
        # output -> before camera -> before head motion (blended) -> before jaw drop
        qx = ci[0, 0] * xs + ci[0, 1] * ys + ci[0, 2]
        qy = ci[1, 0] * xs + ci[1, 1] * ys + ci[1, 2]
        w = cv2.remap(self.head_weight, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        px = qx + w * (hi[0, 0] * qx + hi[0, 1] * qy + hi[0, 2] - qx)
        py = qy + w * (hi[1, 0] * qx + hi[1, 1] * qy + hi[1, 2] - qy)
        sx, sy = px, py
        o = float(np.clip(openness, 0.0, 1.0))
        if o > 0:
            for _ in range(3):  # x = p - o * D(x): fixed point of the inverse jaw-drop warp
                d = cv2.remap(self.field, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                sx, sy = px - o * d[..., 0], py - o * d[..., 1]
        still = close_eyes(self.still.image, self.still.landmarks, blink)
        frame = cv2.remap(still, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if o > 0:
            lips = self.still.landmarks[_INNER_LIPS] + o * self.lip_displacement
            lips = lips @ h[:, :2].T + h[:, 2]
            lips = lips @ c[:, :2].T + c[:, 2]
            frame = self._paint_mouth(frame, lips)
        return frame

    def _paint_mouth(self, frame: np.ndarray, lips: np.ndarray) -> np.ndarray:
        """Dark oral cavity between the inner lips (``lips`` = points 60..67, output px), upper teeth on
        top of it, soft edges. Only a window around the mouth is touched."""
        import cv2

        size = frame.shape[0]
        pad = 4
        x0, y0 = np.maximum(np.floor(lips.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(lips.max(axis=0)).astype(int) + pad + 1, size)
        if x1 <= x0 or y1 <= y0:
            return frame
        lips = lips - [x0, y0]
        h, w = y1 - y0, x1 - x0

        def fill(poly: np.ndarray) -> np.ndarray:  # anti-aliased coverage in [0, 1] (AA needs 8-bit)
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [np.round(poly * 8).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=3)
            return mask.astype(np.float32) / 255.0

        upper = _catmull_rom(lips[:5])  # 60..64: corner to corner along the upper inner lip
        lower = _catmull_rom(lips[[4, 5, 6, 7, 0]])  # 64..67, 60: back along the lower inner lip
        opening = float(np.linalg.norm(lips[6] - lips[2]))
        band = min(0.4 * opening, 0.15 * self.still.interocular)  # visible upper teeth
        # the teeth's lower edge: a smooth arc from corner to corner, ``band`` below the upper lip's middle
        a0, a1 = lips[0], lips[4]
        s = np.clip(((upper[:, 0] - a0[0]) / max(1e-6, a1[0] - a0[0])) * 2 - 1, -1, 1)
        chord = a0[1] + (a1[1] - a0[1]) * (s + 1) / 2
        edge = np.stack([upper[:, 0], chord + (lips[2, 1] - (a0[1] + a1[1]) / 2 + band) * (1 - s * s)], 1)
        cavity = cv2.GaussianBlur(fill(np.concatenate([upper, lower[1:-1]])), (0, 0), 0.7)
        teeth = cv2.GaussianBlur(fill(np.concatenate([upper, edge[::-1]])), (0, 0), 0.7) * cavity
        # light falls off towards the back of the mouth and into the corners
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        centre = lips.mean(axis=0)
        rx = max(1.0, float(np.ptp(lips[:, 0])) / 2)
        ry = max(1.0, opening / 2)
        lateral = np.clip(1.0 - ((xx - centre[0]) / rx) ** 2, 0.0, 1.0)[..., None]
        depth = np.clip(lateral - ((yy - centre[1]) / ry)[..., None] ** 2, 0.0, 1.0)
        mouth = np.array([96.0, 36.0, 40.0], np.float32) * (1.0 - 0.6 * depth)
        tooth = np.array([238.0, 226.0, 204.0], np.float32) * (0.72 + 0.26 * lateral)
        patch = frame[y0:y1, x0:x1].astype(np.float32)
        a, t = cavity[..., None], teeth[..., None]
        patch = patch * (1 - a) + mouth * a
        patch = patch * (1 - t) + tooth * t
        out = frame.copy()
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
        return out


# ------------------------------------------------------------------------------------------ identities

@dataclass(frozen=True)
class _Variant:
    """A derived look-alike: face proportions reshaped, skin tone regraded, optionally mirrored."""

    jaw: float  # horizontal scale of the jaw line about the nose
    chin: float  # vertical scale of the jaw line below the nose bridge
    nose: float
    eyes: float  # horizontal scale of eyes and brows about their centre
    mouth: float
    lightness: float  # Lab L multiplier
    a_shift: float  # Lab a (green-red) offset
    b_shift: float  # Lab b (blue-yellow) offset
    mirror: bool


_VARIANTS = (
    _Variant(1.15, 1.08, 1.25, 1.08, 1.12, 0.88, 6.0, 10.0, True),  # broader, tanned, mirrored
    _Variant(0.88, 0.92, 0.85, 0.94, 0.90, 1.05, -2.0, -6.0, False),  # narrower, paler
)


def _reshape_face(still: FaceStill, v: _Variant) -> np.ndarray:
    """Thin-plate warp moving the landmarks to the variant's proportions (frame border pinned)."""
    import cv2
    from scipy.interpolate import RBFInterpolator

    lm = still.landmarks
    size = still.image.shape[0]
    tgt = lm.copy()

    def scale_x(idx, factor, about):
        tgt[idx, 0] = about + (lm[idx, 0] - about) * factor

    scale_x(_JAW, v.jaw, lm[27:36, 0].mean())
    tgt[_JAW, 1] = lm[27, 1] + (lm[_JAW, 1] - lm[27, 1]) * v.chin
    scale_x(np.arange(31, 36), v.nose, lm[31:36, 0].mean())
    scale_x(np.arange(17, 48), v.eyes, lm[36:48, 0].mean())
    scale_x(np.arange(48, 68), v.mouth, lm[48:68, 0].mean())
    border = np.linspace(0, size - 1, 9)
    edge = np.array([(x, y) for x in border for y in (0, size - 1)] + [(x, y) for y in border[1:-1]
                                                                     for x in (0, size - 1)], float)
    # backward map: at each target landmark, where to sample the original
    tps = RBFInterpolator(np.concatenate([tgt, edge]), np.concatenate([lm - tgt, np.zeros_like(edge)]),
                          kernel="thin_plate_spline", smoothing=1e-3)
    step = 4
    coarse = np.arange(0, size + step, step, dtype=np.float64)
    gx, gy = np.meshgrid(coarse, coarse)
    field = tps(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(len(coarse), len(coarse), 2).astype(np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    d = cv2.remap(field, xs / step, ys / step, cv2.INTER_LINEAR)
    return cv2.remap(still.image, xs + d[..., 0], ys + d[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT_101)


def make_variant(still: FaceStill, variant: int) -> FaceStill:
    """Look-alike ``variant`` (1, 2, ...) of a still: used only when more identities are asked for than
    there are real photos. dlib embeddings of these sit ~0.3–0.4 from their source (real different
    people: > 0.6), so they are distinct speakers for the pipeline but not new people."""
    import cv2

    v = _VARIANTS[(variant - 1) % len(_VARIANTS)]
    img = _reshape_face(still, v)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= v.lightness
    lab[..., 1] += v.a_shift
    lab[..., 2] += v.b_shift
    img = cv2.cvtColor(np.clip(lab + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    if v.mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    lm = detect_landmarks(img)
    if lm is None:
        raise RuntimeError(f"{still.name}: dlib lost the face in variant {variant}")
    return FaceStill(f"{still.name}_v{variant}", img, lm, still.origin + f" (look-alike variant {variant})")


def identity_stills(n_identities: int, size: int = 256) -> list[FaceStill]:
    """``n_identities`` stills: the real photos first, then look-alike variants of them in turn."""
    sources = source_faces()
    base = [frame_face(s, size) for s in sources[:n_identities]]
    out = list(base)
    for i in range(len(base), n_identities):
        out.append(make_variant(base[i % len(base)], i // len(base)))
    return out


# --------------------------------------------------------------------------------------------- clips

@dataclass(frozen=True)
class _Motion:
    """Slow head motion (two sinusoids per degree of freedom) and a fixed camera framing per clip."""

    amp: np.ndarray  # (4, 2): rotation deg, dx, dy (fraction of size), log-scale
    freq: np.ndarray  # (4, 2) Hz
    phase: np.ndarray  # (4, 2)
    camera: tuple  # (deg, scale, (dx, dy) px)

    @classmethod
    def random(cls, rng: np.random.Generator, size: int) -> "_Motion":
        amp = np.array([[2.5, 1.2], [0.012, 0.006], [0.008, 0.004], [0.02, 0.01]]) * rng.uniform(0.6, 1.0, (4, 2))
        freq = rng.uniform(0.12, 0.45, (4, 2))
        phase = rng.uniform(0, 2 * np.pi, (4, 2))
        # zoom in only, and shift no further than the zoom allows, so no border is ever revealed
        zoom = float(rng.uniform(1.0, 1.1))
        room = (zoom - 1.0) / 2 * size
        camera = (0.0, zoom, (float(rng.uniform(-room, room)), float(rng.uniform(-room, room))))
        return cls(amp, freq, phase, camera)

    def head(self, t: float, size: int) -> tuple:
        v = (self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)).sum(axis=1)
        return float(v[0]), float(np.exp(v[3])), (float(v[1] * size), float(v[2] * size))


def render_clip(animator: MouthAnimator, audio: np.ndarray, fps: float, motion: _Motion,
                sample_rate: int = SAMPLE_RATE, blinks: BlinkSchedule | None = None):
    """Yield the frames of one clip: mouth driven by :func:`mouth_openness` of ``audio`` at ``fps``,
    eyelids by ``blinks``."""
    size = animator.still.image.shape[0]
    for i, o in enumerate(mouth_openness(audio, fps, sample_rate)):
        yield animator.render(float(o), head=motion.head(i / fps, size), camera=motion.camera,
                              blink=blinks.closure(i / fps) if blinks else 0.0)


def synthesize_dataset(out_dir, n_identities: int = 3, clips_per_identity: int = 2, seconds: float = 4.0,
                       size: int = 256, seed: int = 0, fps: float = FPS, alt_fps: float | None = 30.0
                       ) -> list[Path]:
    """Write a small talking-face dataset; return the clip paths.

    ``out_dir/spk{i:02d}/clip{j:02d}.mp4`` (H.264 + AAC, ``size``² px, ``fps``), ``out_dir/speakers.csv``
    (``path`` relative to ``out_dir``, ``split``, ``speaker``) and ``out_dir/synthesis.json``
    (sources, licences, per-clip parameters). One clip (speaker 1's first, or speaker 0's when there is
    one speaker) is written at ``alt_fps`` so the pipeline's frame-rate resampling is exercised.
    Split: with two or more clips per speaker, each speaker's last clip is ``test`` (seen speakers,
    unseen utterances); with one clip per speaker, the last speaker's clip is. Deterministic in ``seed``.
    """
    from prep.media import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_identities < 1 or clips_per_identity < 1 or seconds <= 0 or size < 64:
        raise ValueError("need at least one identity, one clip, a positive duration and size >= 64")
    stills = identity_stills(n_identities, size)
    alt_clip = (min(1, n_identities - 1), 0) if alt_fps else None
    rows, clips, paths = [], [], []
    for i, still in enumerate(stills):
        animator = MouthAnimator(still)
        speaker = f"spk{i:02d}"
        for j in range(clips_per_identity):
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), i, j]))
            audio_seed = int(rng.integers(2 ** 31))
            motion = _Motion.random(rng, size)
            blinks = BlinkSchedule.random(rng, seconds)  # drawn after the audio seed and motion: both unchanged
            clip_fps = float(alt_fps) if (i, j) == alt_clip else float(fps)
            audio = synthesize_speech(seconds, audio_seed)
            rel = f"{speaker}/clip{j:02d}.mp4"
            write_video(out_dir / rel, render_clip(animator, audio, clip_fps, motion, blinks=blinks), audio,
                        fps=clip_fps)
            test = (j == clips_per_identity - 1) if clips_per_identity >= 2 else (i == n_identities - 1 > 0)
            split = "test" if test else "train"
            rows.append((rel, split, speaker))
            clips.append({"path": rel, "speaker": speaker, "split": split, "fps": clip_fps,
                          "num_frames": math.ceil(seconds * clip_fps - 1e-4), "seconds": seconds,
                          "audio_seed": audio_seed, "blinks": blinks.to_dict(seconds),
                          "camera_zoom": motion.camera[1], "camera_shift_px": list(motion.camera[2])})
            paths.append(out_dir / rel)
            log.info("demo data: wrote %s (%s, %.0f fps)", rel, split, clip_fps)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "split", "speaker"])
    writer.writerows(rows)
    (out_dir / "speakers.csv").write_text(buf.getvalue())
    meta = {
        "generator": "talkbench.demo_data.synthesize_dataset",
        "seed": int(seed), "size": int(size), "seconds": float(seconds), "fps": float(fps),
        "alt_fps": float(alt_fps) if alt_fps else None, "sample_rate": SAMPLE_RATE,
        "speakers": {f"spk{i:02d}": {"face": s.name, "origin": s.origin} for i, s in enumerate(stills)},
        "clips": clips,
        "mouth_drive": "talkbench.demo_data.mouth_openness(audio, fps): 150-3500 Hz loudness, "
                       f"{OPEN_FLOOR_DB:g}..{OPEN_TOP_DB:g} dBFS -> 0..1",
        "blink_model": "talkbench.demo_blinks.BlinkSchedule: closure(t) per clip (blinks.closure_25fps)",
    }
    (out_dir / "synthesis.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return paths
