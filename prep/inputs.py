"""What to prepare: a directory of videos, a list file, or a corpus recipe → ``InputItem`` manifests."""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

# what a directory scan takes as a video (case-insensitive); README lists the same
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".ts", ".wmv",
                    ".3gp", ".3g2", ".mts", ".m2ts", ".ogv", ".vob", ".mxf", ".asf", ".divx", ".f4v", ".qt"}


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
    return scan_directory_report(root)[0]


def scan_directory_report(root) -> tuple[list[InputItem], list[str]]:
    """``(videos, skipped)``: :func:`scan_directory`'s items, and the relative path of every other file (and of
    every directory named like a video) that the scan passed over. Symlinks with a video name are inputs
    (a dangling one or a loop becomes a failure row that says so)."""
    root = Path(root)
    items, skipped = [], []
    for p in sorted(root.rglob("*")):
        video_name = p.suffix.lower() in VIDEO_EXTENSIONS
        if video_name and (p.is_symlink() or p.is_file()):
            items.append(InputItem(str(p), clip_id_for(p, root)))
        elif (p.is_file() or p.is_symlink() or video_name) and not p.name.startswith("."):
            skipped.append(p.relative_to(root).as_posix())
    return items, skipped


def read_list_file(list_file, root=None) -> list[InputItem]:
    """A ``.txt`` (one path per line, ``#`` comments) or ``.csv`` (header with ``path`` and optional ``split``,
    ``speaker``, ``clip_id``) list. Relative paths are relative to the list file. Clip ids (unless the CSV
    gives them) are the paths relative to ``root`` without extension; the default root is the deepest folder
    that holds every listed file (so a list of ``videos/a.mp4``, ``videos/b.mp4`` gives ``a`` and ``b``)."""
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
    paths = []
    for r in rows:
        p = Path(r["path"].strip())
        paths.append(Path(os.path.abspath(p if p.is_absolute() else base / p)))
    if root is None:
        root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else base
    root = Path(os.path.abspath(root))
    items = []
    for r, p in zip(rows, paths):
        cid = (r.get("clip_id") or "").strip()
        if not cid:
            try:
                cid = clip_id_for(p, root)
            except ValueError:
                raise ValueError(f"{list_file}: {p} is not under the clip-id root {root} (--root)") from None
        items.append(InputItem(str(p), cid, (r.get("split") or None), (r.get("speaker") or None)))
    return items


def collect_inputs(source, recipe: str | None = None, root=None) -> list[InputItem]:
    """Inputs from a directory, a list file (clip ids relative to ``root``), or ``recipe`` applied to a
    corpus directory."""
    return collect_inputs_report(source, recipe, root)[0]


def collect_inputs_report(source, recipe: str | None = None, root=None) -> tuple[list[InputItem], list[str]]:
    """:func:`collect_inputs` and the files a directory scan skipped (not videos)."""
    source = Path(source)
    if recipe:
        from .recipes import get_recipe

        return get_recipe(recipe)(source), []
    if source.is_dir():
        return scan_directory_report(source)
    if source.is_file() and source.suffix.lower() in (".txt", ".csv", ".lst"):
        return read_list_file(source, root), []
    if source.is_file() and source.suffix.lower() in VIDEO_EXTENSIONS:
        return [InputItem(str(source), source.stem)], []
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


__all__ = ["InputItem", "VIDEO_EXTENSIONS", "scan_directory", "scan_directory_report", "read_list_file",
           "collect_inputs", "collect_inputs_report", "write_inputs_csv", "clip_id_for"]
