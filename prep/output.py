"""The one reader of a prep output: ``PrepOutput.open(path)``.

Every consumer (evalkit, refmodel, leaderboard-side tools, data_cards, the demo) reads shards through
this handle, so a clip means the same thing everywhere: one typed :class:`Clip` per clips-table row,
frames streamed one row group at a time, crops decoded by :func:`decode_crop`, and source videos
resolved and sha256-verified in one place. See :mod:`prep.schema` for the columns.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbase.fileio import sha256_file

from .schema import CLIPS_SCHEMA, FAILURES_SCHEMA, FRAMES_SCHEMA, NUM_LANDMARKS

MANIFEST = "manifest.json"
FAILURES = "failures.parquet"


class NotAPrepOutput(FileNotFoundError):
    """The folder holds no finished prep output."""


class SourceChanged(ValueError):
    """A clip's source video is missing or no longer has the sha256 recorded at prep time."""


def array_column(values, shape) -> np.ndarray:
    """A stored flat list + its shape back to a float32 array."""
    return np.asarray(values, dtype=np.float32).reshape(tuple(int(s) for s in shape))


def decode_crop(data: bytes) -> np.ndarray:
    """Encoded crop bytes → (S, S, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass(frozen=True)
class Clip:
    """One row of the clips table (``mel`` / ``mfcc`` only when asked for: they are the bulk of it)."""

    clip_id: str
    source_path: str  # as stored: absolute, or relative to the prep output
    source_sha256: str
    split: str | None
    speaker: str | None
    num_frames: int
    src_width: int | None
    src_height: int | None
    src_fps: float | None
    crop_size: int
    qa_pass: bool | None
    qa_flags: tuple[str, ...]
    mel: np.ndarray | None = None  # (80, T_mel), Wav2Lip
    mfcc: np.ndarray | None = None  # (T_mfcc, 13), SyncNet

    @property
    def duration_s(self) -> float:
        return self.num_frames / 25.0


@dataclass(frozen=True)
class FrameGeometry:
    """Per-frame face geometry of one clip (index = frame at 25 fps; NaN rows where no face)."""

    face: np.ndarray  # (n,) bool: face found and box + affine stored
    boxes: np.ndarray  # (n, 4) x0, y0, x1, y1 source px
    affines: np.ndarray  # (n, 6) 2x3 row-major, source px -> crop px
    mm_exp: np.ndarray | None = None  # (n, NUM_MM_EXP) 3DMM expression coefficients (NaN rows: not fitted)


_CLIP_COLUMNS = ["clip_id", "source_path", "source_sha256", "split", "speaker", "num_frames", "src_width",
                 "src_height", "src_fps", "crop_size", "qa_pass", "qa_flags"]


class PrepOutput:
    """A finished prep output folder (``manifest.json`` + shards)."""

    def __init__(self, path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls, path) -> "PrepOutput":
        p = Path(path)
        f = p / MANIFEST
        if not f.is_file():
            raise NotAPrepOutput(f"{p}: no {MANIFEST} (not a finished talkbench prep output)")
        try:
            manifest = json.loads(f.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise NotAPrepOutput(f"{f}: not valid JSON ({e})") from None
        if not isinstance(manifest, dict):
            raise NotAPrepOutput(f"{f}: not a prep manifest")
        return cls(p, manifest)

    # ------------------------------------------------------------ identity

    @property
    def config_hash(self) -> str | None:
        return self.manifest.get("config_hash")

    @property
    def crop_codec(self) -> str:
        return self.manifest.get("crop_codec", "jpeg")

    @property
    def counts(self) -> dict:
        return dict(self.manifest.get("counts") or {})

    @property
    def has_3dmm(self) -> bool:
        return bool(((self.manifest.get("config") or {}).get("faces") or {}).get("fit_3dmm", False))

    @cached_property
    def shards_sha256(self) -> str:
        """sha256 over the manifest's shard entries (lines ``"<path> <sha256>"`` sorted): names a benchmark."""
        entries = sorted(f"{it['path']} {it['sha256']}" for items in (self.manifest.get("shards") or {}).values()
                         for it in items or [] if isinstance(it, dict) and "sha256" in it and "path" in it)
        if not entries:
            raise NotAPrepOutput(f"{self.path}: manifest lists no shards with sha256")
        return hashlib.sha256("\n".join(entries).encode()).hexdigest()

    def shard_files(self, kind: str) -> list[Path]:
        return sorted((self.path / kind).glob(f"{kind}-*.parquet"))

    # ------------------------------------------------------------ clips

    def clips_table(self, columns: list[str] | None = None, files: list[Path] | None = None) -> pa.Table:
        files = self.shard_files("clips") if files is None else files
        if not files:
            empty = CLIPS_SCHEMA.empty_table()
            return empty if columns is None else empty.select(columns)
        return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])

    def clips(self, split: str | None = None, audio: bool = False, clip_ids=None) -> list[Clip]:
        """Clips (of ``split`` / of ``clip_ids``), sorted by clip id."""
        cols = _CLIP_COLUMNS + (["mel", "mel_shape", "mfcc", "mfcc_shape"] if audio else [])
        wanted = None if clip_ids is None else set(clip_ids)
        out = []
        for r in self.clips_table(cols).to_pylist():
            if (split is not None and r["split"] != split) or (wanted is not None and r["clip_id"] not in wanted):
                continue
            mel = mfcc = None
            if audio and r["mel"] is not None:
                mel = array_column(r["mel"], r["mel_shape"])
                mfcc = array_column(r["mfcc"], r["mfcc_shape"])
            out.append(Clip(r["clip_id"], r["source_path"], r["source_sha256"], r["split"], r["speaker"],
                            int(r["num_frames"]), r["src_width"], r["src_height"], r["src_fps"],
                            int(r["crop_size"] or 256), r["qa_pass"], tuple(r["qa_flags"] or ()), mel, mfcc))
        return sorted(out, key=lambda c: c.clip_id)

    def clip(self, clip_id: str, audio: bool = False) -> Clip:
        found = self.clips(audio=audio, clip_ids=[clip_id])
        if not found:
            raise KeyError(f"{self.path}: no clip {clip_id!r}")
        return found[0]

    def splits(self) -> list[str | None]:
        return sorted({c.split for c in self.clips()}, key=lambda s: (s is None, s or ""))

    def failures(self) -> pa.Table:
        p = self.path / FAILURES
        return pq.read_table(p) if p.exists() else FAILURES_SCHEMA.empty_table()

    # ------------------------------------------------------------ sources

    def source(self, clip: Clip) -> Path | None:
        """The clip's source video: its absolute path, or a relative path resolved against this prep output
        only (never the current directory). None when no such file exists."""
        p = Path(clip.source_path)
        cand = p if p.is_absolute() else self.path / p
        return cand.resolve() if cand.is_file() else None

    def verified_source(self, clip: Clip) -> Path:
        """:meth:`source`, after checking it still has the sha256 recorded at prep time."""
        p = self.source(clip)
        if p is None:
            raise SourceChanged(f"source video of {clip.clip_id} not found ({clip.source_path})")
        if clip.source_sha256 and sha256_file(p) != clip.source_sha256:
            raise SourceChanged(f"source video of {clip.clip_id} changed since prep (sha256 differs): {p}")
        return p

    # ------------------------------------------------------------ frames

    def frame_batches(self, columns: list[str] | None = None, clip_ids=None,
                      files: list[Path] | None = None) -> Iterator[pa.RecordBatch]:
        """Frame rows one row group at a time (bounded memory), in shard order."""
        value_set = None if clip_ids is None else pa.array(sorted(set(clip_ids)))
        for f in files if files is not None else self.shard_files("frames"):
            pf = pq.ParquetFile(f)
            for rg in range(pf.num_row_groups):
                batch = pf.read_row_group(rg, columns=columns)
                if value_set is not None:
                    batch = batch.filter(pa.compute.is_in(batch.column("clip_id"), value_set=value_set))
                if batch.num_rows:
                    yield from batch.to_batches()

    def clip_frames(self, clip_id: str, columns: list[str] | None = None) -> pa.Table:
        """All frame rows of one clip, ordered by frame_index."""
        import pyarrow.dataset as ds

        files = [str(f) for f in self.shard_files("frames")]
        if not files:
            return FRAMES_SCHEMA.empty_table() if columns is None else FRAMES_SCHEMA.empty_table().select(columns)
        t = ds.dataset(files, format="parquet").to_table(columns=columns, filter=ds.field("clip_id") == clip_id)
        return t.sort_by("frame_index") if "frame_index" in t.column_names else t

    def geometry(self, clips: list[Clip]) -> dict[str, FrameGeometry]:
        """Face / box / affine per frame for each of ``clips`` (one pass over the frame shards)."""
        by_id = {c.clip_id: c for c in clips}
        from .schema import NUM_MM_EXP

        out = {cid: FrameGeometry(np.zeros(c.num_frames, bool), np.full((c.num_frames, 4), np.nan),
                                  np.full((c.num_frames, 6), np.nan), np.full((c.num_frames, NUM_MM_EXP), np.nan))
               for cid, c in by_id.items()}
        for batch in self.frame_batches(["clip_id", "frame_index", "face_found", "box", "affine", "mm_exp"],
                                        list(by_id)):
            d = batch.to_pydict()
            for cid, fi, ff, box, aff, exp in zip(d["clip_id"], d["frame_index"], d["face_found"], d["box"],
                                                  d["affine"], d["mm_exp"]):
                g = out[cid]
                if not 0 <= fi < len(g.face):
                    continue
                g.face[fi] = bool(ff) and box is not None and aff is not None
                if box is not None:
                    g.boxes[fi] = box
                if aff is not None:
                    g.affines[fi] = aff
                if exp is not None:
                    g.mm_exp[fi] = exp
        return out

    def training_frames(self, clip_ids=None, decode: bool = True) -> Iterator[dict]:
        """Face frames with their 16-step mel window (Wav2Lip rule), in shard order.

        Yields ``clip_id``, ``frame_index``, ``crop`` (decoded RGB, or bytes), ``landmarks`` (68, 2) crop
        coords and ``mel`` (80, 16). Frames without a face or a full mel window are skipped.
        """
        from .audio import mel_window

        mels = {c.clip_id: c.mel for c in self.clips(audio=True, clip_ids=clip_ids) if c.mel is not None}
        cols = ["clip_id", "frame_index", "crop", "face_found", "landmarks"]
        for batch in self.frame_batches(cols, clip_ids):
            for r in batch.to_pylist():
                mel = mels.get(r["clip_id"])
                if not r["face_found"] or r["crop"] is None or mel is None:
                    continue
                w = mel_window(mel, r["frame_index"])
                if w is None:
                    continue
                yield {"clip_id": r["clip_id"], "frame_index": r["frame_index"],
                       "crop": decode_crop(r["crop"]) if decode else r["crop"],
                       "landmarks": np.asarray(r["landmarks"], np.float32).reshape(NUM_LANDMARKS, 2), "mel": w}


__all__ = ["PrepOutput", "Clip", "FrameGeometry", "NotAPrepOutput", "SourceChanged", "decode_crop",
           "array_column", "MANIFEST", "FAILURES"]
