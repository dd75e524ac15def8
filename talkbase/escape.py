"""Escaping for untrusted text (submitter names, notes, links; clip ids; failure messages) in Markdown,
HTML and CSV. Control, bidirectional-override and zero-width characters are removed first: they can
reorder or hide what a reader sees (U+202E makes "gpj.exe" read "exe.jpg")."""
from __future__ import annotations

import html
import re
import urllib.parse

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# characters that start Markdown syntax anywhere in a line (emphasis, code, links, tables, strikethrough)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean_text(text, limit: int | None = None) -> str:
    """One line of plain text: control characters and newlines become spaces, long text is cut with '…'."""
    s = _CONTROL.sub(" ", _INVISIBLE.sub("", "" if text is None else str(text))).strip()
    if limit is not None and len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return s


def md(text, limit: int | None = None) -> str:
    """Markdown-inert text for a table cell: no markup, no HTML, no column breaks."""
    s = clean_text(text, limit)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def h(text, limit: int | None = None) -> str:
    """HTML-inert text (element content or a double-quoted attribute value)."""
    return html.escape(clean_text(text, limit), quote=True)


def safe_url(url) -> str | None:
    """``url`` if it is an absolute http(s) URL without whitespace or control characters, else None."""
    if not isinstance(url, str) or not url or len(url) > 2000:
        return None
    if _CONTROL.search(url) or _INVISIBLE.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def md_url(url: str) -> str:
    """A safe URL percent-encoded so it cannot end a Markdown link or a table cell early."""
    return urllib.parse.quote(url, safe=":/?#[]@!$&*+,;=%-._~")


def csv_text(text, limit: int | None = None) -> str:
    """CSV cell for untrusted text: a leading formula character is neutralised for spreadsheets."""
    s = clean_text(text, limit)
    return "'" + s if s.startswith(_CSV_FORMULA_START) else s
