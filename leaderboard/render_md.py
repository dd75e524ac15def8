"""leaderboard.md: the same tables as the site, as GitHub-flavoured Markdown (all submitter text escaped)."""
from __future__ import annotations

from talkbase.escape import md, md_url, safe_url

from .registry import Collection
from .tables import (PROTOCOL_SOURCE, Benchmark, Row, Table, arrow, fmt_counts, fmt_metric, fmt_rank, lead_columns,
                     skip_notes, weights_line)

INTRO = ("Mean over scored videos with its 95 % bootstrap interval [lo, hi] (± standard error where a file has "
         "no interval). ↑ higher is better, ↓ lower is better. (k) is the rank among models and baselines; (k≈) "
         "marks a rank statistically tied with the rank above it (a 95 % paired bootstrap over common videos, or "
         "overlapping intervals); {bold} is the best value. Ground-truth rows are "
         "references and are not ranked. Rows are ordered by mean rank. Results computed under a different "
         "protocol or different metric weights are never ranked together: they are listed in separate tables "
         "with the reason.")


def _header(table: Table) -> str:
    cols = []
    for c in table.headline:
        label = f"{md(c.label, 60)} {arrow(c)}"
        if c.key in table.uncalibrated:
            label += " (uncalibrated)"
        cols.append(label)
    lead = ["Submission", "Kind"] + [name.capitalize() for name in lead_columns(table)]
    tail = ["N scored / skipped", "Notes"]
    if table.ranked:
        tail.insert(0, "Mean rank")
    names = lead + cols + tail
    k = len(lead)
    return "| " + " | ".join(names) + " |\n|" + "|".join("---" if i < k or i >= k + len(cols) else "--:"
                                                        for i in range(len(names))) + "|\n"


def _submission_cell(row: Row) -> str:
    name = md(row.sub.name, 120)
    url = safe_url(row.sub.link)
    return f"[{name}]({md_url(url)})" if url else name


def _row(row: Row, table: Table) -> str:
    s = row.sub
    cells = [_submission_cell(row), md(s.kind)] + [md(getattr(s, name), 80) for name in lead_columns(table)]
    for c in table.headline:
        v = fmt_metric(s, c)
        if table.ranked and c.key in row.best:
            v = f"**{v}**"
        if table.ranked and c.key in row.ranks:
            v += f" ({fmt_rank(row, c)})"
        cells.append(v)
    if table.ranked:
        cells.append("—" if row.mean_rank is None else f"{row.mean_rank:.2f}")
    cells += [fmt_counts(s), md(s.notes, 300)]
    return "| " + " | ".join(cells) + " |\n"


def _skips(table: Table) -> str:
    lines = [f"- {md(line, 400)}\n" for line in skip_notes(table)]
    return ("Not computed:\n\n" + "".join(lines) + "\n") if lines else ""


def _table_md(table: Table) -> str:
    if not table.rows:
        return "_No results under the benchmark protocol yet._\n\n"
    return _header(table) + "".join(_row(r, table) for r in table.rows) + "\n" + _skips(table)


def _benchmark_md(b: Benchmark, plots: dict[str, str]) -> str:
    source = PROTOCOL_SOURCE[b.declared]
    out = [f"## {md(b.title)}\n\n",
           f"- Reference shards sha256: `{b.reference_shards_sha256}`\n",
           f"- Protocol: {md(b.protocol_version, 60)}, hash `{b.protocol_hash}` ({source})\n"]
    for label, text in weights_line(b.weights, b.columns):
        out.append(f"- {md(label, 60)}: {md(text)}\n")
    out.append("\n### Ranked\n\n")
    out.append(_table_md(b.ranked))
    for name, rel in sorted(plots.items()):
        out.append(f"![{md(name)}]({rel})\n\n")
    for t in b.unranked:
        out.append(f"### Not ranked with this benchmark: {md(t.reason, 400)}\n\n")
        out.append(_table_md(t))
    return "".join(out)


def render_markdown(benchmarks: list[Benchmark], collection: Collection,
                    plots: dict[str, dict[str, str]]) -> str:
    """The whole leaderboard.md; ``plots``: {benchmark slug: {caption: relative PNG path}}."""
    n = len(collection.submissions) + len(collection.rejected)
    out = ["# talkbench leaderboard\n\n", INTRO.format(bold="**bold**") + "\n\n",
           f"{n} results files read, {len(collection.submissions)} accepted, {len(collection.rejected)} rejected"]
    out.append(" (submission registry in use).\n\n" if collection.registry_path else ".\n\n")
    if not benchmarks:
        out.append("_No accepted results._\n\n")
    for b in benchmarks:
        out.append(_benchmark_md(b, plots.get(b.slug, {})))
    if collection.rejected:
        out.append("## Rejected results\n\n| Results file | Reason |\n|---|---|\n")
        for r in collection.rejected:
            out.append(f"| {md(r.path, 200)} | {md(r.reason, 300)} |\n")
        out.append("\n")
    if collection.warnings:
        out.append("## Build notes\n\n" + "".join(f"- {md(w, 300)}\n" for w in collection.warnings) + "\n")
    return "".join(out).rstrip("\n") + "\n"
