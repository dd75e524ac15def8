"""Untrusted names (clip ids, submission files, registry entries) that must stay inside their folder."""
from __future__ import annotations

from pathlib import Path, PurePosixPath


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


__all__ = ["unsafe_relative_id", "is_inside", "join_inside"]
