"""Check a submission directory against the reference clips before anything is decoded in earnest.

A submission is ``DIR/<clip_id>.mp4`` (``clip_id`` may contain ``/``) with video and audio. Every
problem is reported per video as ``{"clip_id", "path", "reason", "code"}`` and never raises:

- ``unknown_clip``: an .mp4 whose id is not a reference clip (counted as extra, not scored);
- ``missing``: a reference clip without a file;
- ``unsafe_path``: a clip id that would leave DIR (``..``, absolute, backslash) or a symlink whose
  target is outside DIR (not followed, unless it lies inside a folder named by ``follow_inside``,
  ``--follow-symlinks-inside DIR``: you vouch for that folder);
- ``unreadable`` / ``corrupt``: not a regular readable file, or not decodable media;
- ``no_audio``: no audio stream; ``audio_length``: audio absurdly longer than the video (a resource bomb);
- ``resolution`` / ``duration`` / ``file_size``: outside the limits;
- ``wrong_length``: frame count at 25 fps differs from the reference by more than the tolerance
  (reconstruction mode) or is below the minimum (cross mode).

A video at another frame rate is accepted and resampled to 25 fps by decoding (``resampled=True``).
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from talkbase.paths import is_inside, unsafe_relative_id
from talkbase.timebase import FPS

from .config import SubmissionLimits

log = logging.getLogger(__name__)

EXTENSION = ".mp4"
ASPECT_TOLERANCE = 0.01  # relative; another size with the same framing is rescaled, another framing is not


@dataclass(frozen=True)
class SubmissionVideo:
    """An accepted submission video (``path`` is the resolved real path inside DIR)."""

    clip_id: str
    path: str
    rel_path: str
    num_frames: int  # at 25 fps
    ref_num_frames: int | None  # None in reference-free mode
    width: int
    height: int
    src_fps: float
    resampled: bool
    size_bytes: int
    audio_sample_rate: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def _skip(clip_id, path, code: str, reason: str) -> dict:
    return {"clip_id": clip_id, "path": path, "code": code, "reason": reason}


def locate(root: Path, clip_id: str, follow_inside=()) -> tuple[Path | None, dict | None]:
    """The real path of ``clip_id``'s file inside ``root`` (already resolved) or inside one of the
    ``follow_inside`` folders a symlink may point into, or a skip record."""
    rel = f"{clip_id}{EXTENSION}"
    bad = unsafe_relative_id(clip_id)
    if bad:
        return None, _skip(clip_id, rel, "unsafe_path", f"clip id {bad}")
    candidate = root.joinpath(*clip_id.split("/")[:-1], clip_id.split("/")[-1] + EXTENSION)
    if not os.path.lexists(candidate):
        return None, _skip(clip_id, rel, "missing", "no submission file for this reference clip")
    real = Path(os.path.realpath(candidate))
    if not is_inside(real, root) and not any(is_inside(real, d) for d in follow_inside):
        return None, _skip(clip_id, rel, "unsafe_path",
                           "path resolves outside the submission dir (symlink not followed: copy the video in, "
                           "or pass --follow-symlinks-inside with the folder it points into)")
    if not real.exists():
        return None, _skip(clip_id, rel, "missing", "dangling symlink")
    return real, None


def _walk_mp4(root: Path) -> list[str]:
    """Relative posix paths of every *.mp4 under root, without following symlinked directories."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(EXTENSION) and not name.startswith("."):
                rel = Path(dirpath, name).relative_to(root)
                found.append(rel.as_posix())
    return found


def _check_video(clip_id: str, rel: str, real: Path, ref_frames: int | None, mode: str,
                 limits: SubmissionLimits, ref_size=None, kind: str = "frames") -> tuple[SubmissionVideo | None, dict | None]:
    from prep import media
    from prep.errors import MediaError, NotAFile

    try:
        st = real.stat()
        if not real.is_file():
            return None, _skip(clip_id, rel, "unreadable", "not a regular file")
        if st.st_size > limits.max_bytes:
            return None, _skip(clip_id, rel, "file_size", f"{st.st_size} bytes > limit {limits.max_bytes}")
        info = media.probe(real)
    except NotAFile as e:
        return None, _skip(clip_id, rel, "unreadable", e.reason)
    except MediaError as e:
        return None, _skip(clip_id, rel, "corrupt", e.reason)
    except Exception as e:  # noqa: BLE001 - a hostile file must never crash validation
        return None, _skip(clip_id, rel, "corrupt", f"cannot probe ({type(e).__name__}: {e})")
    w, h = info.width, info.height
    if min(w, h) < limits.min_side or max(w, h) > limits.max_side or w * h > limits.max_pixels:
        return None, _skip(clip_id, rel, "resolution",
                           f"{w}x{h} outside limits (sides {limits.min_side}..{limits.max_side}, "
                           f"at most {limits.max_pixels} pixels)")
    if kind == "crops":
        if abs(w - h) > ASPECT_TOLERANCE * max(w, h):
            return None, _skip(clip_id, rel, "resolution", f"{w}x{h} is not square: an aligned-crop submission "
                                                           "(--submission-kind crops) is the square face crop")
    elif ref_size and all(ref_size) and abs(w / h - ref_size[0] / ref_size[1]) > ASPECT_TOLERANCE * ref_size[0] / ref_size[1]:
        return None, _skip(clip_id, rel, "resolution",
                           f"{w}x{h} has another aspect ratio than the reference's {ref_size[0]}x{ref_size[1]} "
                           "(the reference face geometry cannot be mapped onto it; if these are aligned face "
                           "crops, pass --submission-kind crops)")
    if not (info.duration_s > 0) or info.duration_s > limits.max_duration_s:
        return None, _skip(clip_id, rel, "duration",
                           f"duration {info.duration_s:.2f}s outside (0, {limits.max_duration_s}] s")
    if not info.has_audio:
        return None, _skip(clip_id, rel, "no_audio", "no audio stream (submissions carry their audio)")
    too_long = media.check_audio_length(info)
    if too_long:
        return None, _skip(clip_id, rel, "audio_length", too_long)
    try:
        n = media.count_frames(real, FPS)
    except MediaError as e:
        return None, _skip(clip_id, rel, "corrupt", e.reason)
    except Exception as e:  # noqa: BLE001
        return None, _skip(clip_id, rel, "corrupt", f"cannot read packets ({type(e).__name__}: {e})")
    if n < limits.min_frames:
        return None, _skip(clip_id, rel, "wrong_length", f"{n} frames at 25 fps < minimum {limits.min_frames}")
    if mode == "reconstruction" and abs(n - ref_frames) > limits.length_tolerance:
        return None, _skip(clip_id, rel, "wrong_length",
                           f"{n} frames at 25 fps, reference has {ref_frames} (tolerance "
                           f"±{limits.length_tolerance})")
    resampled = abs(info.src_fps - FPS) > 0.01
    if resampled:
        log.info("%s: %.3f fps, resampled to 25 fps by decoding", clip_id, info.src_fps)
    return SubmissionVideo(clip_id=clip_id, path=str(real), rel_path=rel, num_frames=int(n),
                           ref_num_frames=None if ref_frames is None else int(ref_frames), width=int(w), height=int(h),
                           src_fps=float(info.src_fps), resampled=resampled, size_bytes=int(st.st_size),
                           audio_sample_rate=info.audio_sample_rate), None


def reference_clip_info(reference_out, split: str | None = None) -> dict[str, dict]:
    """``{clip_id: {"num_frames", "width", "height"}}`` of the reference prep output (one split, or all)."""
    from prep.output import PrepOutput

    return {c.clip_id: {"num_frames": c.num_frames, "width": c.src_width, "height": c.src_height}
            for c in PrepOutput.open(reference_out).clips(split)}


def validate_submission(reference_out, submission_dir, mode: str = "reconstruction",
                        limits: SubmissionLimits | None = None,
                        reference_lengths: dict[str, int] | None = None, split: str | None = None,
                        follow_inside=(), clip_ids=None, kind: str = "frames",
                        ) -> tuple[list[SubmissionVideo], list[dict]]:
    """Accepted videos (sorted by clip id) and skip records ``{clip_id, path, code, reason}``.

    Skip records of reference clips come first (sorted by clip id), then ``unknown_clip`` records.
    ``len(accepted) + (skips that are not unknown_clip) == number of reference clips``.
    ``reference_lengths`` (``{clip_id: frames}``) replaces reading the reference's clips table (then
    the aspect-ratio check is skipped). ``split``: only reference clips of that split are expected
    (videos of other clips count as ``unknown_clip``). ``follow_inside``: folders whose files a symlink in
    the submission may point to. ``clip_ids``: only these reference clips are expected (a pairs list).
    ``kind``: ``frames`` (full frames, the reference's aspect ratio) or ``crops`` (square aligned face crops).
    """
    limits = limits or SubmissionLimits()
    if mode not in ("reconstruction", "cross"):
        raise ValueError(f"mode must be reconstruction or cross, got {mode!r}")
    root = Path(os.path.realpath(submission_dir))
    if not root.is_dir():
        raise NotADirectoryError(f"{submission_dir}: submission dir does not exist or is not a directory")
    if reference_lengths is not None:
        info = {c: {"num_frames": n, "width": None, "height": None} for c, n in reference_lengths.items()}
    else:
        info = reference_clip_info(reference_out, split)
        if split is not None and not info:
            raise ValueError(f"{reference_out}: no reference clip has split {split!r}")
    if clip_ids is not None:
        info = {c: v for c, v in info.items() if c in clip_ids}
    accepted, skipped = [], []
    follow_inside = [Path(os.path.realpath(d)) for d in follow_inside or ()]
    for d in follow_inside:
        if not d.is_dir():
            raise NotADirectoryError(f"--follow-symlinks-inside {d}: not a directory")
    for clip_id in sorted(info):
        real, skip = locate(root, clip_id, follow_inside)
        if skip is None:
            ref = info[clip_id]
            video, skip = _check_video(clip_id, f"{clip_id}{EXTENSION}", real, ref["num_frames"], mode, limits,
                                       (ref["width"], ref["height"]), kind)
            if video is not None:
                accepted.append(video)
        if skip is not None:
            log.info("skip %s: %s", clip_id, skip["reason"])
            skipped.append(skip)
    for rel in _walk_mp4(root):
        cid = rel[: -len(EXTENSION)]
        if cid not in info:
            skipped.append(_skip(cid, rel, "unknown_clip", "not a clip of the reference set (ignored)"))
    return accepted, skipped


VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def _walk_videos(root: Path, max_files: int) -> list[str]:
    """Relative posix paths of every video file under ``root`` (symlinked folders not followed, dot files
    left out), sorted; more than ``max_files`` of them is refused (ValueError) before any is probed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith("."):
                found.append(Path(dirpath, name).relative_to(root).as_posix())
                if len(found) > max_files:
                    raise ValueError(f"{root}: more than {max_files} video files (SubmissionLimits.max_files)")
    return sorted(found)


def discover_videos(submission_dir, limits: SubmissionLimits | None = None
                    ) -> tuple[list[SubmissionVideo], list[dict], list[str]]:
    """Reference-free mode: every video file under ``submission_dir`` → ``(accepted, skipped, names)``.

    ``names`` are the relative paths of every video file found (what the benchmark is keyed by). A video's
    clip id is its relative path without the extension; two files with one id (``a.mp4`` and ``a.mov``) are
    both skipped (``ambiguous_name``). The rules of :func:`validate_submission` apply: a symlink resolving
    outside the folder is never followed (``unsafe_path``), limits on size / resolution / duration, audio
    required, at least ``min_frames`` frames at 25 fps.
    """
    limits = limits or SubmissionLimits()
    root = Path(os.path.realpath(submission_dir))
    if not root.is_dir():
        raise NotADirectoryError(f"{submission_dir}: submission dir does not exist or is not a directory")
    names = _walk_videos(root, limits.max_files)
    by_id: dict[str, list[str]] = {}
    for rel in names:
        by_id.setdefault(rel.rsplit(".", 1)[0], []).append(rel)
    accepted, skipped = [], []
    for clip_id, rels in sorted(by_id.items()):
        if len(rels) > 1:
            for rel in rels:
                skipped.append(_skip(clip_id, rel, "ambiguous_name", f"{' and '.join(rels)} share the name {clip_id!r}"))
            continue
        rel = rels[0]
        bad = unsafe_relative_id(clip_id)
        if bad:
            skipped.append(_skip(clip_id, rel, "unsafe_path", f"file name {bad}"))
            continue
        real = Path(os.path.realpath(root / rel))
        if not is_inside(real, root):
            skipped.append(_skip(clip_id, rel, "unsafe_path", "path resolves outside the submission dir (symlink not followed)"))
            continue
        if not real.exists():
            skipped.append(_skip(clip_id, rel, "missing", "dangling symlink"))
            continue
        video, skip = _check_video(clip_id, rel, real, None, "reference-free", limits)
        if video is not None:
            accepted.append(video)
        else:
            log.info("skip %s: %s", rel, skip["reason"])
            skipped.append(skip)
    return accepted, skipped, names


def count_skips(skipped: list[dict]) -> dict[str, int]:
    """``{code: count}`` over skip records, codes sorted."""
    out: dict[str, int] = {}
    for s in skipped:
        out[s["code"]] = out.get(s["code"], 0) + 1
    return dict(sorted(out.items()))


__all__ = ["SubmissionVideo", "validate_submission", "discover_videos", "locate", "count_skips", "VIDEO_EXTENSIONS",
           "reference_clip_info", "EXTENSION"]
