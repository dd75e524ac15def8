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

from talkbase.weights import WeightsNotFound, cache_dir, dlib_model

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


_HOG_STATE: dict = {}  # "bytes": the pickled HOG detector, once one thread of this process built it
_HOG_LOCK = threading.Lock()


def _hog_detector():
    """A HOG detector object of its own for the calling thread. dlib builds its built-in model from an
    embedded archive in ~0.26 s, holding the GIL: a process does that at most once (none once the cache
    holds the model, see :func:`_built_in_hog`); every further copy is unpickled from this process's own
    first one (~1 ms, the same model: same boxes and scores)."""
    import pickle

    with _HOG_LOCK:
        if "bytes" not in _HOG_STATE:
            det = _built_in_hog()
            _HOG_STATE["bytes"] = pickle.dumps(det)
            return det
    return pickle.loads(_HOG_STATE["bytes"])  # noqa: S301 - bytes this process pickled itself


def hog_cache_path() -> Path:
    import dlib

    return cache_dir() / "dlib" / f"frontal_face_detector-dlib{dlib.__version__}.svm"


def _built_in_hog():
    """dlib's built-in frontal face detector. The first build is saved in the cache dir in dlib's own format
    (data, not code) with its sha256 beside it; later processes load that (~1 ms, the same model). A file
    whose digest does not match, or that dlib cannot read, is rebuilt; an unwritable cache is skipped."""
    import dlib

    from talkbase.fileio import atomic_write_text, commit_temp, sha256_bytes, temp_path

    path = hog_cache_path()
    digest = path.with_name(path.name + ".sha256")
    try:
        if digest.read_text().strip() == sha256_bytes(path.read_bytes()):
            return dlib.fhog_object_detector(str(path))
    except (OSError, RuntimeError, ValueError):
        pass
    det = dlib.get_frontal_face_detector()
    try:
        tmp = temp_path(path)
        det.save(str(tmp))
        data = tmp.read_bytes()
        commit_temp(tmp, path)
        atomic_write_text(digest, sha256_bytes(data) + "\n")
    except (OSError, RuntimeError):
        log.debug("could not cache dlib's HOG detector in %s", path, exc_info=True)
    return det


def preload(detector: str = "hog") -> None:
    """Start loading dlib's models in a background thread; the first :class:`DlibBackend` built afterwards
    takes them. Called once per prep process (inline) and per Dask worker at start-up. dlib holds the GIL
    while it deserialises (~0.6 CPU-s; the calling thread waited 0.9-1.5 s in ``Thread.start`` on the busy
    2-core machine), so this overlaps only with work that runs without it. A model some thread of this
    process already holds is not loaded again: a second inline job in the same process would otherwise
    load one that nothing takes (~0.6 CPU-s beside its first clip, and the copy kept for good)."""
    import dlib

    jobs = {("shape", str(dlib_model("shape_predictor_68_face_landmarks.dat"))): dlib.shape_predictor}
    if detector == "hog":
        jobs[("hog",)] = lambda _path: _hog_detector()
    if detector == "mmod":
        path = str(dlib_model("mmod_human_face_detector.dat"))
        jobs[("mmod", path)] = dlib.cnn_face_detection_model_v1
    for key, make in jobs.items():
        with _handover_lock:
            if key in _handover or key in _loaded:
                continue
            slot = [None, None]

            def run(slot=slot, make=make, path=key[-1]):
                try:
                    slot[1] = make(path)
                except Exception:  # noqa: BLE001 - the backend loads it again and raises there
                    log.debug("preloading %s failed", path, exc_info=True)

            slot[0] = threading.Thread(target=run, name="talkbench-dlib-preload", daemon=True)
            _handover[key] = slot
        slot[0].start()


def thread_detector(detector: str = "hog", mmod_path: str | None = None):
    """The calling thread's dlib detector object (its scan state lives in it: one per thread, never shared)."""
    if detector == "hog":
        return _cached(("hog",), _hog_detector)
    import dlib

    path = str(mmod_path or dlib_model("mmod_human_face_detector.dat"))
    return _cached(("mmod", path), lambda: dlib.cnn_face_detection_model_v1(path))


class DlibBackend:
    """dlib's HOG (or MMOD CNN) face detector and 68-point shape predictor.

    Model files come from the ``face_recognition_models`` wheel (found without importing it).
    Everything runs on a grayscale copy of the frame (HOG and the shape predictor use intensity only),
    which is faster and identical for every colour order.
    """

    name = "dlib"
    min_face_px = 80.0  # both detectors scan an 80x80 window
    concurrent_detect = True  # detect() may run in another thread beside this one's calls (own detector)

    def __init__(self, detector: str = "hog", score_threshold: float = 0.0, predictor_path=None,
                 mmod_path=None):
        import dlib

        if detector not in ("hog", "mmod"):
            raise ValueError(f"dlib detector {detector!r} not one of hog, mmod")
        self.detector_name = detector
        self.score_threshold = float(score_threshold)
        self._mmod_path = None if detector == "hog" else str(mmod_path or dlib_model("mmod_human_face_detector.dat"))
        thread_detector(detector, self._mmod_path)  # loaded now: a missing model fails here
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
        detector = thread_detector(self.detector_name, self._mmod_path)  # this thread's own
        for frame in frames:
            img = np.ascontiguousarray(_resize(self.prepare(frame), scale))
            if self.detector_name == "hog":
                rects, scores, _ = detector.run(img, 0, self.score_threshold)
            else:
                found = detector(img, 0)
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

# face-alignment >= 1.5 loads 2DFAN4 as a plain state dict (1.4 used TorchScript archives per torch version)
# and S3FD by a fixed name; both from torch.hub.get_dir()/checkpoints.
_FAN_DETECTOR_FILE = "s3fd-619a316812.pth"
_FAN_LANDMARK_FILE = "2DFAN4-11f355bf06.pth.tar"
_FAN_MIN_VERSION = (1, 5)  # the weight files above, and FaceAlignment(compile=...)
_S3FD_CANDIDATE = np.float32(0.05)  # S3FD keeps a prior as a candidate when its score exceeds this
_DETECT_PIXELS = 1 << 22  # pixels per S3FD forward (~2 GiB of float32 activations in its first convs)


def fan_weight_files() -> list[Path]:
    """The face-alignment weight files the ``fan`` backend needs, in the torch hub cache
    (``torch.hub.get_dir()/checkpoints``): S3FD and 2DFAN4 as face-alignment 1.5 names them."""
    import torch

    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    return [ckpt / _FAN_DETECTOR_FILE, ckpt / _FAN_LANDMARK_FILE]


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: cuda when torch sees a GPU, else cpu; an explicit cuda device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA device (use auto or cpu)")
    return device


def _import_face_alignment():
    try:
        import face_alignment
    except ImportError as e:
        raise ImportError("fan backend needs the face-alignment package: pip install 'talkbench[fan]'") from e
    try:
        version = tuple(int(v) for v in face_alignment.__version__.split(".")[:2])
    except ValueError:  # a local build: trust it
        version = _FAN_MIN_VERSION
    if version < _FAN_MIN_VERSION:
        raise ImportError(f"fan backend needs face-alignment >= 1.5 (found {face_alignment.__version__}): "
                          "pip install 'talkbench[fan]'")
    return face_alignment


class FanBackend:
    """face-alignment's S3FD detector and 2DFAN4 landmarks, batched, on CPU or GPU.

    ``device``: "auto" (cuda when present), "cpu", "cuda"; ``batch_size``: frames per S3FD forward (also
    capped by a pixel budget) and face crops per 2DFAN4 forward (default: 32 on CUDA, 1 on CPU). Results
    equal face-alignment's per-frame API (``detect_from_image``, ``get_landmarks_from_image``) up to
    float32 round-off of the batched convolutions. Only runs when its weights are already in the torch hub
    cache: it never downloads. A missing file raises :class:`talkbase.weights.WeightsNotFound` naming it
    (checked before face-alignment is imported, so the message is the same whether or not it is installed).
    """

    name = "fan"
    min_face_px = 40.0  # S3FD's smallest anchors are 16 px; 40 keeps its recall high
    concurrent_detect = False  # one model, batched on its device: no scans ahead in another thread

    def __init__(self, device: str = "auto", score_threshold: float = 0.5, batch_size: int | None = None):
        files = fan_weight_files()
        missing = [p for p in files if not p.is_file()]
        if missing:
            raise WeightsNotFound(
                "fan backend: face-alignment weight file(s) missing from the torch hub cache: "
                + ", ".join(str(p) for p in missing)
                + ". talkbench never downloads them; run face-alignment >= 1.5 once online (or copy the files "
                  "there), or use the default dlib backend.")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"fan backend: batch_size must be >= 1, got {batch_size!r}")
        fa_mod = _import_face_alignment()
        self.device = resolve_device(device)
        self.score_threshold = float(score_threshold)
        # CPU default 1: on one thread, 32 crops per forward measured ~40 % slower than one at a time (busy box)
        # (bigger activations, worse cache use); a GPU needs the batch to fill it
        self.batch_size = int(batch_size) if batch_size is not None else (1 if self.device == "cpu" else 32)

        def load():
            log.info("fan backend: loading S3FD + 2DFAN4 on %s", self.device)
            # compile=False: torch.compile would build kernels (minutes, a C compiler) in every process;
            # the detector's own score filter is the backend's threshold (one threshold, as before).
            return fa_mod.FaceAlignment(fa_mod.LandmarksType.TWO_D, device=self.device, face_detector="sfd",
                                        flip_input=False, compile=False,
                                        face_detector_kwargs={"filter_threshold": self.score_threshold})

        # one model per thread and settings, like dlib's (a tracker per shot must not reload 180 MB)
        self._fa = _cached(("fan", self.device, self.score_threshold, tuple(map(str, files))), load)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        return np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame

    def detect(self, frames, scale: float = 1.0) -> list[np.ndarray]:
        """S3FD on every frame, same-size frames stacked into one forward (``detect_from_batch``)."""
        import torch

        imgs = [np.ascontiguousarray(_resize(self.prepare(f), scale)) for f in frames]
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(imgs):
            groups.setdefault(img.shape, []).append(i)
        out: list = [None] * len(imgs)
        for (h, w, _), idx in groups.items():
            step = max(1, min(self.batch_size, _DETECT_PIXELS // (h * w)))
            for s in range(0, len(idx), step):
                part = idx[s:s + step]
                # NHWC -> NCHW as a view: the same memory layout detect_from_image gives the network
                batch = torch.from_numpy(np.stack([imgs[i] for i in part]).transpose(0, 3, 1, 2))
                batch = batch.to(self.device)  # uint8 over the bus; S3FD converts to float32 there
                for i, found in zip(part, self._fa.face_detector.detect_from_batch(batch)):
                    out[i] = self._boxes(found, scale)
        return out

    @staticmethod
    def _boxes(found, scale: float) -> np.ndarray:
        arr = np.array([np.asarray(b, np.float64)[:5] for b in found], np.float64).reshape(-1, 5)
        # a batch also decodes the priors where only *another* frame scored above the candidate
        # threshold; they score below it here and are dropped, as a single-frame run never sees them
        arr = arr[arr[:, 4].astype(np.float32) > _S3FD_CANDIDATE]
        arr[:, :4] /= scale
        return arr

    def landmarks(self, frames, boxes) -> np.ndarray:
        """2DFAN4 on one face per frame: crops as ``get_landmarks_from_image`` makes them, the network
        once per ``batch_size`` crops, heatmaps decoded as it does (integer source px)."""
        from face_alignment.utils import get_preds_fromhm

        heat, centers, scales = self._heatmaps(frames, boxes)
        out = np.empty((len(frames), 68, 2), np.float64)
        for i, (center, scale) in enumerate(zip(centers, scales)):
            out[i] = get_preds_fromhm(heat[i:i + 1], center, scale)[1].reshape(68, 2)
        return out

    def _heatmaps(self, frames, boxes):
        """(heatmaps (n, 68, 64, 64) float32, crop centres, crop scales) of one face per frame."""
        import torch
        from face_alignment.utils import CENTER_Y_OFFSET, crop

        if len(frames) == 0:
            return np.empty((0, 68, 64, 64), np.float32), [], []
        boxes = np.asarray(boxes, np.float64).reshape(len(frames), -1)
        fa = self._fa
        centers, scales, crops = [], [], []
        for frame, d in zip(frames, boxes):  # face-alignment's own centre / scale / crop of a box
            center = np.array([d[2] - (d[2] - d[0]) / 2.0, d[3] - (d[3] - d[1]) / 2.0])
            center[1] = center[1] - (d[3] - d[1]) * CENTER_Y_OFFSET
            scale = (d[2] - d[0] + d[3] - d[1]) / fa.face_detector.reference_scale
            centers.append(center)
            scales.append(scale)
            crops.append(crop(self.prepare(frame), center, scale).transpose((2, 0, 1)).astype(np.float32) / 255.0)
        heat = []
        with torch.inference_mode():
            for s in range(0, len(crops), self.batch_size):
                inp = torch.from_numpy(np.stack(crops[s:s + self.batch_size])).to(fa.device, dtype=fa.dtype)
                hm = fa.face_alignment_net(inp)
                heat.append((hm[-1] if isinstance(hm, list) else hm).to(device="cpu", dtype=torch.float32))
        return torch.cat(heat).numpy(), centers, scales


def get_backend(name: str = "dlib", **kw):
    """A face backend by name: ``"dlib"`` (kwargs: detector="hog"|"mmod", score_threshold) or
    ``"fan"`` (kwargs: device="auto"|"cpu"|"cuda", score_threshold, batch_size)."""
    if name == "dlib":
        return DlibBackend(**kw)
    if name == "fan":
        return FanBackend(**kw)
    raise ValueError(f"unknown face backend {name!r} (dlib or fan)")


__all__ = ["DlibBackend", "FanBackend", "get_backend", "fan_weight_files", "preload", "thread_detector",
           "resolve_device"]
