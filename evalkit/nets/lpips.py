"""LPIPS v0.1 (Zhang et al. 2018): our AlexNet / VGG16 feature code in torchvision's state-dict layout, the
lpips package's linear heads, its normalisation and its spatial average.

``LPIPS(net)(x, y)`` with x, y (N, 3, H, W) RGB in [-1, 1] returns (N,) distances, step for step as
``lpips.LPIPS(net=..., version="0.1")``:

1. scaling layer: ``(x − shift) / scale`` with shift (−.030, −.088, −.188), scale (.458, .448, .450);
2. backbone features at five ReLUs (AlexNet: relu1 … relu5 = ``features[1, 4, 7, 9, 11]``; VGG16: relu1_2,
   relu2_2, relu3_3, relu4_3, relu5_3 = ``features[3, 8, 15, 22, 29]``);
3. each unit-normalised over channels (``f / (‖f‖₂ + 1e−10)``), the squared difference of the two images'
   features weighted by the layer's 1×1 head (``lin{k}.model.1.weight``, no bias), averaged over H × W;
4. the sum over the five layers.

Backbones load from torchvision's published files (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``:
``features.*`` keys are the contract; ``classifier.*``, when present, is shape-checked and dropped); the
heads from the lpips v0.1 files that torchmetrics ships. Dropout (the package's ``use_dropout``) is the
identity in eval mode and is left out.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from talkbase.weights import WeightsUnreadable, check_layout, load_torch_state

log = logging.getLogger(__name__)

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
NETS = {"alex": "alexnet", "vgg": "vgg16"}  # LPIPS net name -> backbone weights (talkbase.weights)
HEAD_FILES = {"alex": "alex.pth", "vgg": "vgg.pth"}
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}  # features index of each tapped ReLU
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
CLASSIFIER = {  # torchvision's classifier shapes (checked when the file has them, never loaded)
    "alex": {"classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,), "classifier.4.weight": (4096, 4096),
             "classifier.4.bias": (4096,), "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)},
    "vgg": {"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,), "classifier.3.weight": (4096, 4096),
            "classifier.3.bias": (4096,), "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)},
}


def alexnet_features() -> nn.Sequential:
    """torchvision ``alexnet().features`` (same indices, so ``features.{i}.*`` keys load as they are)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2))


def vgg16_features() -> nn.Sequential:
    """torchvision ``vgg16().features`` (configuration D, no batch norm)."""
    layers, c_in = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """``features`` of torchvision's AlexNet / VGG16, returning the five tapped ReLU outputs."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"LPIPS net must be one of {tuple(NETS)}, got {net!r}")
        self.net = net
        self.features = alexnet_features() if net == "alex" else vgg16_features()
        self.taps = TAPS[net]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features[:self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class LPIPS(nn.Module):
    """LPIPS v0.1 distance: ``forward(x, y)`` with (N, 3, H, W) RGB in [-1, 1] → (N,) float."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.backbone = Backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.weights: dict[str, dict] = {}

    @staticmethod
    def _unit(f: torch.Tensor) -> torch.Tensor:
        return f / (torch.sqrt(torch.sum(f ** 2, dim=1, keepdim=True)) + EPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.backbone((x - self.shift) / self.scale)
        fy = self.backbone((y - self.shift) / self.scale)
        total = 0
        for lin, a, b in zip(self.lins, fx, fy):
            total = total + lin((self._unit(a) - self._unit(b)) ** 2).mean(dim=(2, 3), keepdim=True)
        return total.reshape(-1)

    @torch.inference_mode()
    def distances(self, ref, gen, batch_size: int | None = None) -> torch.Tensor:
        """(N,) float64 LPIPS of uint8 (N, H, W, 3) RGB image pairs (``/255``, then ``2x − 1``, the package's
        ``normalize=True``). Batches hold about sixteen 256-px images (fewer full-HD frames)."""
        import numpy as np

        if batch_size is None:
            batch_size = max(1, int(16 * 256 * 256 / max(1, np.shape(ref)[1] * np.shape(ref)[2]))) if len(ref) else 1
        out = []
        for i in range(0, len(ref), batch_size):
            a, b = (torch.from_numpy(np.ascontiguousarray(z[i:i + batch_size])).permute(0, 3, 1, 2).float()
                    .div(255).mul(2).sub(1) for z in (ref, gen))
            out.append(self(a, b).double())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


# ---------------------------------------------------------------- weights

def backbone_state(net: str, state: dict, where: str) -> dict:
    """``features.*`` of a torchvision state dict (``classifier.*`` shape-checked and dropped)."""
    want = CLASSIFIER[net]
    extra = sorted(k for k in state if not k.startswith("features.") and k not in want)
    if extra:
        raise WeightsUnreadable(f"{where}: not torchvision's {NETS[net]} layout (unexpected {extra[:5]})")
    for k, shape in want.items():
        if k in state and tuple(state[k].shape) != shape:
            raise WeightsUnreadable(f"{where}: {k} has shape {tuple(state[k].shape)}, expected {shape}")
    return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}


def random_backbone_state(net: str = "alex", seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random ``features.*`` state dict in torchvision's layout (He-normal convs, small biases)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in Backbone(net).features.state_dict().items():
        if k.endswith("weight"):
            fan_in = v[0].numel()
            out[f"features.{k}"] = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            out[f"features.{k}"] = torch.randn(v.shape, generator=g) * 0.01
    return out


def load_lpips(net: str = "alex", backbone_path=None, heads_path=None) -> LPIPS:
    """LPIPS with the backbone file of ``net`` (path / env / cache / torch hub) and the v0.1 heads (path / env /
    torchmetrics' copy). ``weights`` records each file's path, sha256 and whether it is the official one;
    ``calibrated`` is True only when both are."""
    model = LPIPS(net)
    name = NETS[net]
    state, info = load_torch_state(name, backbone_path)
    check_layout(model.backbone.features, backbone_state(net, state, info.path), f"{info.path} ({name})")
    heads, hinfo = load_torch_state("lpips", heads_path, filename=HEAD_FILES[net])
    check_layout(model.lins, {k.replace("lin", "", 1).replace(".model.1.", "."): v for k, v in heads.items()},
                 f"{hinfo.path} (LPIPS v0.1 {net} heads)")
    model.weights = {name: {"path": info.path, "sha256": info.sha256, "official": info.official},
                     "lpips": {"path": hinfo.path, "sha256": hinfo.sha256, "official": hinfo.official}}
    model.weights_path, model.weights_sha256 = info.path, info.sha256
    model.calibrated = info.official and hinfo.official
    return model.eval()


__all__ = ["LPIPS", "Backbone", "load_lpips", "random_backbone_state", "backbone_state", "alexnet_features",
           "vgg16_features", "NETS", "HEAD_FILES", "SHIFT", "SCALE"]
