"""Writing and reading shards: atomic Parquet files, deterministic shard sets, manifest, streaming readers.

Every file appears under its final name only when complete (written to a temp file in the same
directory, fsynced, then renamed), so a reader or a resumed job never sees half a shard.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import CLIPS_SCHEMA, FAILURES_SCHEMA, FRAMES_SCHEMA, SCHEMAS

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
ROW_GROUP_ROWS = {"clips": 64, "frames": 256, "failures": 1024}
MANIFEST = "manifest.json"


# ---------------------------------------------------------------- low level

def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def table_to_parquet_bytes(table: pa.Table, kind: str) -> bytes:
    """Deterministic Parquet bytes: fixed compression, row groups, no pandas metadata."""
    table = table.replace_schema_metadata(None)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
                   row_group_size=ROW_GROUP_ROWS.get(kind, 256), use_dictionary=False,
                   write_statistics=True, store_schema=True)
    return buf.getvalue()


def write_table_atomic(table: pa.Table, path, kind: str) -> None:
    atomic_write_bytes(path, table_to_parquet_bytes(table, kind))


def write_tables_atomic(tables: Iterable[pa.Table], path, kind: str) -> int:
    """Stream tables into one Parquet file (temp + rename), one table in memory at a time. Returns rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, SCHEMAS[kind], compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
                              use_dictionary=False, write_statistics=True, store_schema=True) as w:
            for t in tables:
                w.write_table(t.replace_schema_metadata(None), row_group_size=ROW_GROUP_ROWS.get(kind, 256))
                rows += t.num_rows
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows


def iter_parquet_tables(path, batch_rows: int = 1024) -> Iterator[pa.Table]:
    """A Parquet file as a stream of small tables (row order kept)."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_rows):
        yield pa.Table.from_batches([batch])


def rows_to_table(rows: list[dict], kind: str) -> pa.Table:
    """Build a table of ``kind`` from dict rows; numpy arrays are flattened into the list columns."""
    schema = SCHEMAS[kind]
    cols = {}
    for field in schema:
        vals = [r.get(field.name) for r in rows]
        if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            vals = [None if v is None else np.asarray(v).ravel().tolist() for v in vals]
        cols[field.name] = pa.array(vals, type=field.type)
    return pa.table(cols, schema=schema)


def empty_table(kind: str) -> pa.Table:
    return SCHEMAS[kind].empty_table()


# ---------------------------------------------------------------- shard sets

def shard_name(kind: str, i: int, n: int) -> str:
    return f"{kind}-{i:05d}-of-{n:05d}.parquet"


def write_shard_set(tables: Iterable[pa.Table], out_dir, kind: str, total_rows: int,
                    rows_per_shard: int) -> list[dict]:
    """Write an ordered stream of tables as ``ceil(total_rows / rows_per_shard)`` shards.

    The split depends only on the row order, so the same rows give byte-identical shards.
    Returns ``[{"path", "rows", "sha256"}]`` relative to ``out_dir``'s parent.
    """
    out_dir = Path(out_dir)
    n = max(1, math.ceil(total_rows / rows_per_shard))
    written, pending, pending_rows, i = [], [], 0, 0

    def flush(tabs):
        nonlocal i
        # one contiguous chunk per column: the bytes must not depend on how the input was sliced
        t = pa.concat_tables(tabs).combine_chunks() if tabs else empty_table(kind)
        path = out_dir / shard_name(kind, i, n)
        data = table_to_parquet_bytes(t, kind)
        atomic_write_bytes(path, data)
        written.append({"path": f"{out_dir.name}/{path.name}", "rows": t.num_rows,
                        "sha256": hashlib.sha256(data).hexdigest()})
        i += 1

    for t in tables:
        while t.num_rows:
            take = min(rows_per_shard - pending_rows, t.num_rows)
            pending.append(t.slice(0, take))
            pending_rows += take
            t = t.slice(take)
            if pending_rows == rows_per_shard:
                flush(pending)
                pending, pending_rows = [], 0
    if pending or i == 0:
        flush(pending)
    while i < n:  # only if total_rows overstated; keeps the -of-N promise
        flush([])
    # remove stale shards of this kind from an earlier run with a different count
    keep = {Path(w["path"]).name for w in written}
    for p in out_dir.glob(f"{kind}-*.parquet"):
        if p.name not in keep:
            p.unlink()
    return written


# ---------------------------------------------------------------- reading

def read_manifest(out_dir) -> dict:
    p = Path(out_dir) / MANIFEST
    if not p.exists():
        raise FileNotFoundError(f"{out_dir}: no {MANIFEST} (not a finished talkbench prep output)")
    return json.loads(p.read_text())


def shard_files(out_dir, kind: str) -> list[Path]:
    return sorted((Path(out_dir) / kind).glob(f"{kind}-*.parquet"))


def read_clips(out_dir, columns: list[str] | None = None) -> pa.Table:
    files = shard_files(out_dir, "clips")
    if not files:
        return CLIPS_SCHEMA.empty_table() if columns is None else CLIPS_SCHEMA.empty_table().select(columns)
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def read_failures(out_dir) -> pa.Table:
    p = Path(out_dir) / "failures.parquet"
    return pq.read_table(p) if p.exists() else FAILURES_SCHEMA.empty_table()


def iter_frame_batches(out_dir, columns: list[str] | None = None, clip_ids: set[str] | None = None,
                       files: list[Path] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream frame rows one row group at a time (bounded memory)."""
    for f in files if files is not None else shard_files(out_dir, "frames"):
        pf = pq.ParquetFile(f)
        for rg in range(pf.num_row_groups):
            batch = pf.read_row_group(rg, columns=columns)
            if clip_ids is not None:
                mask = pa.compute.is_in(batch.column("clip_id"), value_set=pa.array(sorted(clip_ids)))
                batch = batch.filter(mask)
            if batch.num_rows:
                for b in batch.to_batches():
                    yield b


def read_clip_frames(out_dir, clip_id: str, columns: list[str] | None = None) -> pa.Table:
    """All frame rows of one clip, ordered by frame_index."""
    import pyarrow.dataset as ds

    files = [str(f) for f in shard_files(out_dir, "frames")]
    if not files:
        return FRAMES_SCHEMA.empty_table()
    t = ds.dataset(files, format="parquet").to_table(columns=columns, filter=ds.field("clip_id") == clip_id)
    return t.sort_by("frame_index") if "frame_index" in t.column_names else t


def array_column(values, shape) -> np.ndarray:
    """A stored flat list + its shape back to a float32 array."""
    return np.asarray(values, dtype=np.float32).reshape(tuple(int(s) for s in shape))


def decode_crop(data: bytes) -> np.ndarray:
    """Encoded crop bytes → (S, S, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_crop(rgb: np.ndarray, codec: str = "jpeg", quality: int = 95) -> bytes:
    """(S, S, 3) uint8 RGB → bytes. PIL with fixed settings, so the bytes are deterministic."""
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if codec == "png":
        im.save(buf, format="PNG", compress_level=6)
    elif codec == "jpeg":
        im.save(buf, format="JPEG", quality=quality, subsampling=0, optimize=False)
    else:
        raise ValueError(f"unknown crop codec {codec!r} (png or jpeg)")
    return buf.getvalue()


@dataclass
class ClipAudio:
    clip_id: str
    num_frames: int
    mel: np.ndarray  # (80, T_mel)
    mfcc: np.ndarray  # (T_mfcc, 13)


def read_clip_audio(out_dir) -> dict[str, ClipAudio]:
    t = read_clips(out_dir, ["clip_id", "num_frames", "mel", "mel_shape", "mfcc", "mfcc_shape"])
    out = {}
    for r in t.to_pylist():
        out[r["clip_id"]] = ClipAudio(r["clip_id"], r["num_frames"], array_column(r["mel"], r["mel_shape"]),
                                      array_column(r["mfcc"], r["mfcc_shape"]))
    return out


def iter_training_frames(out_dir, clip_ids: set[str] | None = None, decode: bool = True) -> Iterator[dict]:
    """Stream face frames with their 16-step mel window (Wav2Lip rule), in shard order.

    Yields dicts: clip_id, frame_index, crop (decoded RGB or bytes), landmarks (68, 2) crop coords,
    mel (80, 16). Frames without a face or without a full mel window are skipped.
    """
    from .audio import mel_window

    audio = read_clip_audio(out_dir)
    cols = ["clip_id", "frame_index", "crop", "face_found", "landmarks"]
    for batch in iter_frame_batches(out_dir, cols, clip_ids):
        for r in batch.to_pylist():
            if not r["face_found"] or r["crop"] is None:
                continue
            a = audio.get(r["clip_id"])
            if a is None:
                continue
            w = mel_window(a.mel, r["frame_index"])
            if w is None:
                continue
            yield {"clip_id": r["clip_id"], "frame_index": r["frame_index"],
                   "crop": decode_crop(r["crop"]) if decode else r["crop"],
                   "landmarks": np.asarray(r["landmarks"], np.float32).reshape(68, 2), "mel": w}


__all__ = ["sha256_file", "atomic_write_bytes", "atomic_write_json", "write_table_atomic",
           "rows_to_table", "write_shard_set", "read_manifest", "read_clips", "read_failures",
           "iter_frame_batches", "read_clip_frames", "array_column", "decode_crop", "encode_crop",
           "read_clip_audio", "iter_training_frames", "shard_files", "shard_name"]
