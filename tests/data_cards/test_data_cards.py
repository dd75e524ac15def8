"""Dataset cards: written from real shards (built here from the real clips' media and audio), parsed back,
checked against the shards, and failing the check after a shard is deleted or changed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_cards import check_card, write_card
from data_cards.card import COLUMN_DOCS, hf_features, size_category
from data_cards.check import read_front_matter
from prep.output import PrepOutput
from prep.schema import CLIPS_SCHEMA, FRAMES_SCHEMA, SCHEMAS
from prep.shards import table_to_parquet_bytes

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
    assert feats["crop"] == {"name": "crop", "dtype": "image"}  # pictures in the viewer, not bytes
    assert feats["frame_index"] == {"name": "frame_index", "dtype": "int32"}
    clip_feats = {f["name"]: f for f in info["clips"]["features"]}
    assert clip_feats["mel"] == {"name": "mel", "sequence": "float32"}
    assert clip_feats["qa_flags"] == {"name": "qa_flags", "sequence": "string"}
    assert [f["name"] for f in info["clips"]["features"]] == CLIPS_SCHEMA.names
    tb = meta["talkbench"]
    assert tb["config_hash"] == manifest["config_hash"]
    assert tb["shards"] == manifest["shards"]
    assert tb["counts"]["clips"] == 4 and tb["counts"]["failed"] == 1


def test_body_statistics_match_the_real_clips(prep_out, videos_dir, card_clips):
    from prep.media import probe

    text = (prep_out / "README.md").read_text()
    frames = sum(probe(videos_dir / c).est_num_frames for c in card_clips)
    assert 1000 < frames < 1300  # 185 + 175 + 250 + 502 at 25 fps, give or take the container estimates
    hours = frames / 25 / 3600
    assert f"**4 clips**, **{frames:,} frames** at 25 fps (**{hours:.3f} hours**)" in text
    assert "| identities | 2 (from the `speaker` column; 4 of 4 clips labelled) |" in text
    with_face = sum(int(np.sum(np.arange(probe(videos_dir / c).est_num_frames) % 10 != 3)) for c in card_clips)
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


def _hub_features(datasets, schema):
    """What the Hub should see: the Arrow schema, with the encoded crop as an image."""
    f = datasets.Features.from_arrow_schema(schema)
    if "crop" in f:
        f["crop"] = datasets.Image()
    return f


def test_features_round_trip_through_datasets_if_installed():
    datasets = pytest.importorskip("datasets")
    for schema in (CLIPS_SCHEMA, FRAMES_SCHEMA):
        ours = datasets.Features._from_yaml_list(hf_features(schema))
        assert ours == _hub_features(datasets, schema)
    assert datasets.Features._from_yaml_list(hf_features(FRAMES_SCHEMA))["crop"] == datasets.Image()


def test_hub_loader_reads_the_card_configs_if_installed(prep_out, tmp_path, card_clips):
    """The `datasets` library resolves the card's configs / dataset_info on the folder itself."""
    datasets = pytest.importorskip("datasets")
    frames = datasets.load_dataset(str(prep_out), "frames", split="train", cache_dir=str(tmp_path / "cache"))
    manifest = json.loads((prep_out / "manifest.json").read_text())
    assert frames.num_rows == manifest["counts"]["frames"]
    assert frames.features == _hub_features(datasets, FRAMES_SCHEMA)
    first = frames[0]["crop"]  # decoded as a picture, not bytes
    assert hasattr(first, "size") and first.size[0] > 0
    clips = datasets.load_dataset(str(prep_out), split="train", cache_dir=str(tmp_path / "cache"))  # default config
    assert sorted(clips["clip_id"]) == sorted(f"{c.split('_')[0]}/{Path(c).stem}" for c in card_clips)


def test_cli_module_is_cheap_to_import():
    import subprocess
    import sys

    code = ("import sys, data_cards, talkbench.commands.card; "
            "heavy = [m for m in ('numpy', 'pyarrow', 'matplotlib', 'torch', 'pandas') if m in sys.modules]; "
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert r.returncode == 0, r.stderr


def test_card_without_3dmm(prep_copy):
    """The 3DMM-ness of an output is its manifest's (config faces.fit_3dmm), read through PrepOutput."""
    manifest = json.loads((prep_copy / "manifest.json").read_text())
    manifest["config"]["faces"]["fit_3dmm"] = False
    (prep_copy / "manifest.json").write_text(json.dumps(manifest))
    po = PrepOutput.open(prep_copy)
    assert po.has_3dmm is False
    write_card(po)  # a PrepOutput is accepted where a path is
    text = (prep_copy / "README.md").read_text()
    assert "no 3DMM coefficients (the fit was not run" in text and "and 3DMM coefficients (BFM" not in text
    assert "3dmm" not in _meta(prep_copy)["tags"] and "lip-sync" in _meta(prep_copy)["tags"]
    assert check_card(po) == [] and check_card(prep_copy) == []


def test_stray_shard_is_not_counted(prep_copy):
    """Statistics come from the shards the manifest lists: an unlisted file beside them is reported by the
    check, never counted."""
    before = _meta(prep_copy)["talkbench"]["counts"]
    shutil.copy(prep_copy / "clips/clips-00000-of-00001.parquet", prep_copy / "clips/clips-00009-of-00009.parquet")
    write_card(prep_copy)
    assert _meta(prep_copy)["talkbench"]["counts"] == before
    problems = check_card(prep_copy)
    assert "clips/clips-00009-of-00009.parquet: shard on disk is not listed in manifest.json" in problems
    assert not any("says" in p for p in problems)  # the card's counts still match the listed shards

