"""evalkit.nets.s3fd: syncnet_python's S3FD layout, priors, decoding, NMS, detector protocol and loader."""
from __future__ import annotations

import numpy as np
import pytest

import torch

from evalkit.nets import s3fd  # noqa: E402
from talkbase.weights import WeightsNotFound  # noqa: E402

VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33)


def official_keys() -> set[str]:
    keys = {f"vgg.{i}.{p}" for i in VGG_CONVS for p in ("weight", "bias")}
    keys |= {f"L2Norm{n}.weight" for n in ("3_3", "4_3", "5_3")}
    keys |= {f"extras.{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    keys |= {f"{h}.{i}.{p}" for h in ("loc", "conf") for i in range(6) for p in ("weight", "bias")}
    return keys


def test_state_dict_has_the_official_layout():
    sd = s3fd.S3FDNet().state_dict()
    assert set(sd) == official_keys()
    assert tuple(sd["vgg.31.weight"].shape) == (1024, 512, 3, 3)  # fc6
    assert tuple(sd["vgg.33.weight"].shape) == (1024, 1024, 1, 1)  # fc7
    assert tuple(sd["conf.0.weight"].shape) == (4, 256, 3, 3)  # max-out background on conv3_3
    assert tuple(sd["conf.3.weight"].shape) == (2, 1024, 3, 3)
    assert tuple(sd["extras.3.weight"].shape) == (256, 128, 3, 3)
    assert float(sd["L2Norm3_3.weight"][0]) == 10.0 and float(sd["L2Norm5_3.weight"][0]) == 5.0


def test_forward_shapes_match_the_priors():
    net = s3fd.S3FDNet().eval()
    net.load_state_dict(s3fd.random_state_dict(0))
    with torch.no_grad():
        loc, score = net(torch.randn(1, 3, 120, 160))
    # conv3_3 at stride 4, pooled with ceil on the third block, then strides 8 … 128
    assert net.feature_sizes == [(30, 40), (15, 20), (7, 10), (3, 5), (2, 3), (1, 2)]
    priors = s3fd.prior_boxes(net.feature_sizes, (120, 160))
    assert loc.shape == (1, len(priors), 4) and score.shape == (1, len(priors))
    assert float(score.min()) >= 0 and float(score.max()) <= 1
    # first prior: centre of the first stride-4 cell, side 16 px
    torch.testing.assert_close(priors[0], torch.tensor([2 / 160, 2 / 120, 16 / 160, 16 / 120]))
    # the first prior of the stride-8 map
    assert torch.allclose(priors[30 * 40], torch.tensor([4 / 160, 4 / 120, 32 / 160, 32 / 120]))


def test_decode_inverts_the_ssd_encoding():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.1], [0.1, 0.3, 0.05, 0.05]])
    torch.testing.assert_close(s3fd.decode(torch.zeros(2, 4), priors),
                               torch.tensor([[0.4, 0.45, 0.6, 0.55], [0.075, 0.275, 0.125, 0.325]]))
    box = torch.tensor([[0.3, 0.4, 0.7, 0.8]])  # centre (0.5, 0.6), size (0.4, 0.4)
    p = priors[:1]
    loc = torch.cat([(torch.tensor([[0.5, 0.6]]) - p[:, :2]) / (0.1 * p[:, 2:]),
                     torch.log(torch.tensor([[0.4, 0.4]]) / p[:, 2:]) / 0.2], 1)
    torch.testing.assert_close(s3fd.decode(loc, p), box)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 9, 10]], np.float32)
    scores = np.array([0.8, 0.95, 0.7, 0.1])
    assert s3fd.nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert s3fd.nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]


class PlantedNet(torch.nn.Module):
    """Scores one prior of the stride-16 map as a face (and a near-duplicate next to it), rest background."""

    def forward(self, x):
        h, w = x.shape[2:]
        self.feature_sizes = [(-(-h // s), -(-w // s)) for s in s3fd.STRIDES]
        n = sum(a * b for a, b in self.feature_sizes)
        self.mean_seen = x.mean(dim=(0, 2, 3))
        score = torch.zeros(1, n)
        first16 = sum(a * b for a, b in self.feature_sizes[:2])
        cell = first16 + 2 * self.feature_sizes[2][1] + 3  # row 2, column 3
        score[0, cell], score[0, cell + 1] = 0.97, 0.93
        return torch.zeros(1, n, 4), score


def test_detector_protocol_scales_back_to_source_pixels():
    frame = np.full((480, 640, 3), (123, 117, 104), np.uint8)  # RGB = the mean: input becomes zero
    det = s3fd.S3FDDetector(PlantedNet(), conf_th=0.9, nms_iou=0.1)
    (boxes,) = det.detect([frame], scale=0.25)
    torch.testing.assert_close(det.net.mean_seen, torch.zeros(3))
    # the (2, 3) cell of the stride-16 map of a 160×120 input: centre (56, 40), side 64, ×4 back to source
    assert boxes.shape == (1, 5)  # the overlapping 0.93 box is suppressed
    np.testing.assert_allclose(boxes[0], [(56 - 32) * 4, (40 - 32) * 4, (56 + 32) * 4, (40 + 32) * 4, 0.97],
                               rtol=1e-5)
    assert det.detect([frame], scale=0.25)[0].shape == (1, 5)
    assert s3fd.S3FDDetector(PlantedNet(), conf_th=0.99).detect([frame])[0].shape == (0, 5)


def test_loader_checks_layout_records_sha256_and_refuses_code(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TALKBENCH_S3FD", raising=False)
    with pytest.raises(WeightsNotFound):
        s3fd.load_s3fd()
    rand = s3fd.load_s3fd(allow_random=True, seed=3)
    assert rand.calibrated is False and rand.weights_sha256 is None

    path = tmp_path / "sfd_face.pth"
    torch.save(s3fd.random_state_dict(3), path)
    net = s3fd.load_s3fd(path)
    assert not net.calibrated and len(net.weights_sha256) == 64  # no official hash pinned: unverified
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(net(x), rand(x)):
            torch.testing.assert_close(a, b)

    bad = tmp_path / "bad.pth"
    sd = s3fd.random_state_dict(0)
    sd["vgg.1.weight"] = sd.pop("vgg.0.weight")
    torch.save(sd, bad)
    with pytest.raises(ValueError, match="layout"):
        s3fd.load_s3fd(bad)
    pickled = tmp_path / "module.pth"
    torch.save(s3fd.S3FDNet(), pickled)  # a whole pickled module: never unpickled
    with pytest.raises(Exception):
        s3fd.load_s3fd(pickled)
