"""ArcFace: InsightFace's 5-point alignment from our landmarks, and an ONNX model of w600k_r50's interface.

The official ``w600k_r50.onnx`` is never present in tests: ``arcface_onnx`` (conftest) is a small model with
the same input / output, whose output numpy recomputes.
"""
from __future__ import annotations

import numpy as np
import pytest

from evalkit.nets.arcface import ARCFACE_DST, aligned_faces, alignment, five_points, load_arcface


def test_alignment_is_skimages_similarity_estimate():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    for _ in range(5):
        pts = ARCFACE_DST * rng.uniform(0.5, 3) + rng.uniform(0, 300, 2) + rng.normal(0, 2, (5, 2))
        t = SimilarityTransform.from_estimate(pts, ARCFACE_DST) if hasattr(SimilarityTransform, "from_estimate") \
            else SimilarityTransform()
        if not hasattr(SimilarityTransform, "from_estimate"):
            t.estimate(pts, ARCFACE_DST)  # insightface's call (skimage < 0.26)
        np.testing.assert_allclose(alignment(pts), t.params[:2], rtol=1e-9, atol=1e-9)


def test_five_points_and_norm_crop_on_a_real_face(videos_dir):
    import cv2

    from prep.faces import get_backend
    from prep.media import read_frames

    frame = read_frames(videos_dir / "w2l_input3.mp4", stop=1)[0]
    backend = get_backend("dlib")
    box = backend.detect([frame])[0][0][:4]
    lm = backend.landmarks([frame], [box])[0]
    p = five_points(lm)
    assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0]  # image-left eye / mouth corner first, as arcface_dst
    assert p[0, 1] < p[2, 1] < p[3, 1]  # eyes above the nose above the mouth
    np.testing.assert_allclose(p[0], lm[36:42].mean(0))
    face = aligned_faces([frame], [p])[0]
    want = cv2.warpAffine(frame, alignment(p), (112, 112), borderValue=0.0)
    assert np.array_equal(face, want)
    # the key points land on the template (a least-squares fit of a real face: a few px at most)
    m = alignment(p)
    assert np.abs(p @ m[:, :2].T + m[:, 2] - ARCFACE_DST).max() < 6


def test_onnx_model_of_the_arcface_interface(arcface_onnx, tmp_path):
    from talkbase.fileio import sha256_file
    from talkbase.weights import WeightsNotFound, WeightsUnreadable

    model = load_arcface(arcface_onnx["path"])
    assert model.weights_sha256 == sha256_file(arcface_onnx["path"]) and not model.calibrated
    assert (model.input_mean, model.input_std) == (127.5, 127.5)  # no Sub/Mul at the graph's start
    faces = np.random.default_rng(1).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    emb = model.embed(faces)
    assert emb.shape == (5, 512) and emb.dtype == np.float64
    np.testing.assert_allclose(emb, arcface_onnx["reference"](faces), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="112"):
        model.embed(faces[:, :64])
    (tmp_path / "w600k_r50.onnx").write_bytes(b"not onnx")
    with pytest.raises(WeightsUnreadable, match="ONNX"):
        load_arcface(tmp_path / "w600k_r50.onnx")
    with pytest.raises(WeightsNotFound, match="w600k_r50.onnx"):
        load_arcface(tmp_path / "absent" / "w600k_r50.onnx")


def test_interface_and_insightface_normalisation_rule(arcface_onnx, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from talkbase.weights import WeightsUnreadable

    def save(nodes, in_shape, out_shape, name):
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [helper.make_tensor("k", TensorProto.FLOAT, [1], [0.5])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        path = tmp_path / name / "w600k_r50.onnx"
        path.parent.mkdir()
        onnx.save(m, path)
        return path

    self_normalising = save([helper.make_node("Sub", ["x", "k"], ["s"], name="Sub_0"),
                             helper.make_node("Mul", ["s", "k"], ["m"], name="Mul_1"),
                             helper.make_node("Flatten", ["m"], ["y"], name="Flatten_2")],
                            ["N", 3, 112, 112], ["N", 37632], "subs")
    m = load_arcface(self_normalising)
    assert (m.input_mean, m.input_std) == (0.0, 1.0)
    faces = np.full((1, 112, 112, 3), 200, np.uint8)
    np.testing.assert_allclose(m.embed(faces), np.full((1, 37632), (200 - 0.5) * 0.5), rtol=1e-6)
    wrong = save([helper.make_node("Flatten", ["x"], ["y"])], ["N", 3, 64, 64], ["N", 12288], "small")
    with pytest.raises(WeightsUnreadable, match="ArcFace interface"):
        load_arcface(wrong)
