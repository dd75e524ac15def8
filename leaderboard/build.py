"""Regenerate the leaderboard site from stored results: leaderboard.md, leaderboard.csv, index.html, plots/.

Deterministic: the output depends only on the results files' contents (never on timestamps, the order the
filesystem lists files in, or the time of the build), so rebuilding gives byte-identical files.
"""
from __future__ import annotations

import logging
from pathlib import Path

from talkbase import __version__
from talkbase.fileio import atomic_write_bytes

from .registry import collect
from .tables import build_benchmarks

log = logging.getLogger(__name__)

PLOTS_DIR = "plots"
CAPTIONS = {"distributions": "Metric distributions per submission", "sync-vs-fid": "Sync confidence vs FID"}


def _caption(bench, name: str) -> str:
    kind = next((v for k, v in CAPTIONS.items() if name.endswith(f"-{k}.png")), name)
    return f"{kind} — {bench.title} (ranked rows only)"


def _write(path: Path, data: bytes) -> None:
    """Atomic write, world-readable: a site is meant to be served."""
    atomic_write_bytes(path, data, mode=0o644)


def build_leaderboard(results_root, out_dir, registry=None, plots: bool = True) -> dict:
    """Read every results.json under ``results_root`` and write the site into ``out_dir``.

    ``registry``: a registry JSON path (default: ``RESULTS_ROOT/registry.json`` if present; see
    :mod:`leaderboard.registry` for its format). Returns the paths written and counts:
    ``{"markdown", "csv", "html", "plots": [...], "benchmarks", "accepted", "ranked", "not_ranked",
    "rejected": [{"path", "reason"}], "warnings": [...]}``.
    """
    from .render_csv import metric_keys, render_csv
    from .render_html import render_html
    from .render_md import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    collection = collect(results_root, registry)
    benchmarks = build_benchmarks(collection)
    for key in metric_keys(benchmarks)[1]:
        collection.warnings.append(f"metric {key!r}: its CSV fields clash with other fields; "
                                   "left out of leaderboard.csv")

    plot_files: dict[str, dict[str, tuple[bytes, str]]] = {}
    if plots:
        from .plots import benchmark_plots

        for b in benchmarks:
            pngs = benchmark_plots(b)
            plot_files[b.slug] = {name: (png, _caption(b, name)) for name, png in sorted(pngs.items())}
    written_plots = []
    plot_dir = out / PLOTS_DIR
    for slug in sorted(plot_files):
        for name, (png, _) in plot_files[slug].items():
            _write(plot_dir / name, png)
            written_plots.append(plot_dir / name)
    if plot_dir.is_dir():  # stale figures of benchmarks that no longer exist
        keep = {p.name for p in written_plots}
        for p in plot_dir.glob("lb-*.png"):
            if p.name not in keep:
                p.unlink()

    md_plots = {slug: {cap: f"{PLOTS_DIR}/{name}" for name, (_, cap) in files.items()}
                for slug, files in plot_files.items()}
    paths = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv", "html": out / "index.html"}
    _write(paths["markdown"], render_markdown(benchmarks, collection, md_plots).encode("utf-8"))
    _write(paths["csv"], render_csv(benchmarks, collection).encode("utf-8"))
    _write(paths["html"], render_html(benchmarks, collection, plot_files, __version__).encode("utf-8"))
    ranked = sum(len(b.ranked.rows) for b in benchmarks)
    summary = {**{k: str(v) for k, v in paths.items()}, "plots": [str(p) for p in written_plots],
               "benchmarks": len(benchmarks), "accepted": len(collection.submissions), "ranked": ranked,
               "not_ranked": len(collection.submissions) - ranked,
               "rejected": [{"path": r.path, "reason": r.reason} for r in collection.rejected],
               "warnings": list(collection.warnings)}
    log.info("leaderboard: %d benchmarks, %d accepted (%d ranked), %d rejected -> %s",
             summary["benchmarks"], summary["accepted"], ranked, len(collection.rejected), out)
    return summary
