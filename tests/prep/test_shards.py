"""Shard format: typed schema, atomic deterministic writes, shard-set splitting, readers."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prep import shards
from prep.output import PrepOutput, decode_crop
from prep.schema import CLIPS_SCHEMA, FRAMES_SCHEMA


def _frame_rows(clip_id, n, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        crop = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        rows.append({"clip_id": clip_id, "frame_index": i, "crop": shards.encode_crop(crop, "png"),
                     "face_found": i % 4 != 3, "num_faces": 1,
                     "landmarks": None if i % 4 == 3 else rng.random((68, 2)) * 32,
                     "affine": np.eye(2, 3)})
    return rows


def test_rows_to_table_types_and_nulls():
    t = shards.rows_to_table(_frame_rows("a/b", 8), "frames")
    assert t.schema == FRAMES_SCHEMA
    assert t.column("landmarks").null_count == 2
    assert t.column("mm_exp").null_count == 8  # declared, filled later by the 3DMM stage
    assert len(t.column("landmarks")[0].as_py()) == 136


def test_float_list_columns_equal_the_python_list_conversion():
    """rows_to_table builds list<float> columns (mel, mfcc) from the arrays, not a Python float per value:
    the same column as pyarrow's conversion of the values as lists (nulls, empty lists, 2-D arrays)."""
    rng = np.random.default_rng(0)
    mels = [rng.standard_normal((80, 33)).astype(np.float32), None, np.zeros((80, 0), np.float32),
            rng.standard_normal(7)]  # float64 values are stored as float32 either way
    t = shards.rows_to_table([{"clip_id": f"c{i}", "mel": m} for i, m in enumerate(mels)], "clips")
    want = pa.array([None if m is None else np.asarray(m).ravel().tolist() for m in mels], pa.list_(pa.float32()))
    assert t.column("mel").combine_chunks().equals(want)
    assert t.column("mel").null_count == 1 and t.column("mfcc").null_count == 4


def test_landmark_rows_equal_the_python_list_conversion():
    """finalize reads a clip's landmarks as one float32 array (no Python float per value): the values of the
    per-row lists, NaN rows where a frame has none, over several chunks, a sliced one included."""
    t = shards.rows_to_table(_frame_rows("a", 13, 5), "frames")
    col = pa.chunked_array(t.column("landmarks_src").chunks + [t.column("landmarks_src").combine_chunks().slice(3, 6)])
    got = shards.fixed_list_rows(col)
    want = np.stack([np.full(136, np.nan, np.float32) if v is None else np.asarray(v, np.float32)
                     for v in col.to_pylist()])
    assert got.dtype == np.float32 and got.shape == (19, 136)
    np.testing.assert_array_equal(got, want)  # NaN rows compare equal here
    assert np.isnan(got).all(axis=1).sum() == col.null_count > 0


def test_sync_qa_reads_a_shots_crops_one_segment_at_a_time():
    """The sync scorer gets a shot's crops as a sequence read segment by segment (a long shot's crop column is
    never in memory whole): the same bytes as the concatenated column, in any access order."""
    from prep.finalize import ShotCrops

    segs = [(s, shards.rows_to_table(_frame_rows("a", n, s), "frames")) for s, n in ((0, 7), (7, 5), (12, 9))]
    loads = []

    def tables(columns=None):
        for start, t in segs:
            loads.append(start)
            yield start, t.select(columns)

    every = sum((t.column("crop").to_pylist() for _, t in segs), [])
    crops = ShotCrops(tables, 3, 19)
    assert len(crops) == 16
    assert [crops[i] for i in range(16)] == every[3:19]
    assert loads == [0, 7, 12]  # in order: each segment read once
    assert crops[-1] == every[18] and crops[0] == every[3] and [crops[i] for i in (9, 2, 15)] == [every[12], every[5], every[18]]
    with pytest.raises(IndexError):
        crops[16]


def test_shards_stream_row_groups_with_the_bytes_of_one_whole_write(tmp_path):
    """Each shard is streamed to its file a row group at a time (memory: one row group, not a shard of
    4,096 frames with their crops); its bytes are those of writing the whole shard at once, however the
    input was sliced."""
    import hashlib

    whole = shards.rows_to_table(_frame_rows("a", 300, 3), "frames")
    cuts = [0, 1, 50, 257, 299, 300]
    pieces = [whole.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
    written = shards.write_shard_set(iter(pieces), tmp_path / "frames", "frames", 300, rows_per_shard=280)
    for w, (a, b) in zip(written, [(0, 280), (280, 300)]):
        want = shards.table_to_parquet_bytes(whole.slice(a, b - a).combine_chunks(), "frames")
        assert (tmp_path / w["path"]).read_bytes() == want
        assert w["rows"] == b - a and w["sha256"] == hashlib.sha256(want).hexdigest()
    assert pq.ParquetFile(tmp_path / written[0]["path"]).metadata.num_row_groups == 2  # 256 + 24 rows
    assert not list((tmp_path / "frames").glob(".*.tmp"))
    # as write_outputs feeds it: a part written and read back in pieces (its schema as Parquet restores it)
    shards.write_tables_atomic(pieces, tmp_path / "part.parquet", "frames")
    back = pq.read_table(tmp_path / "part.parquet")
    again = shards.write_shard_set(shards.iter_parquet_tables(tmp_path / "part.parquet", batch_rows=100),
                                   tmp_path / "again", "frames", 300, rows_per_shard=280)
    for w, (a, b) in zip(again, [(0, 280), (280, 300)]):
        assert (tmp_path / w["path"]).read_bytes() == shards.table_to_parquet_bytes(back.slice(a, b - a).combine_chunks(), "frames")


def test_parts_are_read_back_one_row_group_at_a_time(tmp_path):
    """write_outputs streams every part through iter_parquet_tables: at each table it yields, Arrow holds
    about one row group, not the whole file (pyarrow's iter_batches reads the whole file ahead)."""
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 255, 64 << 10, dtype=np.uint8).tobytes() for _ in range(16)]
    t = pa.table({"i": pa.array(range(320), pa.int32()), "b": pa.array([blobs[k % 16] for k in range(320)], pa.binary())})
    pq.write_table(t, tmp_path / "p.parquet", row_group_size=16, compression="none")  # 20 groups of 1 MiB
    base, held, back = pa.total_allocated_bytes(), [], []
    for piece in shards.iter_parquet_tables(tmp_path / "p.parquet", batch_rows=10):
        held.append(pa.total_allocated_bytes() - base)
        back.append(piece)
        del piece
        back[-1] = back[-1].column("i").to_pylist()  # keep the row order, not the bytes
    assert sum(back, []) == list(range(320)) and max(len(b) for b in back) <= 10
    # a few 1 MiB row groups in flight (the reader's buffers); the old read-ahead held all 20 MiB
    assert max(held) < 8 << 20, f"{max(held) / 2 ** 20:.1f} MiB held while reading a 20 MiB file"


def test_parquet_bytes_are_deterministic_and_atomic(tmp_path):
    t = shards.rows_to_table(_frame_rows("a", 20), "frames")
    shards.write_table_atomic(t, tmp_path / "x.parquet", "frames")
    shards.write_table_atomic(t, tmp_path / "y.parquet", "frames")
    assert (tmp_path / "x.parquet").read_bytes() == (tmp_path / "y.parquet").read_bytes()
    assert not list(tmp_path.glob("*.tmp"))
    assert pq.ParquetFile(tmp_path / "x.parquet").metadata.row_group(0).column(0).compression == "ZSTD"


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "z.json"
    with pytest.raises(TypeError):
        shards.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert not target.exists() and not list(tmp_path.iterdir())


def test_shard_set_split_and_names(tmp_path):
    tables = [shards.rows_to_table(_frame_rows(f"c{k}", 7, k), "frames") for k in range(5)]
    written = shards.write_shard_set(iter(tables), tmp_path / "frames", "frames", 35, rows_per_shard=10)
    assert [w["path"] for w in written] == [f"frames/frames-{i:05d}-of-00004.parquet" for i in range(4)]
    assert [w["rows"] for w in written] == [10, 10, 10, 5]
    back = pa.concat_tables([pq.read_table(tmp_path / w["path"]) for w in written])
    assert back.equals(pa.concat_tables(tables))
    # a rewrite with fewer rows removes stale shards of the old count
    shards.write_shard_set(iter(tables[:1]), tmp_path / "frames", "frames", 7, rows_per_shard=10)
    assert [p.name for p in sorted((tmp_path / "frames").glob("frames-*.parquet"))] == ["frames-00000-of-00001.parquet"]


def test_crop_codecs_round_trip():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_crop(shards.encode_crop(img, "png")), img)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    assert np.abs(decode_crop(shards.encode_crop(smooth, "jpeg", 95)).astype(int) - smooth).max() <= 4
    assert shards.encode_crop(img, "jpeg") == shards.encode_crop(img, "jpeg")
    with pytest.raises(ValueError, match="codec"):
        shards.encode_crop(img, "webp")


def test_training_reader_cuts_wav2lip_mel_windows(tmp_path):
    from prep.audio import mel_window

    mel = np.arange(80 * 17, dtype=np.float32).reshape(80, 17)  # 5 frames -> 1 + 5*3.2 = 17 mel steps
    clip = {"clip_id": "a", "source_path": "/x/a.mp4", "source_sha256": "0" * 64, "fps": 25.0, "num_frames": 5,
            "sample_rate": 16000, "duration_s": 0.2, "mel": mel, "mel_shape": [80, 17],
            "mfcc": np.zeros((19, 13)), "mfcc_shape": [19, 13]}
    assert shards.rows_to_table([clip], "clips").schema == CLIPS_SCHEMA
    shards.write_shard_set([shards.rows_to_table([clip], "clips")], tmp_path / "clips", "clips", 1, 10)
    shards.write_shard_set([shards.rows_to_table(_frame_rows("a", 5), "frames")], tmp_path / "frames",
                           "frames", 5, 10)
    out = PrepOutput(tmp_path, {})  # shards without a manifest: the reader's frame / clip access only
    got = list(out.training_frames())
    # frame 3 has no face; frames 1..4 start at 3, 6, 9, 12 -> only 0 (start 0) fits a 16-step window in 17
    assert [g["frame_index"] for g in got] == [0]
    np.testing.assert_array_equal(got[0]["mel"], mel_window(mel, 0))
    assert got[0]["crop"].shape == (32, 32, 3) and got[0]["landmarks"].shape == (68, 2)
    assert out.clip_frames("a").column("frame_index").to_pylist() == list(range(5))
    assert [c.clip_id for c in out.clips()] == ["a"] and out.clip("a", audio=True).mel.shape == (80, 17)


def test_readable_with_hf_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    shards.write_shard_set([shards.rows_to_table(_frame_rows("a", 6), "frames")], tmp_path / "frames",
                           "frames", 6, 10)
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "frames" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 6 and len(ds[0]["landmarks"]) == 136
