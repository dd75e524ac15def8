"""Cards of outputs without failures, image features, honest wording and plots."""
from __future__ import annotations

import json
import shutil

import pytest

from data_cards import check_card, write_card
from prep.shards import rows_to_table, table_to_parquet_bytes
from talkbase.fileio import atomic_write_json, sha256_bytes


def _without_failures(prep_out, tmp_path):
    out = tmp_path / prep_out.name
    shutil.copytree(prep_out, out)
    data = table_to_parquet_bytes(rows_to_table([], "failures"), "failures")
    (out / "failures.parquet").write_bytes(data)
    m = json.loads((out / "manifest.json").read_text())
    m["shards"]["failures"] = [{"path": "failures.parquet", "rows": 0, "sha256": sha256_bytes(data)}]
    m["counts"]["failed"], m["counts"]["inputs"] = 0, m["counts"]["clips"]
    atomic_write_json(out / "manifest.json", m)
    write_card(out)
    return out


def test_an_output_without_failures_has_a_card_that_loads_and_checks(prep_out, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = _without_failures(prep_out, tmp_path)
    assert check_card(out) == []
    text = (out / "README.md").read_text()
    assert "none failed (so there is no `failures` config)" in text
    assert "config_name: failures" not in text
    clips = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))  # default config
    assert clips.num_rows == json.loads((out / "manifest.json").read_text())["counts"]["clips"]
    # an empty split cannot exist in `datasets`: a clear "no such config" instead of ArrowInvalid
    with pytest.raises(ValueError, match="failures"):
        datasets.load_dataset(str(out), "failures", cache_dir=str(tmp_path / "cache"))


def test_card_check_says_problem_in_the_singular(prep_out, tmp_path):
    import subprocess
    import sys

    out = tmp_path / prep_out.name
    shutil.copytree(prep_out, out)
    (out / "README.md").write_text((out / "README.md").read_text().replace("card_format", "card_formt", 1))
    r = subprocess.run([sys.executable, "-m", "talkbench.cli", "card", str(out), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "(1 problem)" in r.stdout, r.stdout + r.stderr


def test_fraction_panels_of_the_qa_plot_span_zero_to_one():
    import matplotlib as mpl
    import numpy as np

    from data_cards.stats import qa_figure, qa_plot_png

    stats = {"clips": 3, "hours": 0.001, "_qa_values": {"qa_face_fraction": np.ones(3), "duration_s": [2.0, 3.0, 4.0]}}
    with mpl.rc_context():
        fig = qa_figure(stats)
    ax = next(a for a in fig.axes if a.get_title().startswith("frames with a face"))
    assert ax.get_xlim() == (0.0, 1.0)  # every clip at 1.0 used to give an axis of 0.6-1.4
    assert qa_plot_png(stats)[:4] == b"\x89PNG"
