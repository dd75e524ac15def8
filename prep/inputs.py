"""What to prepare: a directory of videos, a list file, or a corpus recipe → ``InputItem`` manifests."""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".ts", ".wmv"}


@dataclass(frozen=True)
class InputItem:
    """One input video. ``clip_id`` is its path relative to the input root, without extension."""

    source_path: str  # absolute (symlinks kept: a linked video keeps its name), so shards never depend on the CWD
    clip_id: str
    split: str | None = None
    speaker: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "source_path", os.path.abspath(self.source_path))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> str:
        """A filesystem-safe, collision-free name for this clip's work files."""
        return hashlib.sha256(self.clip_id.encode()).hexdigest()[:24]


def clip_id_for(path: Path, root: Path) -> str:
    # absolute, not resolved: a symlinked video keeps the name it has under the input root
    rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    return str(PurePosixPath(*rel.with_suffix("").parts))


def scan_directory(root) -> list[InputItem]:
    """Every video file under ``root`` (recursively, by extension, case-insensitive), sorted."""
    root = Path(root)
    items = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in VIDEO_EXTENSIONS and (p.is_file() or p.is_symlink()):
            items.append(InputItem(str(p), clip_id_for(p, root)))
    return items


def read_list_file(list_file) -> list[InputItem]:
    """A ``.txt`` (one path per line, ``#`` comments) or ``.csv`` (header with ``path`` and optional ``split``,
    ``speaker``, ``clip_id``) list. Relative paths are relative to the list file; clip ids are relative to the
    list file's directory unless given."""
    list_file = Path(list_file)
    base = list_file.parent
    rows: list[dict] = []
    if list_file.suffix.lower() == ".csv":
        with open(list_file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                raise ValueError(f"{list_file}: CSV needs a 'path' column (got {reader.fieldnames})")
            rows = [r for r in reader if (r.get("path") or "").strip()]
    else:
        for line in list_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append({"path": line})
    items = []
    for r in rows:
        p = Path(r["path"].strip())
        p = p if p.is_absolute() else base / p
        try:
            cid = r.get("clip_id") or clip_id_for(p, base)
        except ValueError:  # outside the list's directory: fall back to the path without extension
            cid = str(PurePosixPath(*p.with_suffix("").parts[1:]))
        items.append(InputItem(str(p), cid, (r.get("split") or None), (r.get("speaker") or None)))
    return items


def collect_inputs(source, recipe: str | None = None) -> list[InputItem]:
    """Inputs from a directory, a list file, or ``recipe`` applied to a corpus directory."""
    source = Path(source)
    if recipe:
        from .recipes import get_recipe

        return get_recipe(recipe)(source)
    if source.is_dir():
        return scan_directory(source)
    if source.is_file() and source.suffix.lower() in (".txt", ".csv", ".lst"):
        return read_list_file(source)
    if source.is_file() and source.suffix.lower() in VIDEO_EXTENSIONS:
        return [InputItem(str(source), source.stem)]
    raise FileNotFoundError(f"{source}: not a directory, a .txt/.csv list, or a video file")


def write_inputs_csv(items: list[InputItem], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "clip_id", "split", "speaker"])
        w.writeheader()
        for it in items:
            w.writerow({"path": it.source_path, "clip_id": it.clip_id, "split": it.split or "",
                        "speaker": it.speaker or ""})
    return path


__all__ = ["InputItem", "VIDEO_EXTENSIONS", "scan_directory", "read_list_file", "collect_inputs",
           "write_inputs_csv", "clip_id_for"]
