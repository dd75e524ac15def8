"""Intervals in the tables and statistically tied ranks (leaderboard.tables.TIE_RULE)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from leaderboard.registry import Submission
from leaderboard.tables import Column, Row, fmt_metric, fmt_rank, rank_rows, tie_with
from talkbase.results import MetricResult


def _sub(tmp_path, name, values, ci=None):
    v = np.asarray(values, float)
    path = None
    if values is not None:
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"clip_id": [f"c{i}" for i in range(len(v))], "psnr": v}), path)
    m = MetricResult("psnr", float(np.mean(v)), None, ci, True, "PSNR", "dB", "psnr-1", len(v), 0, {}, None, True,
                     None)
    return Submission(path=f"{name}/results.json", name=name, kind="model", metrics={"psnr": m}, per_video=path)


def test_paired_bootstrap_ties_and_separates(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(30, 3, 40)  # videos differ a lot; the models differ little but consistently
    a = _sub(tmp_path, "a", base + 0.5)
    b = _sub(tmp_path, "b", base + 0.45 + rng.normal(0, 0.02, 40))  # consistently 0.05 dB worse: not tied
    c = _sub(tmp_path, "c", base + 0.45 + rng.normal(0, 2, 40))  # noisy per video: tied with b
    assert tie_with(a, b, "psnr") is None
    assert tie_with(b, c, "psnr") == "paired"
    col = Column("psnr", "PSNR", True, 2)
    rows = [Row(s) for s in (a, b, c)]
    rank_rows(rows, (col,))
    r = {row.sub.name: row for row in rows}
    assert r["a"].ranks["psnr"] == 1 and "psnr" not in r["a"].tied
    tied = [row for row in rows if "psnr" in row.tied]
    assert len(tied) == 1 and fmt_rank(tied[0], col).endswith("≈")


def test_without_per_video_values_overlapping_intervals_tie(tmp_path):
    a = _sub(tmp_path, "a", [30.0, 31.0], ci=(29.0, 32.0))
    b = _sub(tmp_path, "b", [28.0, 29.0], ci=(27.0, 30.0))
    c = _sub(tmp_path, "c", [20.0, 21.0], ci=(19.0, 22.0))
    a, b, c = (Submission(**{**s.__dict__, "per_video": None}) for s in (a, b, c))
    assert tie_with(a, b, "psnr") == "ci" and tie_with(b, c, "psnr") is None
    assert fmt_metric(a, Column("psnr", "PSNR", True, 2)) == "30.50 [29.00, 32.00]"
