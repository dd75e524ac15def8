"""Writing shards: atomic Parquet files and deterministic shard sets (reading: :mod:`prep.output`).

Every file appears under its final name only when complete (written to a temp file in the same
directory, fsynced, then renamed), so a reader or a resumed job never sees half a shard.
"""
from __future__ import annotations

import hashlib
import io
import itertools
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


def write_tables_atomic(tables: Iterable[pa.Table], path, kind: str, schema: pa.Schema | None = None) -> int:
    """Stream tables into one Parquet file (temp + rename), one table in memory at a time. Returns rows.
    ``schema``: the file's (default: the kind's); every table must have it."""
    tmp = temp_path(path)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema or SCHEMAS[kind], compression=COMPRESSION, compression_level=COMPRESSION_LEVEL,
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


def fixed_list_rows(column: pa.ChunkedArray) -> np.ndarray:
    """The inverse of :func:`fixed_list_array`: a fixed-size-list column as (rows, width) float32, NaN rows
    where null (no Python float per value)."""
    width = column.type.list_size
    out = np.full((len(column), width), np.nan, np.float32)
    at = 0
    for chunk in column.chunks:
        ok = np.asarray(chunk.is_valid())
        if ok.any():
            out[at:at + len(chunk)][ok] = np.asarray(chunk.filter(ok).flatten(), np.float32).reshape(-1, width)
        at += len(chunk)
    return out


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
    streamed to its file (:func:`write_tables_atomic`) a row group at a time, each group one contiguous
    chunk per column: the bytes of ``pq.write_table`` of the whole shard, however the input was sliced, with
    one row group in memory instead of a shard (4,096 frames with their crops). Returns
    ``[{"path", "rows", "sha256"}]`` relative to ``out_dir``'s parent.
    """
    out_dir = Path(out_dir)
    n = max(1, math.ceil(total_rows / rows_per_shard))
    group = ROW_GROUP_ROWS.get(kind, 256)
    rows = _RowStream(tables)
    written: list[dict] = []
    while rows.more() or len(written) < n:  # an empty shard where total_rows overstated: keeps the -of-N promise
        path = out_dir / shard_name(kind, len(written), n)
        if rows.more():
            groups = _regrouped(rows.take(rows_per_shard), group)
            first = next(groups)  # its schema, as pq.write_table of the shard's table would store it
            count = write_tables_atomic(itertools.chain([first], groups), path, kind,
                                        first.schema.remove_metadata())
            sha = sha256_file(path)
        else:
            data = table_to_parquet_bytes(empty_table(kind), kind)
            atomic_write_bytes(path, data)
            count, sha = 0, hashlib.sha256(data).hexdigest()
        written.append({"path": f"{out_dir.name}/{path.name}", "rows": count, "sha256": sha})
    # remove stale shards of this kind from an earlier run with a different count
    keep = {Path(w["path"]).name for w in written}
    for p in out_dir.glob(f"{kind}-*.parquet"):
        if p.name not in keep:
            p.unlink()
    return written


class _RowStream:
    """The rows of a stream of tables, taken ``n`` at a time as slices."""

    def __init__(self, tables: Iterable[pa.Table]):
        self._tables, self._head = iter(tables), None

    def more(self) -> bool:
        while self._head is None or not self._head.num_rows:
            self._head = next(self._tables, None)
            if self._head is None:
                return False
        return True

    def take(self, n: int) -> Iterator[pa.Table]:
        while n and self.more():
            piece = self._head.slice(0, n)
            self._head = self._head.slice(piece.num_rows)
            n -= piece.num_rows
            yield piece


def _regrouped(pieces: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """``pieces`` re-cut into tables of ``size`` rows (the last may be shorter), each one contiguous chunk
    per column: the bytes must not depend on how the input was sliced."""
    rows = _RowStream(pieces)
    while rows.more():
        yield pa.concat_tables(list(rows.take(size))).combine_chunks()


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
           "iter_parquet_tables", "rows_to_table", "frames_table", "fixed_list_array", "fixed_list_rows", "empty_table", "write_shard_set", "shard_name", "encode_crop",
           "MANIFEST"]
