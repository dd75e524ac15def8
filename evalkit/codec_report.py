"""Ground-truth rows and the codec-sensitivity report: how much each metric moves from the codec alone.

:func:`codec_report` re-encodes every reference clip's source video (decoded at 25 fps, audio at 16 kHz) with
each variant — H.264 at CRF 18 / 23 / 28, HEVC (libx265, when PyAV's FFmpeg has it), AAC vs lossless audio
(ALAC: MP4 cannot hold raw PCM, ALAC decodes to the same samples) — scores each as a ground-truth submission
(``kind = ground-truth``, so the leaderboard lists it as a reference row), and tabulates every metric per
variant with its spread (max − min over the variants): the noise floor below which a difference between two
models may be the codec's, not the model's.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from talkbase.escape import md
from talkbase.fileio import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodecVariant:
    name: str
    codec: str  # video encoder
    crf: int
    audio_codec: str  # "aac" | "alac"

    @property
    def label(self) -> str:
        return f"{'H.264' if self.codec == 'libx264' else 'HEVC'} CRF {self.crf}, {self.audio_codec.upper()}"


VARIANTS = (CodecVariant("h264-crf18-aac", "libx264", 18, "aac"), CodecVariant("h264-crf23-aac", "libx264", 23, "aac"),
            CodecVariant("h264-crf28-aac", "libx264", 28, "aac"), CodecVariant("h264-crf18-alac", "libx264", 18, "alac"),
            CodecVariant("hevc-crf28-aac", "libx265", 28, "aac"))


def available_variants(names=None) -> list[CodecVariant]:
    """The variants PyAV's FFmpeg can encode (``names``: a subset by name; unknown names raise ValueError)."""
    import av

    by_name = {v.name: v for v in VARIANTS}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"unknown codec variant(s) {unknown}; known: {', '.join(by_name)}")
    chosen = [by_name[n] for n in names] if names else list(VARIANTS)
    have = set(av.codecs_available)
    missing = [v.name for v in chosen if v.codec not in have or v.audio_codec not in have]
    if missing:
        log.warning("codec variants skipped (encoder not in PyAV's FFmpeg): %s", ", ".join(missing))
    return [v for v in chosen if v.codec in have and v.audio_codec in have]


def encode_ground_truth(reference, variant: CodecVariant, out_dir) -> Path:
    """``out_dir/<clip_id>.mp4`` for every reference clip whose source video is present, re-encoded with ``variant``."""
    from prep.media import decode_clip, write_video
    from prep.output import PrepOutput

    prep_out = PrepOutput.open(reference)
    out_dir = Path(out_dir)
    for c in prep_out.clips():
        src = prep_out.source(c)
        if src is None:
            log.warning("codec report: source of %s missing; skipped", c.clip_id)
            continue
        clip = decode_clip(src)
        n = min(c.num_frames, len(clip.frames))
        write_video(out_dir / f"{c.clip_id}.mp4", clip.frames[:n], clip.audio[:n * 640], codec=variant.codec,
                    crf=variant.crf, audio_codec=variant.audio_codec)
    return out_dir


def codec_report(reference, out, variants=None, metrics=None, **eval_options) -> dict:
    """Score the reference clips re-encoded with each variant as ground-truth submissions; write
    ``out/<variant>/results.json`` (+ per_video.parquet) and ``out/codec_report.json`` / ``.md``; return the report.

    ``eval_options``: passed to :func:`evalkit.runner.evaluate` (``scheduler``, ``syncnet_path``, ...).
    """
    from .runner import evaluate

    out = Path(out)
    rows, runs = {}, {}
    for v in available_variants(variants):
        sub = encode_ground_truth(reference, v, out / v.name / "videos")
        r = evaluate(reference, sub, out / v.name, metrics=metrics,
                     submission_meta={"name": f"ground truth ({v.label})", "kind": "ground-truth",
                                      "notes": f"reference clips re-encoded: {v.label}"}, **eval_options)
        runs[v.name] = r
        for name in r["metric_order"]:
            m = r["metrics"][name]
            rows.setdefault(name, {"label": m["label"], "higher_is_better": m["higher_is_better"], "values": {}})
            rows[name]["values"][v.name] = m["value"]
    for row in rows.values():
        vals = [x for x in row["values"].values() if x is not None]
        row["spread"] = (max(vals) - min(vals)) if len(vals) >= 2 else None
    report = {"reference": str(reference), "variants": [v.name for v in available_variants(variants)],
              "labels": {v.name: v.label for v in available_variants(variants)}, "metrics": rows}
    atomic_write_bytes(out / "codec_report.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(out / "codec_report.md", format_report(report).encode())
    return report


def format_report(report: dict) -> str:
    """The report as a Markdown table: one row per metric, one column per variant, then the spread."""
    names = report["variants"]
    head = "| metric | " + " | ".join(md(report["labels"][n], 40) for n in names) + " | spread (max − min) |"
    lines = ["# Codec sensitivity of the ground truth", "",
             "Each column scores the reference clips re-encoded with one codec as a submission. A difference "
             "between two models smaller than a metric's spread may come from the codec alone.", "", head,
             "|" + "---|" * (len(names) + 2)]
    for key, row in report["metrics"].items():
        cells = ["—" if row["values"].get(n) is None else f"{row['values'][n]:.4f}" for n in names]
        spread = "—" if row["spread"] is None else f"{row['spread']:.4f}"
        lines.append(f"| {md(row['label'], 40)} ({md(key, 40)}) | " + " | ".join(cells) + f" | {spread} |")
    return "\n".join(lines) + "\n"


__all__ = ["codec_report", "encode_ground_truth", "format_report", "available_variants", "VARIANTS", "CodecVariant"]
