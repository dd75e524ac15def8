"""Model-weight registry: find official weight files by explicit path, env var or cache dir; check sha256.

Nothing here downloads at import or in tests. ``talkbench models list`` shows where each is looked for.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class WeightsNotFound(FileNotFoundError):
    """An official weight file is absent; the message says where it was looked for."""


class WeightsMismatch(ValueError):
    """A weight file exists but its sha256 is not the official one."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    files: tuple[str, ...]  # file names (a folder's worth for multi-file models)
    env: str  # env var holding a file (single-file) or folder path
    sha256: dict = field(default_factory=dict)  # file name -> full hex, or a prefix (pytorch-style names)
    description: str = ""
    source: str = ""  # how a user obtains it


def cache_dir() -> Path:
    return Path(os.environ.get("TALKBENCH_CACHE", Path.home() / ".cache" / "talkbench")) / "models"


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    REGISTRY[spec.name] = spec
    return spec


def file_sha256(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def verify(path: Path, expected: str | None) -> str:
    """sha256 of ``path``; raises if ``expected`` (full or prefix) is given and differs."""
    digest = file_sha256(path)
    if expected and not digest.startswith(expected.lower()):
        raise WeightsMismatch(f"{path}: sha256 {digest} does not match the official {expected}")
    return digest


def candidates(spec: ModelSpec, filename: str, explicit=None) -> list[Path]:
    out = []
    if explicit:
        p = Path(explicit)
        out.append(p / filename if p.is_dir() else p)
    env = os.environ.get(spec.env)
    if env:
        p = Path(env)
        out.append(p / filename if p.is_dir() else p)
    out.append(cache_dir() / spec.name / filename)
    out.append(cache_dir() / filename)
    return out


def resolve(name: str, filename: str | None = None, path=None, check: bool = True) -> Path:
    """Path of one file of model ``name`` (first existing candidate), sha256-checked."""
    spec = REGISTRY[name]
    filename = filename or spec.files[0]
    tried = candidates(spec, filename, path)
    for p in tried:
        if p.is_file():
            if check:
                verify(p, spec.sha256.get(filename))
            return p
    raise WeightsNotFound(
        f"{name}: {filename} not found; looked in " + ", ".join(str(p) for p in tried)
        + f". Pass its path, set {spec.env}, or put it in {cache_dir() / spec.name}. {spec.source}")


def package_data_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (face_recognition_models needs
    the removed pkg_resources at import time)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFound(f"python package {package!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def dlib_model(filename: str) -> Path:
    """A dlib model shipped in the ``face_recognition_models`` wheel (the embedded default)."""
    p = package_data_dir("face_recognition_models") / "models" / filename
    if not p.is_file():
        raise WeightsNotFound(f"{p} missing from the face_recognition_models wheel")
    return p


register(ModelSpec(
    "dlib", ("shape_predictor_68_face_landmarks.dat", "mmod_human_face_detector.dat",
             "dlib_face_recognition_resnet_model_v1.dat"),
    env="TALKBENCH_DLIB_DIR", description="dlib 68-point predictor, MMOD detector, face-embedding ResNet",
    source="Shipped by the face_recognition_models wheel (a dependency)."))
