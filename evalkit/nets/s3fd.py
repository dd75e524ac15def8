"""S3FD face detector (Zhang et al. 2017) in syncnet_python's ``sfd_face.pth`` state-dict layout.

syncnet_python's ``run_pipeline.py`` detects faces with S3FD on every frame (RGB frame resized by
``facedet_scale`` = 0.25, BGR mean 104/117/123 subtracted, confidence ≥ 0.9) before tracking and
cropping; that per-frame VGG-16 pass is most of what its LSE pipeline costs on a CPU. This module has
the network with the same module tree (``vgg`` list indices, ``L2Norm3_3/4_3/5_3``, ``extras``, ``loc``,
``conf``) so the official file loads key for key, the prior boxes and box decoding of the SSD head,
and a detector with the same pre-processing and thresholds.

Used by ``bench/eval_throughput.py`` (random weights in the official layout have the official
FLOPs: the compute cost of syncnet_python's detection stage) and, when ``sfd_face.pth`` is present,
as a detector for the ``syncnet-pipeline`` crops (``evalkit.syncnet_crop.detect_faces(backend="s3fd")``).
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from talkbase.weights import WeightsUnreadable, check_layout

log = logging.getLogger(__name__)

BGR_MEAN = (104.0, 117.0, 123.0)
# VGG-16 trunk as (out_channels, convs) blocks; every block ends in a 2×2 max-pool (the third rounds up)
_VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_SOURCE_CHANNELS = (256, 512, 512, 1024, 512, 256)  # conv3_3, conv4_3, conv5_3, fc7, conv6_2, conv7_2
_L2NORM_SCALES = (10.0, 8.0, 5.0)
STRIDES = (4, 8, 16, 32, 64, 128)  # of the six source maps; the anchor side is 4 × stride
VARIANCES = (0.1, 0.2)


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (key ``weight``)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x):
        return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) * self.weight.view(1, -1, 1, 1)


def _vgg_layers() -> list[nn.Module]:
    layers, cin = [], 3
    for block, (cout, convs) in enumerate(_VGG_BLOCKS):
        for _ in range(convs):
            layers += [nn.Conv2d(cin, cout, 3, 1, padding=1), nn.ReLU(inplace=True)]
            cin = cout
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=block == 2))
    # fc6 / fc7 as convolutions (fc6 dilated by 6, as in syncnet_python's copy)
    layers += [nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6), nn.ReLU(inplace=True),
               nn.Conv2d(1024, 1024, 1, 1), nn.ReLU(inplace=True)]
    return layers


class S3FDNet(nn.Module):
    """Forward: (N, 3, H, W) float RGB minus the mean → (loc (N, P, 4), face probability (N, P))."""

    # indices into ``vgg`` after which conv3_3, conv4_3 and conv5_3 (post-ReLU) are tapped
    _TAPS = (16, 23, 30)

    def __init__(self):
        super().__init__()
        self.vgg = nn.ModuleList(_vgg_layers())
        self.L2Norm3_3, self.L2Norm4_3, self.L2Norm5_3 = (L2Norm(c, s) for c, s in zip(_SOURCE_CHANNELS,
                                                                                         _L2NORM_SCALES))
        self.extras = nn.ModuleList([nn.Conv2d(1024, 256, 1, 1), nn.Conv2d(256, 512, 3, 2, padding=1),
                                     nn.Conv2d(512, 128, 1, 1), nn.Conv2d(128, 256, 3, 2, padding=1)])
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, padding=1) for c in _SOURCE_CHANNELS])
        # conv3_3's classifier has 3 background channels (max-out background) + 1 face channel
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, padding=1)
                                   for i, c in enumerate(_SOURCE_CHANNELS)])

    def sources(self, x) -> list[torch.Tensor]:
        out, start = [], 0
        for tap, norm in zip(self._TAPS, (self.L2Norm3_3, self.L2Norm4_3, self.L2Norm5_3)):
            for layer in self.vgg[start:tap]:
                x = layer(x)
            out.append(norm(x))
            start = tap
        for layer in self.vgg[start:]:
            x = layer(x)
        out.append(x)
        for k, conv in enumerate(self.extras):
            x = F.relu(conv(x))
            if k % 2 == 1:
                out.append(x)
        return out

    def forward(self, x):
        locs, scores, self.feature_sizes = [], [], []
        for i, src in enumerate(self.sources(x)):
            conf = self.conf[i](src)
            if i == 0:
                conf = torch.cat([conf[:, :3].amax(dim=1, keepdim=True), conf[:, 3:]], dim=1)
            self.feature_sizes.append(tuple(src.shape[2:]))
            locs.append(self.loc[i](src).permute(0, 2, 3, 1).reshape(len(x), -1, 4))
            scores.append(conf.permute(0, 2, 3, 1).reshape(len(x), -1, 2).softmax(-1)[..., 1])
        return torch.cat(locs, 1), torch.cat(scores, 1)


def prior_boxes(feature_sizes, image_hw) -> torch.Tensor:
    """(P, 4) centre-size priors in [0, 1] image units, row-major per map, maps in source order.

    Computed as upstream's ``PriorBox`` does (Python floats: ``(j + 0.5) / (w / stride)``, side
    ``min_size / w``), then cast to float32, so the boxes round as upstream's do."""
    h_img, w_img = image_hw
    out = []
    for (fh, fw), stride in zip(feature_sizes, STRIDES):
        f_kw, f_kh = w_img / stride, h_img / stride
        j = np.arange(fw, dtype=np.float64)
        i = np.arange(fh, dtype=np.float64)
        cx = np.broadcast_to((j + 0.5) / f_kw, (fh, fw)).ravel()
        cy = np.broadcast_to(((i + 0.5) / f_kh)[:, None], (fh, fw)).ravel()
        side = 4.0 * stride
        out.append(np.stack([cx, cy, np.full(fh * fw, side / w_img), np.full(fh * fw, side / h_img)], 1))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def decode(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """SSD box decoding: (P, 4) offsets + (P, 4) priors → (P, 4) x0, y0, x1, y1 in [0, 1] units, in
    upstream's operation order (``x0 = c − s/2``, then ``x1 = x0 + s``: float32 rounds as theirs)."""
    boxes = torch.cat((priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:],
                       priors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _torch_nms(boxes: torch.Tensor, scores: torch.Tensor, overlap: float, top_k: int) -> list[int]:
    """The SSD head's greedy NMS (``box_utils.nms``): ascending ``sort``, the ``top_k`` best, IoU > overlap
    suppressed; indices kept, best first."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = torch.mul(x2 - x1, y2 - y1)
    _, idx = scores.sort(0)
    idx = idx[-top_k:]
    keep = []
    while idx.numel() > 0:
        i = idx[-1]
        keep.append(int(i))
        if idx.size(0) == 1:
            break
        idx = idx[:-1]
        xx1 = torch.clamp(torch.index_select(x1, 0, idx), min=float(x1[i]))
        yy1 = torch.clamp(torch.index_select(y1, 0, idx), min=float(y1[i]))
        xx2 = torch.clamp(torch.index_select(x2, 0, idx), max=float(x2[i]))
        yy2 = torch.clamp(torch.index_select(y2, 0, idx), max=float(y2[i]))
        inter = torch.clamp(xx2 - xx1, min=0.0) * torch.clamp(yy2 - yy1, min=0.0)
        iou = inter / ((torch.index_select(area, 0, idx) - inter) + area[i])
        idx = idx[iou.le(overlap)]
    return keep


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression as upstream's ``nms_`` (``scores.argsort()[::-1]``); indices kept, best
    first."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]))
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= iou)[0] + 1]
    return np.asarray(keep, np.int64)


HEAD_CONF, HEAD_NMS, HEAD_NMS_TOP_K, HEAD_TOP_K = 0.05, 0.3, 5000, 750  # the SSD head (box_utils.Detect)


class S3FDDetector:
    """syncnet_python's ``S3FD.detect_faces`` on RGB uint8 frames, step for step: resize by ``scale``
    (``cv2.resize`` bilinear), subtract the BGR mean, the SSD head (scores > 0.05, NMS 0.3 over the 5,000
    best, the 750 best kept), then boxes scoring above ``conf_th`` scaled to source pixels and NMS at
    ``nms_iou`` (``nms_``)."""

    def __init__(self, net: S3FDNet, conf_th: float = 0.9, nms_iou: float = 0.1, device: str = "cpu"):
        self.net, self.conf_th, self.nms_iou, self.device = net.eval().to(device), conf_th, nms_iou, device

    @torch.no_grad()
    def detect_one(self, frame: np.ndarray, scale: float = 0.25) -> np.ndarray:
        import cv2

        h, w = frame.shape[:2]
        small = cv2.resize(frame, dsize=(0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(small.transpose(2, 0, 1)[[2, 1, 0]]).astype(np.float32)
        x -= np.array(BGR_MEAN, np.float32)[:, None, None]  # upstream subtracts the mean in BGR order
        x = torch.from_numpy(np.ascontiguousarray(x[[2, 1, 0]])).to(self.device)
        loc, score = self.net(x[None])
        boxes = decode(loc[0].cpu().float(), prior_boxes(self.net.feature_sizes, small.shape[:2]))
        score = score[0].cpu().float()
        mask = score.gt(HEAD_CONF)
        cand_scores, cand_boxes = score[mask], boxes[mask]
        keep = _torch_nms(cand_boxes, cand_scores, HEAD_NMS, HEAD_NMS_TOP_K)[:HEAD_TOP_K] if len(cand_scores) else []
        scale_t = torch.Tensor([w, h, w, h])
        rows = []
        for k in keep:  # best first; upstream stops at the first score not above conf_th
            if not bool(cand_scores[k] > self.conf_th):
                break
            rows.append([*(cand_boxes[k] * scale_t).numpy().tolist(), float(cand_scores[k])])
        dets = np.asarray(rows, np.float64).reshape(-1, 5)
        return dets[nms(dets, dets[:, 4], self.nms_iou)] if len(dets) else dets

    def detect(self, frames, scale: float = 0.25) -> list[np.ndarray]:
        """Per-frame (k, 5) arrays x0, y0, x1, y1, score in source pixels (the ``prep.faces`` backend shape)."""
        return [self.detect_one(np.ascontiguousarray(f), scale) for f in frames]


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the official key layout (He-normal convs, zero biases, L2Norm scales)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, t in S3FDNet().state_dict().items():
        if key.startswith("L2Norm"):
            sd[key] = t.clone()
        elif key.endswith("bias"):
            sd[key] = torch.zeros_like(t)
        else:
            sd[key] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
    return sd


def load_s3fd(path=None, allow_random: bool = False, seed: int = 0) -> S3FDNet:
    """S3FD in eval mode with ``sfd_face.pth`` found by path / ``TALKBENCH_S3FD`` / cache (sha256 recorded as
    ``weights_sha256``). Absent: ``WeightsNotFound``, or with ``allow_random`` a seeded random network
    (``calibrated = False``: for timing only, it finds no faces)."""
    from . import load_network

    def check(net, state, info):  # every key, no buffer may be missing (the L2Norm scales are weights here)
        own = net.state_dict()
        if set(state) != set(own):
            raise WeightsUnreadable(f"{info.path}: not an S3FD state dict in syncnet_python's layout (missing "
                                    f"{sorted(set(own) - set(state))[:5]}, unexpected {sorted(set(state) - set(own))[:5]})")
        check_layout(net, state, f"{info.path} (S3FD)")

    return load_network(S3FDNet(), "s3fd", path, allow_random, seed, random_state_dict, check)


__all__ = ["S3FDNet", "S3FDDetector", "load_s3fd", "random_state_dict", "prior_boxes", "decode", "nms"]
