"""Aligned crops: template, similarity estimation, warping, mouth mask and paste-back (no video needed)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from prep.faces import align

SIZES = (96, 128, 256, 512)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


def test_template_is_symmetric_and_inside_the_crop():
    t = align.TEMPLATE
    assert t.shape == (68, 2)
    assert (t > 0.1).all() and (t < 0.9).all()
    mirrored = t[align.MIRROR] * [-1, 1] + [1, 0]
    np.testing.assert_allclose(mirrored, t, atol=2e-4)
    # eyes above nose above mouth above chin
    assert t[36:48, 1].mean() < t[30, 1] < t[48:68, 1].mean() < t[8, 1]


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (20, 2))
    m = _similarity(23.0, 1.7, 12.0, -40.0)
    dst = align.apply_affine(m, src)
    np.testing.assert_allclose(align.umeyama(src, dst), m, atol=1e-9)
    w = rng.uniform(0.1, 2.0, 20)
    np.testing.assert_allclose(align.umeyama(src, dst, w), m, atol=1e-9)
    # with an outlier, a zero weight ignores it
    dst_bad = dst.copy()
    dst_bad[0] += 50
    w[0] = 0.0
    np.testing.assert_allclose(align.umeyama(src, dst_bad, w), m, atol=1e-9)


@pytest.mark.parametrize("size", SIZES)
def test_similarity_maps_transformed_template_back_to_the_template(size):
    m = _similarity(-12.0, 310.0, 400.0, 250.0)  # unit template -> a face in a frame
    lms = align.apply_affine(m, align.TEMPLATE)
    a = align.similarity_from_landmarks(lms, size)
    np.testing.assert_allclose(align.apply_affine(a, lms), align.template(size), atol=1e-6)
    # the crop covers the same face region at every size
    corners_src = align.apply_affine(align.invert_affine(a), [[-0.5, -0.5], [size - 0.5, size - 0.5]])
    np.testing.assert_allclose(corners_src, align.apply_affine(m, [[0, 0], [1, 1]]), atol=1e-6)


def test_similarity_params_round_trip():
    a = align.similarity_from_landmarks(align.apply_affine(_similarity(17.0, 250.0, 300.0, 200.0),
                                                           align.TEMPLATE), 256)
    p = align.similarity_params(a, 256)
    assert p[3] == pytest.approx(math.radians(17.0), abs=1e-9)
    assert math.exp(p[2]) == pytest.approx(250.0, rel=1e-9)
    np.testing.assert_allclose(align.affine_from_params(p, 256), a, atol=1e-9)


def _gradient_frame(h=300, w=400):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("size", SIZES)
def test_warp_crop_samples_the_source_where_the_affine_says(size):
    frame = _gradient_frame()
    a = align.affine_from_params(np.array([200.0, 150.0, math.log(180.0), 0.2]), size)
    crop = align.warp_crop(frame, a, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    inv = align.invert_affine(a)
    rng = np.random.default_rng(1)
    for i, j in rng.integers(0, size, (50, 2)):
        x, y = align.apply_affine(inv, [j, i])
        expect_r = 255 * x / 399
        expect_g = 255 * y / 299
        assert abs(int(crop[i, j, 0]) - expect_r) <= 1.5
        assert abs(int(crop[i, j, 1]) - expect_g) <= 1.5


def test_border_modes():
    frame = np.full((50, 60, 3), 200, np.uint8)
    a = align.affine_from_params(np.array([0.0, 0.0, math.log(60.0), 0.0]), 64)  # centred on a corner
    assert align.warp_crop(frame, a, 64, "constant")[0, 0].tolist() == [0, 0, 0]
    assert align.warp_crop(frame, a, 64, "replicate")[0, 0].tolist() == [200, 200, 200]
    assert align.warp_crop(frame, a, 64, "constant")[-1, -1].tolist() == [200, 200, 200]
    with pytest.raises(ValueError):
        align.warp_crop(frame, a, 64, "wrap")


@pytest.mark.parametrize("size", SIZES)
def test_mouth_mask_covers_mouth_and_chin_not_eyes(size):
    m = align.mouth_mask(size)
    assert m.shape == (size, size) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    t = align.template(size)

    def at(p):
        return m[int(round(p[1])), int(round(p[0]))]

    for i in (48, 54, 51, 57, 62, 66):  # mouth corners, lips
        assert at(t[i]) == 1.0, i
    assert at((t[8] + t[57]) / 2) == 1.0  # between lip and chin
    for i in (36, 39, 42, 45, 27, 19, 24):  # eyes, nose bridge, brows
        assert at(t[i]) == 0.0, i
    # nothing above the nose tip line minus the feather ramp
    top = int(np.floor(t[30, 1] - 0.03 * size)) - 1
    assert m[:top].max() == 0.0
    # a face lower in the crop moves the mask down
    shifted = align.mouth_mask(size, landmarks=t + [0, 0.05 * size])
    rows = np.arange(size)
    assert (shifted.sum(1) @ rows) / shifted.sum() > (m.sum(1) @ rows) / m.sum() + 0.03 * size


def test_paste_back_restores_the_frame_and_touches_only_the_crop_region():
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 3)  # smooth, so bilinear resampling round-trips
    a = align.affine_from_params(np.array([150.0, 120.0, math.log(100.0), 0.3]), 256)
    crop = align.warp_crop(frame, a, 256)
    out = align.paste_back(frame, crop, a)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frame).max() <= 3
    # paste a flat colour with the mouth mask: only the (warped) mask region changes
    red = np.zeros_like(crop)
    red[..., 0] = 255
    mask = align.mouth_mask(256)
    out = align.paste_back(frame, red, a, mask=mask)
    changed = np.abs(out.astype(int) - frame).sum(-1) > 0
    inv = align.invert_affine(a)
    mouth_src = align.apply_affine(inv, align.template(256)[[62, 66]].mean(0))
    eye_src = align.apply_affine(inv, align.template(256)[36])
    assert out[int(round(mouth_src[1])), int(round(mouth_src[0]))].tolist() == [255, 0, 0]
    assert not changed[int(round(eye_src[1])), int(round(eye_src[0]))]
    corners = align.apply_affine(inv, [[-0.5, -0.5], [255.5, 255.5], [-0.5, 255.5], [255.5, -0.5]])
    ys, xs = np.nonzero(changed)
    assert xs.min() >= corners[:, 0].min() - 2 and xs.max() <= corners[:, 0].max() + 2
    assert ys.min() >= corners[:, 1].min() - 2 and ys.max() <= corners[:, 1].max() + 2
    with pytest.raises(ValueError):
        align.paste_back(frame, red, a, mask=np.ones((10, 10)))


def test_default_affine_is_the_centred_short_side_square():
    a = align.default_affine((480, 640), 128)
    inv = align.invert_affine(a)
    np.testing.assert_allclose(align.apply_affine(inv, [[-0.5, -0.5], [127.5, 127.5]]),
                               [[79.5, -0.5], [559.5, 479.5]], atol=1e-6)
