"""One clip's face columns: track -> (optional) 3DMM fit -> clip-level checks.

Clip-level problems and what they become (``FaceConfig`` decides "fail" or "flag" for each):

* ``no_face``: no face in any frame. Default **fail**: :class:`prep.errors.FaceError`, which the job
  writes as a failure row (a clip without a face is useless for lip-sync training).
* ``face_lost``: a face on fewer than ``face_lost_fraction`` of the frames. Default **flag**: the clip
  keeps its rows (frames without a face say so) and gets a QA flag, so a ``--filter`` can drop it.
* ``fit_diverged``: mean 3DMM residual above ``fit_diverged_ratio`` x the face size (or non-finite).
  Default **flag**: the crops and landmarks are still good; only the coefficients are suspect.

A flag is a string ``"<name>: <reason>"``; the job stores it in ``qa_flags``.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..errors import FaceError
from .config import FaceConfig
from .tracking import FaceTracker

log = logging.getLogger(__name__)


def fit_rows(rows: list[dict], image_size: tuple[int, int], bfm=None, fit_config=None) -> dict:
    """Fit the 3DMM to the landmarks of ``rows`` (in place: adds ``mm_pose``, ``mm_id``, ``mm_exp``,
    ``mm_residual``; None where ``face_found`` is False). Returns the fit's clip numbers:
    ``fit_residual`` (mean over frames with a face, source px), ``fit_iterations``; empty dict when no
    frame has a face."""
    from .. import threedmm

    valid = np.array([bool(r["face_found"]) for r in rows])
    if not valid.any():
        for r in rows:
            r.update(mm_pose=None, mm_id=None, mm_exp=None, mm_residual=None)
        return {}
    lms = np.full((len(rows), 68, 2), np.nan)
    for i, r in enumerate(rows):
        if r["face_found"]:
            lms[i] = r["landmarks_src"]
    fit = threedmm.fit_clip(lms, valid, image_size, fit_config, bfm=bfm)
    for i, r in enumerate(rows):
        if valid[i]:
            r.update(mm_pose=fit["mm_pose"][i], mm_id=fit["mm_id"], mm_exp=fit["mm_exp"][i],
                     mm_residual=float(fit["residual"][i]))
        else:
            r.update(mm_pose=None, mm_id=None, mm_exp=None, mm_residual=None)
    return {"fit_residual": float(np.nanmean(fit["residual"])), "fit_iterations": fit["iterations"]}


def clip_checks(summary: dict, config: FaceConfig, clip_id: str = "clip") -> list[str]:
    """QA flags for a clip's face summary; raises :class:`FaceError` for problems configured to fail.

    Reads ``face_fraction``, ``num_frames``, ``face_size`` and (when present) ``fit_residual``.
    """
    flags: list[str] = []

    def problem(kind: str, outcome: str, reason: str):
        if outcome == "fail":
            raise FaceError(clip_id, f"{kind}: {reason}")
        flags.append(f"{kind}: {reason}")

    frac = summary.get("face_fraction", float("nan"))
    if not frac or math.isnan(frac):
        problem("no_face", config.on_no_face, f"no face found in any of {summary.get('num_frames', 0)} frames")
        return flags
    if frac < config.face_lost_fraction:
        problem("face_lost", config.on_face_lost,
                f"face found on {100 * frac:.0f}% of frames (< {100 * config.face_lost_fraction:.0f}%)")
    if "fit_residual" in summary:
        res, size = summary["fit_residual"], summary.get("face_size", float("nan"))
        rel = res / size if size and math.isfinite(size) else float("nan")
        if not math.isfinite(rel) or rel > config.fit_diverged_ratio:
            problem("fit_diverged", config.on_fit_diverged,
                    f"3DMM residual {res:.1f} px = {rel:.3f} of the face size (> {config.fit_diverged_ratio:g})")
    return flags


def process_frames(frames, config: FaceConfig | None = None, *, clip_id: str = "clip", bfm=None,
                   chunk_size: int = 64, tracker: FaceTracker | None = None) -> tuple[list[dict], dict]:
    """Face columns of a whole clip: ``(rows, summary)``.

    ``frames`` is a (T, H, W, 3) uint8 RGB array (or an iterable of ``FrameChunk``). Rows are
    :meth:`FaceTracker.process` rows plus, when ``config.fit_3dmm``, the ``mm_*`` columns (``bfm``: the
    basis folder, else env var / cache dir). The summary is :meth:`FaceTracker.summary` plus
    ``fit_residual`` (when fitted) and ``flags`` (see the module docstring); a problem configured as a
    failure raises :class:`FaceError`.
    """
    from ..media import FrameChunk

    config = config or FaceConfig()
    tracker = tracker or FaceTracker(config)
    rows: list[dict] = []
    size = None
    if isinstance(frames, np.ndarray):
        chunks = (FrameChunk(s, frames[s:s + chunk_size]) for s in range(0, len(frames), chunk_size))
    else:
        chunks = frames
    for chunk in chunks:
        rows.extend(tracker.process(chunk))
        size = (tracker._hw[1], tracker._hw[0]) if tracker._hw else None
    summary = tracker.summary()
    if config.fit_3dmm and size is not None:
        summary.update(fit_rows(rows, size, bfm=bfm))
    summary["flags"] = clip_checks(summary, config, clip_id)
    return rows, summary


__all__ = ["process_frames", "fit_rows", "clip_checks"]
