"""Statistics of a prep output computed from its shards (never from the manifest's claims)."""
from __future__ import annotations

import io
import math
from collections import Counter
from pathlib import Path

import numpy as np

from prep.output import PrepOutput
from prep.schema import FAILURES_SCHEMA

QA_COLUMNS = {  # column -> (label, unit)
    "qa_face_fraction": ("frames with a face", "fraction"),
    "qa_face_size": ("face size (median box side)", "source px"),
    "qa_jitter": ("landmark jitter", "crop px / frame"),
    "qa_blur": ("mouth sharpness (var. of Laplacian)", ""),
    "qa_loudness_db": ("loudness (RMS)", "dBFS"),
    "qa_fit_residual": ("3DMM fit residual", "source px"),
}
CLIP_COLUMNS = ["clip_id", "split", "speaker", "num_frames", "duration_s", "src_width", "src_height", "src_fps",
                "src_video_codec", "crop_size", "qa_num_faces", "qa_flags", "qa_pass", *QA_COLUMNS]


def summarize(values) -> dict | None:
    """n, mean, median, p5, p95, min, max of the finite values (None if there are none)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    p5, med, p95 = np.percentile(v, [5, 50, 95])
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(med), "p5": float(p5), "p95": float(p95),
            "min": float(v.min()), "max": float(v.max())}


def _counts(values) -> dict[str, int]:
    c = Counter("(none)" if v is None or v == "" else str(v) for v in values)
    return {k: c[k] for k in sorted(c, key=lambda k: (-c[k], k))}


class ListedShards(PrepOutput):
    """A prep output read through :class:`prep.output.PrepOutput`, restricted to the given shard files of each
    kind (``clips``, ``frames``, ``failures``): the manifest's list when writing a card, the verified ones
    when checking it, so that neither reads a stray or corrupt file."""

    def __init__(self, prep: PrepOutput, files: dict[str, list[Path]]):
        super().__init__(prep.path, prep.manifest)
        self._files = {k: list(v) for k, v in files.items()}

    def shard_files(self, kind: str) -> list[Path]:
        return list(self._files.get(kind, []))

    def failures(self):
        return super().failures() if self._files.get("failures") else FAILURES_SCHEMA.empty_table()


def open_prep(prep) -> PrepOutput:
    """``prep`` itself when it is a :class:`PrepOutput`, else the prep output at that path."""
    return prep if isinstance(prep, PrepOutput) else PrepOutput.open(prep)


def compute_stats(prep, files: dict[str, list[Path]] | None = None) -> dict:
    """Clips, frames, hours, identities, face size, QA distributions, sources and failures of a prep output.

    ``prep``: a :class:`PrepOutput` or its path. ``files``: the shard files of each kind (``clips``,
    ``frames``, ``failures``) to read, e.g. those listed in the manifest; default: every shard the prep
    output has. Frames are streamed (only ``face_found`` / ``num_faces`` / ``mm_residual``), so memory stays
    bounded on large outputs.
    """
    po = open_prep(prep)
    if files is not None:
        po = ListedShards(po, files)
    clips = po.clips_table(CLIP_COLUMNS).to_pydict()
    n = len(clips.get("clip_id", []))
    col = lambda name: clips.get(name, [None] * n)  # noqa: E731
    frames = with_face = with_3dmm = 0
    faces_per_frame: Counter = Counter()
    for b in po.frame_batches(["face_found", "num_faces", "mm_residual"]):
        frames += b.num_rows
        with_3dmm += b.num_rows - b.column("mm_residual").null_count
        ff = b.column("face_found").to_numpy(zero_copy_only=False)
        with_face += int(np.count_nonzero(ff))
        faces_per_frame.update(int(x) if x is not None else -1 for x in b.column("num_faces").to_pylist())
    durations = [d for d in col("duration_s") if d is not None]
    speakers = [s for s in col("speaker") if s]
    failures = po.failures().select(["source_path", "stage"]).to_pydict()
    flags = Counter(f for fl in col("qa_flags") if fl for f in fl)
    qa_pass = Counter("unknown" if p is None else ("pass" if p else "fail") for p in col("qa_pass"))
    res = [f"{w}x{h}" if w and h else None for w, h in zip(col("src_width"), col("src_height"))]
    return {
        "clips": n,
        "frames": frames,
        "frames_with_face": with_face,
        "frames_with_3dmm": with_3dmm,
        "frames_declared": int(sum(x for x in col("num_frames") if x is not None)),
        "hours": float(sum(durations) / 3600.0),
        "duration_s": summarize(durations),
        "identities": len(set(speakers)),
        "clips_with_speaker": len(speakers),
        "splits": _counts(col("split")),
        "face_size_px": summarize(col("qa_face_size")),
        "faces_per_frame": {("no detection" if k < 0 else str(k)): faces_per_frame[k] for k in sorted(faces_per_frame)},
        "max_faces_per_clip": _counts(col("qa_num_faces")),
        "qa": {c: summarize(col(c)) for c in QA_COLUMNS},
        "qa_pass": {k: qa_pass[k] for k in ("pass", "fail", "unknown") if qa_pass[k]},
        "qa_flags": {k: flags[k] for k in sorted(flags, key=lambda k: (-flags[k], k))},
        "source_resolutions": _counts(res),
        "source_fps": _counts(None if f is None else f"{f:g}" for f in col("src_fps")),
        "source_codecs": _counts(col("src_video_codec")),
        "crop_sizes": _counts(col("crop_size")),
        "failures": len(failures.get("source_path", [])),
        "failures_by_stage": _counts(failures.get("stage", [])),
        "_qa_values": {c: [float(x) for x in col(c) if x is not None and math.isfinite(x)] for c in QA_COLUMNS}
                      | {"duration_s": [float(d) for d in durations]},
    }


def qa_plot_png(stats: dict) -> bytes:
    """Histograms of clip duration and every QA column (deterministic PNG: Agg, fixed rc, no metadata)."""
    import matplotlib as mpl

    with mpl.rc_context():
        fig = qa_figure(stats)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def qa_figure(stats: dict):
    """The QA plot's figure (call inside ``matplotlib.rc_context()``: it resets the rc parameters)."""
    import matplotlib as mpl
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [("duration_s", "clip duration", "s")] + [(c, *QA_COLUMNS[c]) for c in QA_COLUMNS]
    mpl.rcdefaults()
    mpl.rcParams.update({"font.family": "DejaVu Sans", "font.size": 8, "text.parse_math": False,
                         "figure.dpi": 100, "savefig.dpi": 100, "svg.hashsalt": "talkbench-card"})
    fig = Figure(figsize=(12.0, 5.6))
    fig.subplots_adjust(left=0.05, right=0.985, top=0.88, bottom=0.09, wspace=0.28, hspace=0.55)
    axes = fig.subplots(2, 4).ravel()
    for ax, (key, label, unit) in zip(axes, panels):
        vals = np.asarray(stats["_qa_values"].get(key, []), dtype=np.float64)
        if vals.size:
            fraction = unit == "fraction"  # a fraction's axis is [0, 1], also when every clip has 1.0
            ax.hist(vals, bins=min(30, max(5, int(np.sqrt(vals.size)) + 1)), color="#1c7ed6", alpha=0.8,
                    range=(0.0, 1.0) if fraction else None)
            if fraction:
                ax.set_xlim(0.0, 1.0)
            ax.axvline(float(np.median(vals)), color="#e8590c", lw=1.2)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="#868e96")
        ax.set_title(f"{label}\n(n={vals.size}, median in orange)")
        ax.set_xlabel(unit or key)
        ax.set_ylabel("clips")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"Per-clip QA distributions ({stats['clips']} clips, {stats['hours']:.3f} h)")
    return fig


def parquet_rows_and_bytes(path: Path) -> tuple[int, int]:
    """(rows, uncompressed bytes) from the Parquet footer, without reading the data."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    return md.num_rows, sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
