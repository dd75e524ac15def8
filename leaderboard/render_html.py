"""index.html: one self-contained static page (inline CSS, PNG plots as data: URIs, no scripts).

A Content-Security-Policy meta tag forbids every script and remote load, so even a missed escape could
not run code; all submitter text still goes through :func:`talkbase.escape.h`.
"""
from __future__ import annotations

import base64

from talkbase.escape import h, safe_url

from .registry import Collection
from .render_md import INTRO
from .tables import (PROTOCOL_SOURCE, Benchmark, Row, Table, arrow, fmt_counts, fmt_metric, fmt_rank, lead_columns,
                     skip_notes, skipped_reason, weights_line)

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;
max-width:1900px;padding:1rem 1.5rem;color:#212529;background:#fff;line-height:1.4}
h1{margin:.2rem 0 .6rem}h2{margin-top:2.2rem;border-bottom:2px solid #dee2e6;padding-bottom:.2rem}
h3{margin:1.2rem 0 .4rem}h3.unranked{color:#c92a2a}
.intro{max-width:75rem;color:#495057}.summary{font-weight:600}
dl.protocol{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;font-size:.9rem}
dl.protocol dt{color:#495057}dl.protocol dd{margin:0;word-break:break-all}
.scroll{overflow-x:auto}
table.board{border-collapse:collapse;font-size:.82rem;margin:.3rem 0 .8rem}
table.board th,table.board td{border:1px solid #dee2e6;padding:.25rem .4rem;vertical-align:top}
table.board th{background:#f1f3f5;white-space:normal;min-width:3.5rem}
table.board td.num{text-align:right;font-variant-numeric:tabular-nums}
table.board td.num .v,table.board td.num .rank{white-space:nowrap}
table.board td.best{background:#ebfbee}
table.board td.notes{min-width:6rem;max-width:16rem;overflow-wrap:anywhere}
table.board td.date{white-space:nowrap}
table.board td.name{min-width:6rem;max-width:12rem;overflow-wrap:anywhere;font-weight:600}
tr.kind-ground-truth td{background:#f8f9fa;font-style:italic}
tr.kind-baseline td.name{color:#495057}
.rank{color:#868e96;font-size:.8em}.na{color:#adb5bd}
.uncal{display:inline-block;font-size:.72em;font-weight:700;color:#fff;background:#e8590c;
border-radius:3px;padding:0 .3em;margin-left:.2em}
p.reason{color:#c92a2a;font-weight:600}
.kind{font-size:.8em;border-radius:3px;padding:0 .3em;background:#e7f5ff}
ul.skips{font-size:.82rem;color:#495057}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #e9ecef}
figcaption{font-size:.85rem;color:#495057}
footer{margin-top:3rem;font-size:.8rem;color:#868e96}
"""


def _header(table: Table) -> str:
    cells = ["<th>Submission</th>", "<th>Kind</th>"] + [f"<th>{n.capitalize()}</th>" for n in lead_columns(table)]
    for c in table.headline:
        label = f"{h(c.label, 60)} {arrow(c)}"
        if c.key in table.uncalibrated:
            label += ' <span class="uncal" title="computed with uncalibrated weights">uncalibrated</span>'
        cells.append(f'<th class="metric" data-metric="{c.key}">{label}</th>')
    if table.ranked:
        cells.append("<th>Mean rank</th>")
    cells += ["<th>N scored / skipped</th>", "<th>Notes</th>"]
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def _name_cell(row: Row) -> str:
    name = h(row.sub.name, 120)
    url = safe_url(row.sub.link)
    if url:
        name = f'<a href="{h(url)}" rel="nofollow noopener noreferrer">{name}</a>'
    return f'<td class="name">{name}</td>'


def _row(row: Row, table: Table) -> str:
    s = row.sub
    cells = [_name_cell(row), f'<td><span class="kind">{h(s.kind)}</span></td>']
    cells += [f'<td class="{name}">{h(getattr(s, name), 80)}</td>' for name in lead_columns(table)]
    for c in table.headline:
        # value, "± stderr" and the rank each stay whole; a narrow window wraps between them
        value, _, se = fmt_metric(s, c).partition(" ± ")
        v = f'<span class="v">{h(value)}</span>' + (f' <span class="v">± {h(se)}</span>' if se else "")
        why = skipped_reason(s, c)
        classes = ["num"]
        if why:
            classes.append("na")
            v = f'<span title="{h(why, 200)}">{v}</span>'
        if table.ranked and c.key in row.best:
            classes.append("best")
            v = f"<strong>{v}</strong>"
        if table.ranked and c.key in row.ranks:
            v += f' <span class="rank">({h(fmt_rank(row, c))})</span>'
        cells.append(f'<td class="{" ".join(classes)}" data-metric="{c.key}">{v}</td>')
    if table.ranked:
        cells.append(f'<td class="num">{"—" if row.mean_rank is None else f"{row.mean_rank:.2f}"}</td>')
    cells += [f'<td class="num">{h(fmt_counts(s))}</td>', f'<td class="notes">{h(s.notes, 300)}</td>']
    return f'<tr class="kind-{h(s.kind)}" data-kind="{h(s.kind)}">' + "".join(cells) + "</tr>\n"


def _skips(table: Table) -> str:
    items = [f"<li>{h(line, 400)}</li>" for line in skip_notes(table)]
    return f'<ul class="skips">{"".join(items)}</ul>\n' if items else ""


def _table(table: Table, slug: str) -> str:
    if not table.rows:
        return "<p><em>No results under the benchmark protocol yet.</em></p>\n"
    cls = "ranked" if table.ranked else "unranked"
    body = "".join(_row(r, table) for r in table.rows)
    return (f'<div class="scroll"><table class="board {cls}" data-benchmark="{slug}">{_header(table)}'
            f"<tbody>\n{body}</tbody></table></div>\n" + _skips(table))


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{h(caption)}" data-plot="{h(name)}">'
            f"<figcaption>{h(caption)}</figcaption></figure>\n")


def _benchmark(b: Benchmark, plots: dict[str, tuple[bytes, str]]) -> str:
    source = PROTOCOL_SOURCE[b.declared]
    out = [f'<section class="benchmark" id="bench-{b.slug}">\n<h2>{h(b.title)}</h2>\n<dl class="protocol">',
           f"<dt>Reference shards sha256</dt><dd><code>{b.reference_shards_sha256}</code></dd>",
           f"<dt>Protocol</dt><dd>{h(b.protocol_version, 60)}, hash <code>{b.protocol_hash}</code> ({source})</dd>"]
    for label, text in weights_line(b.weights, b.columns):
        text_html = h(text).replace("UNCALIBRATED", '<span class="uncal">uncalibrated</span>')
        out.append(f"<dt>{h(label, 60)}</dt><dd>{text_html}</dd>")
    out.append("</dl>\n<h3>Ranked</h3>\n")
    out.append(_table(b.ranked, b.slug))
    for name in sorted(plots):
        png, caption = plots[name]
        out.append(_figure(name, png, caption))
    for t in b.unranked:
        out.append('<h3 class="unranked">Not ranked with this benchmark</h3>\n'
                   f'<p class="reason">{h(t.reason, 400)}</p>\n')
        out.append(_table(t, b.slug))
    out.append("</section>\n")
    return "".join(out)


def render_html(benchmarks: list[Benchmark], collection: Collection,
                plots: dict[str, dict[str, tuple[bytes, str]]], version: str) -> str:
    """The whole page; ``plots``: {benchmark slug: {file name: (PNG bytes, caption)}}."""
    n = len(collection.submissions) + len(collection.rejected)
    summary = (f"{n} results files read, {len(collection.submissions)} accepted, "
               f"{len(collection.rejected)} rejected"
               + (" (submission registry in use)." if collection.registry_path else "."))
    intro = h(INTRO).format(bold="<strong>bold</strong>")
    nav = "".join(f'<li><a href="#bench-{b.slug}">{h(b.title)}</a></li>' for b in benchmarks)
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
           '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
           '<meta name="referrer" content="no-referrer">\n',
           f"<title>talkbench leaderboard</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
           f'<header>\n<h1>talkbench leaderboard</h1>\n<p class="intro">{intro}</p>\n'
           f'<p class="summary">{h(summary)}</p>\n<nav><ul>{nav}</ul></nav>\n</header>\n<main>\n']
    if not benchmarks:
        out.append("<p><em>No accepted results.</em></p>\n")
    for b in benchmarks:
        out.append(_benchmark(b, plots.get(b.slug, {})))
    if collection.rejected:
        rows = "".join(f'<tr class="rejected"><td>{h(r.path, 200)}</td><td>{h(r.reason, 300)}</td></tr>\n'
                       for r in collection.rejected)
        out.append('<section id="rejected">\n<h2>Rejected results</h2>\n<div class="scroll">'
                   '<table class="board rejected"><thead><tr><th>Results file</th><th>Reason</th></tr></thead>'
                   f"<tbody>\n{rows}</tbody></table></div>\n</section>\n")
    if collection.warnings:
        items = "".join(f"<li>{h(w, 300)}</li>" for w in collection.warnings)
        out.append(f'<section id="notes">\n<h2>Build notes</h2>\n<ul>{items}</ul>\n</section>\n')
    out.append(f"</main>\n<footer>Generated by talkbench {h(version)} from stored results only; "
               "static page, no scripts, no network.</footer>\n</body>\n</html>\n")
    return "".join(out)
