"""``talkbench eval --list-metrics``: every metric, its modes and the status of each weight file it needs."""
from __future__ import annotations


def _rows(text: str) -> dict[str, str]:
    return {line.split()[0]: line for line in text.splitlines()[1:]}


def test_new_metrics_are_listed_with_their_weights_status(arcface_onnx, i3d_standin, tmp_path, monkeypatch, capsys):
    from evalkit import metrics
    from talkbench.cli import main

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))  # nothing official anywhere
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert main(["eval", "--list-metrics"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == {s.name for s in metrics.all_specs()}
    assert "alexnet-owt-7be5be79.pth) absent" in rows["lpips"] and "lpips: present" in rows["lpips"]
    assert "w600k_r50.onnx) absent" in rows["csim_arcface"] and "ArcFace-CSIM" in rows["csim_arcface"]
    assert "i3d_torchscript.pt) absent" in rows["fvd"] and "dlib-CSIM" in rows["csim"]
    assert "weights-free" in rows["cpbd"] and "reference-free" in rows["cpbd"] and "reference-free" in rows["lse_c"]
    assert main(["eval", "--list-metrics", "--arcface", str(arcface_onnx["path"]), "--i3d", str(i3d_standin),
                 "--lpips-net", "vgg"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert "arcface: present, unverified" in rows["csim_arcface"] and "i3d: present, unverified" in rows["fvd"]
    assert "vgg16-397923af.pth) absent" in rows["lpips"]
