"""Leaderboard figures as deterministic PNG bytes (matplotlib Agg, fixed rc, no metadata, no mathtext).

Per benchmark: metric distributions per submission (per-video values from ``per_video.parquet`` when it
was verified, else mean ± stderr from the summary) and a sync-vs-FID scatter.
"""
from __future__ import annotations

import io
import logging
import math

import numpy as np

from talkbase.escape import clean_text

from .registry import Submission
from .tables import Benchmark, Column, Table, arrow

log = logging.getLogger(__name__)

KIND_COLORS = {"ground-truth": "#2b8a3e", "baseline": "#868e96", "model": "#1c7ed6"}
MAX_VALUES_PER_METRIC = 200_000
_RC = {
    "svg.hashsalt": "talkbench-leaderboard",
    "text.parse_math": False,  # submitter names may contain '$'
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": True,
}


def _label(sub: Submission, limit: int = 26) -> str:
    return clean_text(sub.name, limit)


def per_video_values(path, keys: list[str]) -> dict[str, np.ndarray]:
    """Finite per-video values for each metric key from a per-video parquet.

    Accepts a wide table (one numeric column per metric key) or a long one (``metric`` + ``value``).
    Unreadable files give {} (plots fall back to the summary values).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:  # only the columns a plot reads (the registry already bounded rows and size)
        names = pq.ParquetFile(path).schema_arrow.names
        t = pq.read_table(path, columns=[c for c in dict.fromkeys([*keys, "metric", "value"]) if c in names])
    except Exception as e:  # untrusted file: any parser error means "no per-video data"
        log.warning("%s: unreadable per-video parquet (%s)", path, e)
        return {}
    out = {}
    try:
        if {"metric", "value"} <= set(t.column_names):
            for key in keys:
                sel = t.filter(pc.equal(t.column("metric"), key)).column("value")
                out[key] = sel.to_numpy(zero_copy_only=False)
        else:
            for key in keys:
                if key in t.column_names:
                    out[key] = t.column(key).to_numpy(zero_copy_only=False)
    except Exception as e:
        log.warning("%s: per-video columns not numeric (%s)", path, e)
        return {}
    clean = {}
    for key, v in out.items():
        try:
            v = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        v = v[np.isfinite(v)][:MAX_VALUES_PER_METRIC]
        if v.size:
            clean[key] = v
    return clean


def _hbox(ax, vals, y):
    kw = dict(positions=[y], widths=0.55, patch_artist=True, showfliers=True, flierprops={"markersize": 2})
    try:
        return ax.boxplot([vals], orientation="horizontal", **kw)
    except TypeError:  # matplotlib < 3.10
        return ax.boxplot([vals], vert=False, **kw)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _metric_title(col: Column, table: Table) -> str:
    t = f"{clean_text(col.label, 40)} {arrow(col)}"
    return t + " (uncalibrated)" if col.key in table.uncalibrated else t


def distributions_png(table: Table, title: str) -> bytes | None:
    """One panel per metric, one line per submission: box plot of per-video values or mean ± stderr."""
    from matplotlib.figure import Figure

    subs = [r.sub for r in table.rows]
    cols = [c for c in table.headline if any(c.key in s.metrics and s.metrics[c.key].computed
                                      and math.isfinite(s.metrics[c.key].value) for s in subs)]
    if not subs or not cols:
        return None
    per_video = {s.path: per_video_values(s.per_video, [c.key for c in cols]) if s.per_video else {}
                 for s in subs}
    ncols = min(4, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    panel_w, panel_h = 2.7, max(1.3, 0.3 * len(subs) + 0.3)
    left, right, top, bottom, wspace, hspace = 2.4, 0.25, 0.75, 0.45, 0.35, 0.75  # inches
    width = left + right + ncols * panel_w + (ncols - 1) * wspace
    height = top + bottom + nrows * panel_h + (nrows - 1) * hspace
    fig = Figure(figsize=(width, height))
    # fixed margins instead of tight_layout: cheaper, and the layout cannot depend on the text measured
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace / panel_w, hspace=hspace / panel_h)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    ys = np.arange(len(subs))[::-1]
    for i, col in enumerate(cols):
        ax = axes[i // ncols][i % ncols]
        for y, s in zip(ys, subs):
            color = KIND_COLORS.get(s.kind, "#495057")
            vals = per_video[s.path].get(col.key)
            m = s.metrics.get(col.key)
            if vals is not None and vals.size >= 2:
                bp = _hbox(ax, vals, y)
                for patch in bp["boxes"]:
                    patch.set_facecolor(color)
                    patch.set_alpha(0.35)
            if m is not None and m.computed and math.isfinite(m.value):
                err = m.stderr if m.stderr is not None and math.isfinite(m.stderr) else None
                ax.errorbar([m.value], [y], xerr=None if err is None else [[err], [err]], fmt="D",
                            color=color, markersize=4, capsize=3)
        ax.set_title(_metric_title(col, table))
        ax.set_yticks(ys)
        ax.set_yticklabels([_label(s) for s in subs] if i % ncols == 0 else [""] * len(subs))
        ax.set_ylim(-0.7, len(subs) - 0.3)
        ax.grid(axis="x", alpha=0.3)
    for j in range(len(cols), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.suptitle(clean_text(title, 80) + " — per-video distributions (boxes) and mean ± stderr (◆)",
                 y=1 - 0.2 / height)
    return _png(fig)


SYNC_KEYS = ("lse_c", "lse_d", "sync_inhouse")  # y axis of the sync-vs-FID plot: the first one reported


def sync_vs_fid_png(table: Table, title: str) -> bytes | None:
    """FID (x) against the sync confidence LSE-C (y; LSE-D or in-house sync when LSE-C is absent); axis
    labels and directions are the results files' own (the table's columns)."""
    from matplotlib.figure import Figure

    subs = [r.sub for r in table.rows]

    def has(s, k):
        return k in s.metrics and s.metrics[k].computed and math.isfinite(s.metrics[k].value)

    cols = {c.key: c for c in table.columns}
    ykey = next((k for k in SYNC_KEYS
                 if k in cols and "fid" in cols and any(has(s, k) and has(s, "fid") for s in subs)), None)
    if ykey is None:
        return None
    pts = [s for s in subs if has(s, ykey) and has(s, "fid")]
    fig = Figure(figsize=(7.0, 4.8))
    fig.subplots_adjust(left=0.1, right=0.96, top=0.92, bottom=0.11)
    ax = fig.subplots()
    xs = np.array([s.metrics["fid"].value for s in pts])
    yv = np.array([s.metrics[ykey].value for s in pts])
    span = np.array([np.ptp(xs) or 1.0, np.ptp(yv) or 1.0])
    placed: list[np.ndarray] = []
    for s in pts:
        fx, sy = s.metrics["fid"], s.metrics[ykey]
        ax.errorbar([fx.value], [sy.value],
                    xerr=[[fx.stderr], [fx.stderr]] if fx.stderr is not None and math.isfinite(fx.stderr) else None,
                    yerr=[[sy.stderr], [sy.stderr]] if sy.stderr is not None and math.isfinite(sy.stderr) else None,
                    fmt="o", color=KIND_COLORS.get(s.kind, "#495057"), capsize=3, markersize=6)
        here = np.array([fx.value, sy.value]) / span
        crowd = sum(1 for q in placed if np.abs(q - here).max() < 0.04)  # stack labels of near-identical points
        placed.append(here)
        ax.annotate(_label(s, 22), (fx.value, sy.value), textcoords="offset points", xytext=(6, 4 - 11 * crowd),
                    fontsize=8)
    ax.set_ylabel(f"{clean_text(cols[ykey].label, 40)} {arrow(cols[ykey])}"
                  + (" (uncalibrated)" if ykey in table.uncalibrated else ""))
    uncal = " (UNCALIBRATED: not comparable to published FID)" if "fid" in table.uncalibrated else ""
    ax.set_xlabel(f"{clean_text(cols['fid'].label, 40)} {arrow(cols['fid'])}" + uncal)
    ax.margins(x=0.2, y=0.12)
    ax.grid(alpha=0.3)
    handles = [ax.scatter([], [], color=c, label=k) for k, c in KIND_COLORS.items()
               if any(s.kind == k for s in pts)]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title(clean_text(title, 70) + " — sync vs FID")
    return _png(fig)


def benchmark_plots(bench: Benchmark) -> dict[str, bytes]:
    """{file name: PNG bytes} for a benchmark's ranked table (unranked rows are never plotted with it)."""
    import matplotlib as mpl

    out = {}
    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(_RC)
        png = distributions_png(bench.ranked, bench.title)
        if png:
            out[f"lb-{bench.slug}-distributions.png"] = png
        png = sync_vs_fid_png(bench.ranked, bench.title)
        if png:
            out[f"lb-{bench.slug}-sync-vs-fid.png"] = png
    return out
