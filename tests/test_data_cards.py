"""Dataset cards: written from real shards (built here from the real clips' media and audio), parsed back,
checked against the shards, and failing the check after a shard is deleted or changed."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_cards import check_card, write_card
from data_cards.card import COLUMN_DOCS, hf_features, size_category
from data_cards.check import read_front_matter
from prep.schema import CLIPS_SCHEMA, FRAMES_SCHEMA, SCHEMA_VERSION, SCHEMAS
from prep.shards import atomic_write_json, encode_crop, rows_to_table, table_to_parquet_bytes, write_shard_set

CLIPS = ["w2l_input3.mp4", "w2l_input4.mp4", "latentsync_demo1.mp4", "latentsync_demo2.mp4"]
FRAMES_PER_SHARD = 400
CONFIG = {"fps": 25, "crop_size": 64, "crop_codec": "jpeg", "face_backend": "dlib", "detect_every": 5,
          "filter": {"min_face_size": 64, "min_face_fraction": 0.5}, "input": "videos", "notes": "```ticks```"}


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
    import pyarrow
    atomic_write_json(out / "manifest.json", {
        "schema_version": SCHEMA_VERSION, "talkbench_version": "0.1.0", "config": CONFIG, "config_hash": config_hash,
        "versions": {"pyarrow": pyarrow.__version__, "numpy": np.__version__},
        "counts": {"inputs": len(CLIPS) + 1, "clips": len(clip_rows), "failed": 1, "frames": n_frames},
        "shards": shards, "crop_codec": "jpeg", "created_by": "talkbench prep (test fixture)"})
    return out


@pytest.fixture(scope="module")
def prep_out(videos_dir, tmp_path_factory):
    out = make_prep_out(videos_dir, tmp_path_factory.mktemp("prep") / "lipsync-mini")
    write_card(out)
    return out


@pytest.fixture
def prep_copy(prep_out, tmp_path):
    dst = tmp_path / prep_out.name
    shutil.copytree(prep_out, dst)
    return dst


def _meta(out: Path) -> dict:
    return read_front_matter((out / "README.md").read_text())


def test_fresh_card_checks_clean(prep_out):
    assert check_card(prep_out) == []


def test_front_matter(prep_out):
    meta = _meta(prep_out)
    manifest = json.loads((prep_out / "manifest.json").read_text())
    assert meta["license"] == "other" and meta["license_name"] == "source-video-terms"
    assert meta["annotations_creators"] == ["machine-generated"]
    assert meta["size_categories"] == ["n<1K"] and meta["source_datasets"] == ["original"]
    assert "lip-sync" in meta["tags"] and meta["task_categories"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["clips"]["default"] is True
    assert configs["clips"]["data_files"] == [{"split": "train", "path": "clips/*.parquet"}]
    assert configs["frames"]["data_files"] == [{"split": "train", "path": "frames/*.parquet"}]
    assert configs["failures"]["data_files"] == [{"split": "train", "path": "failures.parquet"}]
    info = {c["config_name"]: c for c in meta["dataset_info"]}
    n_frames = manifest["counts"]["frames"]
    assert info["frames"]["splits"][0]["num_examples"] == n_frames
    assert n_frames == sum(e["rows"] for e in manifest["shards"]["frames"]) and len(manifest["shards"]["frames"]) == 3
    feats = {f["name"]: f for f in info["frames"]["features"]}
    assert feats["landmarks"] == {"name": "landmarks", "sequence": "float32", "length": 136}
    assert feats["crop"] == {"name": "crop", "dtype": "binary"}
    assert feats["frame_index"] == {"name": "frame_index", "dtype": "int32"}
    clip_feats = {f["name"]: f for f in info["clips"]["features"]}
    assert clip_feats["mel"] == {"name": "mel", "sequence": "float32"}
    assert clip_feats["qa_flags"] == {"name": "qa_flags", "sequence": "string"}
    assert [f["name"] for f in info["clips"]["features"]] == CLIPS_SCHEMA.names
    tb = meta["talkbench"]
    assert tb["config_hash"] == manifest["config_hash"]
    assert tb["shards"] == manifest["shards"]
    assert tb["counts"]["clips"] == 4 and tb["counts"]["failed"] == 1


def test_body_statistics_match_the_real_clips(prep_out, videos_dir):
    from prep.media import probe

    text = (prep_out / "README.md").read_text()
    frames = sum(probe(videos_dir / c).est_num_frames for c in CLIPS)
    assert 1000 < frames < 1300  # 185 + 175 + 250 + 502 at 25 fps, give or take the container estimates
    hours = frames / 25 / 3600
    assert f"**4 clips**, **{frames:,} frames** at 25 fps (**{hours:.3f} hours**)" in text
    assert "| identities | 2 (from the `speaker` column; 4 of 4 clips labelled) |" in text
    with_face = sum(int(np.sum(np.arange(probe(videos_dir / c).est_num_frames) % 10 != 3)) for c in CLIPS)
    assert f"| frames with a face | {with_face:,} ({100 * with_face / frames:.1f} %) |" in text
    assert f"| frames with 3DMM coefficients | {with_face:,} |" in text and "and 3DMM coefficients (BFM" in text
    assert "Source resolutions: 1080x1920: 2, 600x480: 1, 850x480: 1" in text
    assert "Splits: train: 3, test: 1" in text
    for section in ("## Dataset summary", "## Dataset structure", "## Dataset creation", "## Statistics",
                    "## Known limitations", "## Personal and sensitive information", "## Licensing information",
                    "biometric"):
        assert section in text
    assert '"detect_every": 5' in text and "````json" in text  # exact config, fence longer than its ``` content
    assert "| pyarrow |" in text
    assert "![QA distributions per clip](dataset_card_qa.png)" in text
    for kind in ("clips", "frames"):
        real = pq.read_schema(next((prep_out / kind).glob("*.parquet")))  # the schema as stored, not as declared
        assert real.names == SCHEMAS[kind].names
        for f in real:
            assert f"| `{f.name}` | `{f.type}` |" in text


def test_every_schema_column_is_documented():
    for kind, schema in SCHEMAS.items():
        assert set(schema.names) == set(COLUMN_DOCS[kind]), kind


def test_qa_plot(prep_out, artifact_dir):
    from PIL import Image

    png = prep_out / "dataset_card_qa.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (1200, 560)
        assert np.asarray(im.convert("L")).std() > 10
    shutil.copy(png, artifact_dir / "data_card_qa.png")


def test_rewrite_is_byte_identical(prep_copy):
    first = (prep_copy / "README.md").read_bytes(), (prep_copy / "dataset_card_qa.png").read_bytes()
    write_card(prep_copy)
    assert ((prep_copy / "README.md").read_bytes(), (prep_copy / "dataset_card_qa.png").read_bytes()) == first


def test_deleted_shard_fails_the_check(prep_copy):
    (prep_copy / "frames" / "frames-00001-of-00003.parquet").unlink()
    problems = check_card(prep_copy)
    assert "frames/frames-00001-of-00003.parquet: shard listed in manifest.json is missing" in problems
    assert any("says" in p and "frames" in p and "the shards hold" in p for p in problems)
    assert any("config 'frames' data files" in p for p in problems)


def test_changed_or_extra_shards_fail_the_check(prep_copy):
    clips = prep_copy / "clips" / "clips-00000-of-00001.parquet"
    t = pq.read_table(clips).slice(0, 3)
    clips.write_bytes(table_to_parquet_bytes(t, "clips"))
    shutil.copy(prep_copy / "failures.parquet", prep_copy / "frames" / "frames-stale.parquet")
    problems = check_card(prep_copy)
    assert any(p.startswith("clips/clips-00000-of-00001.parquet: sha256") for p in problems)
    assert "clips/clips-00000-of-00001.parquet: 3 rows, manifest.json says 4" in problems
    assert "frames/frames-stale.parquet: shard on disk is not listed in manifest.json" in problems
    assert any("says 4 clips, the shards hold 3" in p for p in problems)


def test_card_edits_and_missing_files_fail_the_check(prep_copy):
    card = prep_copy / "README.md"
    text = card.read_text()
    card.write_text(text.replace("annotations_creators:\n- machine-generated", "annotations_creators:\n- expert-generated")
                    .replace("  - name: mm_residual\n    dtype: float32\n", ""))
    (prep_copy / "dataset_card_qa.png").unlink()
    problems = check_card(prep_copy)
    assert "README.md: annotations_creators should be [machine-generated]" in problems
    assert "README.md: dataset_info features of 'frames' differ from the shards' schema" in problems
    assert "dataset_card_qa.png: QA plot referenced by the card is missing" in problems
    card.unlink()
    assert check_card(prep_copy) == [f"README.md: missing (run `talkbench card {prep_copy}`)"]


def test_cli_card_and_check(prep_copy, capsys):
    from talkbench.cli import main

    (prep_copy / "README.md").unlink()
    assert main(["card", str(prep_copy), "--license", "cc-by-4.0", "--source-dataset", "extended|lrs2"]) == 0
    meta = _meta(prep_copy)
    assert meta["license"] == "cc-by-4.0" and "license_name" not in meta
    assert meta["source_datasets"] == ["extended|lrs2"]
    assert main(["card", str(prep_copy), "--check"]) == 0
    assert "card OK" in capsys.readouterr().out
    (prep_copy / "frames" / "frames-00002-of-00003.parquet").unlink()
    assert main(["card", str(prep_copy), "--check"]) == 1
    err = capsys.readouterr().err
    assert "frames-00002-of-00003.parquet: shard listed in manifest.json is missing" in err
    assert main(["card", str(prep_copy.parent / "nothing")]) == 2


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 54_321, 2_000_000)] == ["n<1K", "n<1K", "1K<n<10K",
                                                                            "10K<n<100K", "1M<n<10M"]


def test_features_round_trip_through_datasets_if_installed():
    datasets = pytest.importorskip("datasets")
    for schema in (CLIPS_SCHEMA, FRAMES_SCHEMA):
        ours = datasets.Features._from_yaml_list(hf_features(schema))
        assert ours == datasets.Features.from_arrow_schema(schema)


def test_hub_loader_reads_the_card_configs_if_installed(prep_out, tmp_path):
    """The `datasets` library resolves the card's configs / dataset_info on the folder itself."""
    datasets = pytest.importorskip("datasets")
    frames = datasets.load_dataset(str(prep_out), "frames", split="train", cache_dir=str(tmp_path / "cache"))
    manifest = json.loads((prep_out / "manifest.json").read_text())
    assert frames.num_rows == manifest["counts"]["frames"]
    assert frames.features == datasets.Features.from_arrow_schema(FRAMES_SCHEMA)
    clips = datasets.load_dataset(str(prep_out), split="train", cache_dir=str(tmp_path / "cache"))  # default config
    assert sorted(clips["clip_id"]) == sorted(f"{c.split('_')[0]}/{Path(c).stem}" for c in CLIPS)


def test_cli_module_is_cheap_to_import():
    import subprocess
    import sys

    code = ("import sys, data_cards.cli; heavy = [m for m in ('numpy', 'pyarrow', 'matplotlib', 'torch', 'pandas') "
            "if m in sys.modules]; assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.returncode == 0, r.stderr
