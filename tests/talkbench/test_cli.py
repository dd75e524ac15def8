"""The console script: every subcommand registers, --list-metrics matches what --metrics accepts, bad names
are refused with the list, and -v / -q work after the subcommand."""
from __future__ import annotations

import pytest

from talkbench.cli import build_parser, main


def test_every_subcommand_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"prep", "eval", "train", "sample", "leaderboard", "card", "demo", "models"} <= set(sub.choices)


def test_list_metrics_lists_every_metric_with_version_direction_modes_and_weights(capsys, tmp_path, monkeypatch):
    from evalkit.metrics import all_specs

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path))
    assert main(["eval", "--list-metrics"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[1:]}
    for spec in all_specs():
        row = rows[spec.name]
        assert spec.version in row and ("↑" if spec.higher_is_better else "↓") in row and spec.modes[0] in row
    assert "syncnet: absent" in rows["lse_c"] and "inception: absent (random, uncalibrated)" in rows["fid"]
    assert "dlib: present" in rows["csim"] and "sync_expert: absent" in rows["sync_inhouse"]


def test_metrics_are_case_insensitive_and_unknown_names_are_refused(capsys, tmp_path):
    from evalkit.metrics import select

    assert select(["PSNR", "LSE-C", "lmd_mouth"], "reconstruction") == ("psnr", "lmd_mouth", "lse_c")
    with pytest.raises(ValueError, match="cross mode"):
        select(["psnr"], "cross")
    rc = main(["eval", "--reference", str(tmp_path), "--submission", str(tmp_path), "--out", str(tmp_path / "o"),
               "--metrics", "psnr,sharpness9000"])
    err = capsys.readouterr().err
    assert rc == 2 and "sharpness9000" in err and "lse_c" in err and "--list-metrics" in err


def test_verbosity_flags_after_the_subcommand():
    args = build_parser().parse_args(["eval", "--list-metrics", "-vv"])
    assert args.verbose == 2
    assert build_parser().parse_args(["-q", "models", "list"]).quiet is True
