"""Face backends: one small interface over dlib (embedded default) and face-alignment (extra ``[fan]``).

A backend has

* ``detect(frames, scale=1.0) -> list[np.ndarray (k, 5)]``: boxes ``x0, y0, x1, y1, score`` per frame
  in source px (the frame is resized by ``scale`` for detection and boxes mapped back);
* ``landmarks(frames, boxes) -> np.ndarray (n, 68, 2)``: iBUG 68 points in source px, one face per frame
  from one box per frame (boxes in the backend's own detector convention);
* ``prepare(frame)``: the image form the backend works on (dlib: grayscale) -- the tracker prepares a
  frame once and passes the result to both calls; ``detect``/``landmarks`` accept RGB frames too;
* ``min_face_px``: the smallest face box its detector finds at scale 1 (sets the detection scale).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from talkbase.weights import WeightsNotFound, dlib_model

log = logging.getLogger(__name__)


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if abs(scale - 1.0) < 1e-6:
        return img
    h, w = img.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)


_local = threading.local()
_handover: dict = {}  # key -> [thread, model] loaded in the background by preload()
_handover_lock = threading.Lock()
_loaded: set = set()  # keys some thread of this process holds a model for


def _cached(key, load):
    """A loaded model, kept per thread (loading the 68-point predictor takes seconds; one copy per
    thread keeps Dask's threaded workers from sharing a dlib object). The first thread to ask takes a
    model :func:`preload` is loading in the background (waiting for it to finish)."""
    models = _local.__dict__.setdefault("models", {})
    if key not in models:
        with _handover_lock:
            pending = _handover.pop(key, None)
        if pending is not None:
            pending[0].join()
        models[key] = pending[1] if pending is not None and pending[1] is not None else load()
        with _handover_lock:
            _loaded.add(key)
    return models[key]


def preload(detector: str = "hog") -> None:
    """Start loading dlib's models in a background thread; the first :class:`DlibBackend` built afterwards
    takes them. Called once per prep process (inline) and per Dask worker at start-up. dlib holds the GIL
    while it deserialises (~0.6 CPU-s; the calling thread waited 0.9-1.5 s in ``Thread.start`` on the busy
    2-core machine), so this overlaps only with work that runs without it. A model some thread of this
    process already holds is not loaded again: a second inline job in the same process would otherwise
    load one that nothing takes (~0.6 CPU-s beside its first clip, and the copy kept for good)."""
    import dlib

    jobs = {("shape", str(dlib_model("shape_predictor_68_face_landmarks.dat"))): dlib.shape_predictor}
    if detector == "mmod":
        path = str(dlib_model("mmod_human_face_detector.dat"))
        jobs[("mmod", path)] = dlib.cnn_face_detection_model_v1
    for key, make in jobs.items():
        with _handover_lock:
            if key in _handover or key in _loaded:
                continue
            slot = [None, None]

            def run(slot=slot, make=make, path=key[1]):
                try:
                    slot[1] = make(path)
                except Exception:  # noqa: BLE001 - the backend loads it again and raises there
                    log.debug("preloading %s failed", path, exc_info=True)

            slot[0] = threading.Thread(target=run, name="talkbench-dlib-preload", daemon=True)
            _handover[key] = slot
        slot[0].start()


class DlibBackend:
    """dlib's HOG (or MMOD CNN) face detector and 68-point shape predictor.

    Model files come from the ``face_recognition_models`` wheel (found without importing it).
    Everything runs on a grayscale copy of the frame (HOG and the shape predictor use intensity only),
    which is faster and identical for every colour order.
    """

    name = "dlib"
    min_face_px = 80.0  # both detectors scan an 80x80 window

    def __init__(self, detector: str = "hog", score_threshold: float = 0.0, predictor_path=None,
                 mmod_path=None):
        import dlib

        if detector not in ("hog", "mmod"):
            raise ValueError(f"dlib detector {detector!r} not one of hog, mmod")
        self.detector_name = detector
        self.score_threshold = float(score_threshold)
        if detector == "hog":
            self._detector = _cached(("hog",), dlib.get_frontal_face_detector)
        else:
            path = str(mmod_path or dlib_model("mmod_human_face_detector.dat"))
            self._detector = _cached(("mmod", path), lambda: dlib.cnn_face_detection_model_v1(path))
        path = str(predictor_path or dlib_model("shape_predictor_68_face_landmarks.dat"))
        self._predictor = _cached(("shape", path), lambda: dlib.shape_predictor(path))
        self._dlib = dlib

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        frame = np.asarray(frame, dtype=np.uint8)
        if frame.ndim == 2:
            return np.ascontiguousarray(frame)
        # OpenCV reads a row-strided RGB view (a region of a frame) in place; the grey copy is contiguous
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)

    def detect(self, frames, scale: float = 1.0) -> list[np.ndarray]:
        out = []
        for frame in frames:
            img = np.ascontiguousarray(_resize(self.prepare(frame), scale))
            if self.detector_name == "hog":
                rects, scores, _ = self._detector.run(img, 0, self.score_threshold)
            else:
                found = self._detector(img, 0)
                rects = [d.rect for d in found]
                scores = [d.confidence for d in found]
            boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1, sc)
                     for r, sc in zip(rects, scores) if sc >= self.score_threshold]
            arr = np.array(boxes, np.float64).reshape(-1, 5)
            arr[:, :4] /= scale
            out.append(arr)
        return out

    def landmarks(self, frames, boxes) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(len(frames), -1)
        out = np.empty((len(frames), 68, 2), np.float64)
        for i, (frame, b) in enumerate(zip(frames, boxes)):
            x0, y0, x1, y1 = (int(round(v)) for v in b[:4])
            rect = self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1)
            shape = self._predictor(self.prepare(frame), rect)
            out[i] = [(p.x, p.y) for p in shape.parts()]
        return out


# ---------------------------------------------------------------- face-alignment (FAN)

_FAN_DETECTOR_FILE = "s3fd-619a316812.pth"
_FAN_LANDMARK_FILES = {"1.5": "2DFAN4_1.5-a60332318a.zip", "1.6": "2DFAN4_1.6-c827573f02.zip"}
_FAN_LANDMARK_DEFAULT = "2DFAN4-cd938726ad.zip"


def fan_weight_files() -> list[Path]:
    """The face-alignment weight files this torch version needs, in the torch hub cache.

    face-alignment picks the 2DFAN4 archive by torch major.minor (1.5 and 1.6 have their own builds,
    every other version the default one) and S3FD by a fixed name; both live in
    ``torch.hub.get_dir()/checkpoints``.
    """
    import torch

    ver = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    return [ckpt / _FAN_DETECTOR_FILE, ckpt / _FAN_LANDMARK_FILES.get(ver, _FAN_LANDMARK_DEFAULT)]


class FanBackend:
    """face-alignment's S3FD detector and 2DFAN4 landmarks, on CPU or GPU.

    Only runs when its weights are already in the torch hub cache: it never downloads. A missing file
    raises :class:`talkbase.weights.WeightsNotFound` naming it (checked before face-alignment is
    imported, so the message is the same whether or not the package is installed).
    """

    name = "fan"
    min_face_px = 40.0  # S3FD's smallest anchors are 16 px; 40 keeps its recall high

    def __init__(self, device: str = "cpu", score_threshold: float = 0.5):
        missing = [p for p in fan_weight_files() if not p.is_file()]
        if missing:
            raise WeightsNotFound(
                "fan backend: face-alignment weight file(s) missing from the torch hub cache: "
                + ", ".join(str(p) for p in missing)
                + ". talkbench never downloads them; run face-alignment once online (or copy the files "
                  "there), or use the default dlib backend.")
        try:
            import face_alignment
        except ImportError as e:
            raise ImportError("fan backend needs the face-alignment package: pip install 'talkbench[fan]'") from e
        kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or getattr(face_alignment.LandmarksType, "_2D")
        self._fa = face_alignment.FaceAlignment(kind, device=device, face_detector="sfd", flip_input=False)
        self.score_threshold = float(score_threshold)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        return np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame

    def detect(self, frames, scale: float = 1.0) -> list[np.ndarray]:
        out = []
        for frame in frames:
            img = np.ascontiguousarray(_resize(self.prepare(frame), scale))
            found = self._fa.face_detector.detect_from_image(img.copy())
            arr = np.array([np.asarray(b, np.float64)[:5] for b in found], np.float64).reshape(-1, 5)
            arr = arr[arr[:, 4] >= self.score_threshold]
            arr[:, :4] /= scale
            out.append(arr)
        return out

    def landmarks(self, frames, boxes) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(len(frames), -1)
        out = np.empty((len(frames), 68, 2), np.float64)
        for i, (frame, b) in enumerate(zip(frames, boxes)):
            box = np.array([b[0], b[1], b[2], b[3], 1.0])
            pts = self._fa.get_landmarks_from_image(self.prepare(frame), detected_faces=[box])
            out[i] = np.asarray(pts[0], np.float64)[:, :2]
        return out


def get_backend(name: str = "dlib", **kw):
    """A face backend by name: ``"dlib"`` (kwargs: detector="hog"|"mmod", score_threshold) or
    ``"fan"`` (kwargs: device, score_threshold)."""
    if name == "dlib":
        return DlibBackend(**kw)
    if name == "fan":
        return FanBackend(**kw)
    raise ValueError(f"unknown face backend {name!r} (dlib or fan)")


__all__ = ["DlibBackend", "FanBackend", "get_backend", "fan_weight_files", "preload"]
