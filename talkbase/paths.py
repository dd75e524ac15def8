"""Untrusted names (clip ids, submission files, registry entries) that must stay inside their folder."""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

_ABS_PATH = re.compile(r"(?<![\w.~<>$:/])/(?:[^\s/:;,'\"()\[\]]+/)*[^\s/:;,'\"()\[\]]*")


def unsafe_relative_id(name) -> str | None:
    """Why ``name`` cannot be a '/'-separated path inside a folder, or None when it can.

    Refused: empty, NUL or backslash, absolute, and any empty / '.' / '..' component.
    """
    if not isinstance(name, str) or not name:
        return "empty name"
    if "\x00" in name or "\\" in name:
        return "contains a NUL or backslash"
    if name.startswith("/"):
        return "absolute path"
    if any(p in ("", ".", "..") for p in name.split("/")):
        return "has an empty, '.' or '..' path component (would leave its folder)"
    return None


def is_inside(path, root) -> bool:
    """True when the resolved ``path`` lies in the resolved ``root`` (symlinks followed on both)."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except (ValueError, OSError):
        return False


def join_inside(root, rel: str) -> Path | None:
    """``root / rel`` when ``rel`` is a safe relative name that stays inside ``root``, else None."""
    if unsafe_relative_id(rel):
        return None
    full = Path(root) / Path(*PurePosixPath(rel).parts)
    return full if is_inside(full, root) else None


def relative_text(text: str, roots: dict[str, str | os.PathLike]) -> str:
    """``text`` (a failure reason) without this machine's absolute paths: a path under one of ``roots``
    (``{label: folder}``, most specific first) becomes ``label/relative``; any other absolute path keeps
    only its last component, as ``…/name``. For results files that travel to other people."""
    if not isinstance(text, str) or "/" not in text:
        return text
    items = sorted(((str(label), os.path.abspath(str(p))) for label, p in roots.items() if p),
                   key=lambda lp: -len(lp[1]))

    def one(m: re.Match) -> str:
        path = m.group(0)
        for label, root in items:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                rest = path[len(root):].lstrip("/")
                return f"{label}/{rest}" if rest else label
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return f"…/{name}" if name else path

    return _ABS_PATH.sub(one, text)


__all__ = ["unsafe_relative_id", "is_inside", "join_inside", "relative_text"]
