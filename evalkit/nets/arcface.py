"""ArcFace face embeddings: InsightFace's recognition ONNX (buffalo_l ``w600k_r50.onnx``) through onnxruntime.

What InsightFace does (``insightface.utils.face_align.norm_crop`` + ``model_zoo.ArcFaceONNX.get_feat``), from
our 68-point landmarks instead of its detector's 5 key points:

1. five points: the centres of the two eyes (68-point indices 36–41 and 42–47, image-left first), the nose
   tip (30) and the mouth corners (48, 54);
2. the least-squares similarity (Umeyama, as ``skimage.transform.SimilarityTransform.estimate``) from them
   to the ``arcface_dst`` template of a 112×112 crop, and ``cv2.warpAffine`` (bilinear, border 0) of the frame;
3. ``(pixel − mean) / std`` in RGB, NCHW float32, with InsightFace's rule for mean / std: 0 / 1 when the
   graph's first eight nodes include a ``Sub`` and a ``Mul`` (the model normalises itself), else 127.5 / 127.5;
4. the model's first output: one embedding per face (512-d for w600k_r50).

The file is found by path, ``TALKBENCH_ARCFACE``, the cache dir or ``~/.insightface/models/buffalo_l/``
(``talkbase.weights``); its sha256 is recorded. An ONNX file is a graph of standard operators, run by
onnxruntime (no Python code is loaded); onnxruntime and onnx are the ``arcface`` extra.
"""
from __future__ import annotations

import logging

import numpy as np

from talkbase.weights import WeightsUnreadable, find

log = logging.getLogger(__name__)

SIZE = 112
ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], np.float64)  # insightface.utils.face_align.arcface_dst
FIVE_POINTS = {"left_eye": "mean of 36-41", "right_eye": "mean of 42-47", "nose": 30, "mouth_left": 48,
               "mouth_right": 54}


def five_points(lm68: np.ndarray) -> np.ndarray:
    """(…, 68, 2) landmarks → (…, 5, 2) ArcFace key points (eye centres, nose tip, mouth corners)."""
    lm = np.asarray(lm68, np.float64)
    return np.stack([lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2), lm[..., 30, :], lm[..., 48, :],
                     lm[..., 54, :]], axis=-2)


def alignment(points5: np.ndarray) -> np.ndarray:
    """(2, 3) similarity mapping five key points (frame px) onto the 112-px ``arcface_dst`` template."""
    from prep.faces.align import umeyama

    return umeyama(np.asarray(points5, np.float64), ARCFACE_DST)


def aligned_faces(frames, points5) -> np.ndarray:
    """(N, 112, 112, 3) uint8 crops of ``frames`` aligned by their five key points (``norm_crop``)."""
    import cv2

    out = np.zeros((len(frames), SIZE, SIZE, 3), np.uint8)
    for i, (f, p) in enumerate(zip(frames, points5)):
        out[i] = cv2.warpAffine(np.ascontiguousarray(f), alignment(p), (SIZE, SIZE), borderValue=0.0)
    return out


def _normalisation(path: str) -> tuple[float, float]:
    """InsightFace's ArcFaceONNX rule: (0, 1) when a Sub and a Mul are among the first 8 nodes, else 127.5."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    names = [n.name for n in graph.node[:8]]
    find_sub = any(n.startswith("Sub") or n.startswith("_minus") for n in names)
    find_mul = any(n.startswith("Mul") or n.startswith("_mul") for n in names)
    return (0.0, 1.0) if find_sub and find_mul else (127.5, 127.5)


class ArcFace:
    """An ArcFace-interface ONNX model: ``embed(faces)`` with (N, 112, 112, 3) uint8 RGB aligned faces."""

    def __init__(self, path: str, sha256: str = "", official: bool = False):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ValueError("ArcFace CSIM needs onnxruntime and onnx (pip install 'talkbench[arcface]')") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1  # numbers must not depend on threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            self.input_mean, self.input_std = _normalisation(str(path))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            raise WeightsUnreadable(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e})") from None
        inp, outs = self.session.get_inputs()[0], self.session.get_outputs()
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3 or shape[2:] != [SIZE, SIZE] or len(outs[0].shape) != 2:
            raise WeightsUnreadable(f"{path}: not an ArcFace interface (input {inp.shape} -> output {outs[0].shape}; "
                                    f"expected (N, 3, {SIZE}, {SIZE}) -> (N, D))")
        self.input_name, self.output_name = inp.name, outs[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.dim = outs[0].shape[1] if isinstance(outs[0].shape[1], int) else None
        self.weights_path, self.weights_sha256, self.calibrated = str(path), sha256, bool(official)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """(N, D) float64 embeddings of (N, 112, 112, 3) uint8 RGB aligned faces."""
        faces = np.asarray(faces)
        if faces.ndim != 4 or faces.shape[1:] != (SIZE, SIZE, 3):
            raise ValueError(f"faces must be (N, {SIZE}, {SIZE}, 3), got {faces.shape}")
        blob = ((faces.astype(np.float32) - self.input_mean) / self.input_std).transpose(0, 3, 1, 2)
        step = self.fixed_batch or max(1, len(blob))
        out = [self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(blob[i:i + step])})[0]
               for i in range(0, len(blob), step)]
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.dim or 512))


def load_arcface(path=None) -> ArcFace:
    """The ArcFace model of ``path`` / ``TALKBENCH_ARCFACE`` / the cache / ``~/.insightface`` (sha256 recorded)."""
    info = find("arcface", path)
    return ArcFace(info.path, info.sha256, info.official)


__all__ = ["ArcFace", "load_arcface", "five_points", "alignment", "aligned_faces", "ARCFACE_DST", "FIVE_POINTS", "SIZE"]
