"""The codec-sensitivity report on a real clip: ground-truth rows per codec and the spread of each metric."""
from __future__ import annotations

import json


def test_codec_report_scores_each_codec_as_ground_truth(tmp_path, videos_dir, capsys):
    from prep.config import PrepConfig
    from prep.job import run_prep
    from prep.media import decode_clip, write_video

    from talkbench.cli import main
    from talkbase.results import load_results

    clip = decode_clip(videos_dir / "w2l_input3.mp4")
    write_video(tmp_path / "src" / "a.mp4", clip.frames[:30], clip.audio[:30 * 640])
    run_prep(str(tmp_path / "src"), tmp_path / "ref", PrepConfig(faces={"fit_3dmm": False}), scheduler="inline",
             progress=False)
    rc = main(["codec-report", str(tmp_path / "ref"), "--out", str(tmp_path / "rep"), "--metrics", "psnr,ssim",
               "--scheduler", "inline", "--variants", "h264-crf18-aac,h264-crf28-aac,h264-crf18-alac,hevc-crf28-aac"])
    printed = capsys.readouterr().out
    assert rc == 0 and "spread" in printed and "HEVC CRF 28" in printed
    report = json.loads((tmp_path / "rep" / "codec_report.json").read_text())
    psnr = report["metrics"]["psnr"]["values"]
    assert psnr["h264-crf18-aac"] > psnr["h264-crf28-aac"] + 2  # the codec alone moves PSNR by dBs
    assert psnr["h264-crf18-aac"] == psnr["h264-crf18-alac"]  # same video stream: only the audio differs
    assert report["metrics"]["psnr"]["spread"] == max(psnr.values()) - min(psnr.values()) > 2
    r = load_results(tmp_path / "rep" / "h264-crf28-aac" / "results.json")
    assert r.meta["kind"] == "ground-truth" and "CRF 28" in r.meta["name"]
