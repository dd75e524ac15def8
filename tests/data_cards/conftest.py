"""Data-card fixtures: a small but real prep output built from the real clips, with its card."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow
import pytest

from prep.schema import SCHEMA_VERSION
from prep.shards import encode_crop, rows_to_table, table_to_parquet_bytes, write_shard_set
from talkbase.fileio import atomic_write_json

CLIPS = ["w2l_input3.mp4", "w2l_input4.mp4", "latentsync_demo1.mp4", "latentsync_demo2.mp4"]
FRAMES_PER_SHARD = 400
CONFIG = {"fps": 25, "crop_size": 64, "crop_codec": "jpeg", "face_backend": "dlib", "detect_every": 5,
          "faces": {"fit_3dmm": True}, "filter": {"min_face_size": 64, "min_face_fraction": 0.5}, "input": "videos",
          "notes": "```ticks```"}


def make_prep_out(videos_dir: Path, out: Path) -> Path:
    """A small but real prep output: clip rows from the real clips (probe, 16 kHz audio features, first-frame
    crop), one frame row per 25 fps frame, one failure, and a manifest in the prep job's format."""
    from PIL import Image

    from prep.audio import melspectrogram, mfcc
    from prep.media import probe, read_audio, read_frames

    rng = np.random.default_rng(0)
    clip_rows, frame_tables = [], []
    for i, name in enumerate(CLIPS):
        path = videos_dir / name
        info = probe(path)
        n = info.est_num_frames
        wav = read_audio(path if info.has_audio else path.with_suffix(".wav"), num_frames=n)
        mel, mf = melspectrogram(wav), mfcc(wav)
        frame0 = read_frames(path, start=0, stop=1)[0]
        h, w = frame0.shape[:2]
        side = min(h, w) // 2
        crop = np.asarray(Image.fromarray(frame0[h // 2 - side // 2:h // 2 + side // 2,
                                                 w // 2 - side // 2:w // 2 + side // 2]).resize((64, 64)))
        crop_bytes = encode_crop(crop)
        clip_id = f"{name.split('_')[0]}/{Path(name).stem}"
        found = np.arange(n) % 10 != 3  # 90 % of frames with a face
        clip_rows.append({
            "clip_id": clip_id, "source_path": str(path), "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "split": "test" if i == 3 else "train", "speaker": name.split("_")[0], "fps": 25.0, "num_frames": n,
            "sample_rate": 16000, "duration_s": n / 25.0, "src_width": info.width, "src_height": info.height,
            "src_fps": info.src_fps, "src_video_codec": info.video_codec, "mel": mel, "mel_shape": mel.shape,
            "mfcc": mf, "mfcc_shape": mf.shape, "crop_size": 64, "main_track": "largest",
            "qa_face_fraction": float(found.mean()), "qa_face_size": float(side * 0.8), "qa_num_faces": 1,
            "qa_jitter": float(rng.uniform(0.2, 1.5)), "qa_blur": float(rng.uniform(50, 400)),
            "qa_loudness_db": float(20 * np.log10(np.sqrt(np.mean(wav ** 2)) + 1e-9)),
            "qa_fit_residual": float(rng.uniform(1, 4)), "qa_flags": ["small_face"] if side < 300 else [],
            "qa_pass": side >= 300})
        rows = []
        for f in range(n):
            lm = rng.uniform(0, 64, 136)
            rows.append({"clip_id": clip_id, "frame_index": f, "face_found": bool(found[f]),
                         "num_faces": int(found[f]),
                         **({"crop": crop_bytes, "box": [0, 0, side, side], "landmarks": lm, "landmarks_src": lm * 2,
                             "affine": [1, 0, 0, 0, 1, 0], "mm_pose": rng.normal(size=6), "mm_id": np.zeros(40),
                             "mm_exp": rng.normal(size=10), "mm_residual": 2.0} if found[f] else {})})
        frame_tables.append(rows_to_table(rows, "frames"))
    n_frames = sum(t.num_rows for t in frame_tables)
    shards = {"clips": write_shard_set([rows_to_table(clip_rows, "clips")], out / "clips", "clips", len(clip_rows), 64),
              "frames": write_shard_set(frame_tables, out / "frames", "frames", n_frames, FRAMES_PER_SHARD)}
    fail = rows_to_table([{"source_path": str(videos_dir / "README.md"), "clip_id": "README", "stage": "open",
                           "error_type": "UndecodableMedia", "message": "no video stream"}], "failures")
    data = table_to_parquet_bytes(fail, "failures")
    (out / "failures.parquet").write_bytes(data)
    shards["failures"] = [{"path": "failures.parquet", "rows": 1, "sha256": hashlib.sha256(data).hexdigest()}]
    config_hash = hashlib.sha256(json.dumps(CONFIG, sort_keys=True).encode()).hexdigest()
    atomic_write_json(out / "manifest.json", {
        "schema_version": SCHEMA_VERSION, "talkbench_version": "0.1.0", "config": CONFIG, "config_hash": config_hash,
        "versions": {"pyarrow": pyarrow.__version__, "numpy": np.__version__},
        "counts": {"inputs": len(CLIPS) + 1, "clips": len(clip_rows), "failed": 1, "frames": n_frames},
        "shards": shards, "crop_codec": "jpeg", "created_by": "talkbench prep (test fixture)"})
    return out


@pytest.fixture(scope="session")
def card_clips() -> list[str]:
    """The real clips the prep output is built from."""
    return list(CLIPS)


@pytest.fixture(scope="session")
def prep_out(videos_dir, tmp_path_factory):
    """A prep output with its card written (built once: read-only for the tests; copy it to change it)."""
    from data_cards import write_card

    out = make_prep_out(videos_dir, tmp_path_factory.mktemp("prep") / "lipsync-mini")
    write_card(out)
    return out
