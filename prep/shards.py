"""Writing shards: atomic Parquet files and deterministic shard sets (reading: :mod:`prep.output`).

Every file appears under its final name only when complete (written to a temp file in the same
directory, fsynced, then renamed), so a reader or a resumed job never sees half a shard.
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbase.fileio import atomic_write_bytes, commit_temp, sha256_file, temp_path

from .schema import SCHEMAS

COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
ROW_GROUP_ROWS = {"clips": 64, "frames": 256, "failures": 1024}
MANIFEST = "manifest.json"  # read back by prep.output.PrepOutput


# ---------------------------------------------------------------- low level

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
    tmp = temp_path(path)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, SCHEMAS[kind], compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
                              use_dictionary=False, write_statistics=True, store_schema=True) as w:
            for t in tables:
                w.write_table(t.replace_schema_metadata(None), row_group_size=ROW_GROUP_ROWS.get(kind, 256))
                rows += t.num_rows
        commit_temp(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def iter_parquet_tables(path, batch_rows: int = 1024) -> Iterator[pa.Table]:
    """A Parquet file as a stream of small tables (row order kept), read one row group at a time:
    ``iter_batches`` over the whole file reads all of it ahead (a 4-minute clip's 129 MB frames part: 133 MB
    of Arrow memory at once; by row group, 15 MB)."""
    pf = pq.ParquetFile(path)
    for i in range(pf.num_row_groups):
        t = pf.read_row_group(i)
        for a in range(0, t.num_rows, batch_rows):
            yield t.slice(a, batch_rows)


def rows_to_table(rows: list[dict], kind: str) -> pa.Table:
    """Build a table of ``kind`` from dict rows; numpy arrays are flattened into the list columns."""
    schema = SCHEMAS[kind]
    cols = {}
    for field in schema:
        vals = [r.get(field.name) for r in rows]
        if pa.types.is_list(field.type) and pa.types.is_floating(field.type.value_type):
            cols[field.name] = _float_list(vals, field.type)
            continue
        if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            vals = [None if v is None else np.asarray(v).ravel().tolist() for v in vals]
        cols[field.name] = pa.array(vals, type=field.type)
    return pa.table(cols, schema=schema)


def _float_list(values: list, type: pa.ListType) -> pa.Array:
    """A list<float> column from per-row arrays (None = null), without a Python float per value (a long
    clip's mel is millions of them): the same array as ``pa.array`` of the values as lists."""
    arrays = [None if v is None else np.asarray(v).ravel() for v in values]
    sizes = [0 if a is None else a.size for a in arrays]
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32), pa.int32())
    dtype = type.value_type.to_pandas_dtype()
    flat = np.concatenate([a.astype(dtype) for a in arrays if a is not None] or [np.zeros(0, dtype)])
    mask = pa.array([a is None for a in arrays], pa.bool_())
    return pa.ListArray.from_arrays(offsets, pa.array(flat, type.value_type), type=type, mask=mask)


def fixed_list_array(flat: np.ndarray, valid: np.ndarray, field: pa.Field) -> pa.Array:
    """A fixed-size-list column from a (rows, width) array; rows where ``valid`` is False are null."""
    flat = np.ascontiguousarray(flat, np.float32).reshape(len(valid), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), type=field.type.value_type),
                                             field.type.list_size, mask=pa.array(~np.asarray(valid, bool)))


def _fixed_list(values: list, width: int, field: pa.Field) -> pa.Array:
    """A fixed-size-list column from per-row arrays (None = null) without a Python list per value."""
    valid = np.array([v is not None for v in values], bool)
    flat = np.zeros((len(values), width), np.float32)
    if valid.any():
        flat[valid] = np.stack([np.asarray(v, np.float32).reshape(-1) for v in values if v is not None])
    return fixed_list_array(flat, valid, field)


def frames_table(rows: list[dict]) -> pa.Table:
    """The frames table of tracker rows (``clip_id``, ``frame_index``, encoded ``crop`` and the face columns;
    ``mm_*`` as given or null), built column-wise: the same table as ``rows_to_table(rows, "frames")``."""
    schema = SCHEMAS["frames"]
    cols = {}
    for field in schema:
        vals = [r.get(field.name) for r in rows]
        if pa.types.is_fixed_size_list(field.type):
            cols[field.name] = _fixed_list(vals, field.type.list_size, field)
        else:
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

    The split depends only on the row order, so the same rows give byte-identical shards. Each shard is
    streamed to its file a row group at a time (one contiguous chunk per column, as ``pq.write_table`` of
    the whole shard would write it: the same bytes), so memory holds one row group, not one shard (4,096
    frames with their crops). Returns ``[{"path", "rows", "sha256"}]`` relative to ``out_dir``'s parent.
    """
    out_dir = Path(out_dir)
    n = max(1, math.ceil(total_rows / rows_per_shard))
    group = ROW_GROUP_ROWS.get(kind, 256)
    written: list[dict] = []
    shard: _ShardFile | None = None
    for t in tables:
        while t.num_rows:
            if shard is None:
                shard = _ShardFile(out_dir / shard_name(kind, len(written), n), kind, group)
            take = min(rows_per_shard - shard.rows, t.num_rows)
            shard.add(t.slice(0, take))
            t = t.slice(take)
            if shard.rows == rows_per_shard:
                written.append(shard.close(out_dir))
                shard = None
    if shard is not None:
        written.append(shard.close(out_dir))
    while len(written) < n:  # no rows at all, or total_rows overstated: keeps the -of-N promise
        path = out_dir / shard_name(kind, len(written), n)
        data = table_to_parquet_bytes(empty_table(kind), kind)
        atomic_write_bytes(path, data)
        written.append({"path": f"{out_dir.name}/{path.name}", "rows": 0, "sha256": hashlib.sha256(data).hexdigest()})
    # remove stale shards of this kind from an earlier run with a different count
    keep = {Path(w["path"]).name for w in written}
    for p in out_dir.glob(f"{kind}-*.parquet"):
        if p.name not in keep:
            p.unlink()
    return written


class _ShardFile:
    """One shard being written: rows gathered into row groups of ``group`` rows, each written as one chunk
    per column (the bytes must not depend on how the input was sliced), to a temp file renamed on close."""

    def __init__(self, path: Path, kind: str, group: int):
        self.path, self.kind, self.group = path, kind, group
        self.tmp = temp_path(path)
        self.writer = None
        self.pending: list[pa.Table] = []
        self.pending_rows = self.rows = 0

    def add(self, t: pa.Table) -> None:
        self.rows += t.num_rows
        while t.num_rows:
            take = min(self.group - self.pending_rows, t.num_rows)
            self.pending.append(t.slice(0, take))
            self.pending_rows += take
            t = t.slice(take)
            if self.pending_rows == self.group:
                self._write()

    def _write(self) -> None:
        rg = pa.concat_tables(self.pending).combine_chunks().replace_schema_metadata(None)
        try:
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, rg.schema, compression=COMPRESSION,
                                               compression_level=COMPRESSION_LEVEL, use_dictionary=False,
                                               write_statistics=True, store_schema=True)
            self.writer.write_table(rg, row_group_size=self.group)
        except BaseException:
            self.abort()
            raise
        self.pending, self.pending_rows = [], 0

    def close(self, out_dir: Path) -> dict:
        try:
            if self.pending:
                self._write()
            self.writer.close()
            commit_temp(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return {"path": f"{out_dir.name}/{self.path.name}", "rows": self.rows, "sha256": sha256_file(self.path)}

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- crops

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


__all__ = ["write_table_atomic", "write_tables_atomic", "table_to_parquet_bytes",
           "iter_parquet_tables", "rows_to_table", "frames_table", "fixed_list_array", "empty_table", "write_shard_set", "shard_name", "encode_crop",
           "MANIFEST"]
