"""Baseline submissions, written exactly like the model's (``OUT/<clip_id>.mp4`` with driving audio).

- ``copy-reference``: every face frame gets the lower face of its reference frame (the same fixed
  references the model uses, ``submission.reference_frames``) — a still mouth, perfect identity.
- ``mean-fill``: every face frame gets the per-pixel mean lower face of the whole prep output (all
  aligned crops of all clips, subsampled to at most ``MEAN_MAX_FRAMES``) — the inpainting "fill with the
  mean" floor: a generic blurred mouth that uses nothing of the target clip's own mouth.
- ``clip-mean``: every face frame gets the per-pixel temporal mean of the clip's *own* crops. In
  reconstruction this is close to the MMSE estimate given only the identity, computed from the ground
  truth being scored, so it is a very strong PSNR reference (a generator that *samples* a mouth is
  expected to trail such a mean by ~3 dB unless its conditioning pins the mouth down).

None of them looks at the audio, so their sync scores are the floor any lip-sync model should beat.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BASELINES = ("copy-reference", "mean-fill", "clip-mean")
MEAN_MAX_FRAMES = 4096


def dataset_mean_crop(prep_out, size: int | None = None, max_frames: int = MEAN_MAX_FRAMES) -> np.ndarray:
    """Per-pixel mean (S, S, 3) float32 of the aligned face crops of ``prep_out`` (every k-th face row so
    that at most ``max_frames`` are decoded), at ``size`` (default: the stored crop size)."""
    from prep.output import decode_crop

    from .data import load_crop, open_prep

    prep = open_prep(prep_out)
    total = int(prep.counts.get("frames", 0)) or None
    step = max(1, (total or 0) // max_frames)
    acc, n, i = None, 0, 0
    for batch in prep.frame_batches(["crop", "face_found"]):
        for crop, face in zip(batch.column("crop").to_pylist(), batch.column("face_found").to_pylist()):
            if not face or crop is None:
                continue
            i += 1
            if (i - 1) % step:
                continue
            img = load_crop(crop, size) if size else decode_crop(crop)
            acc = img.astype(np.float64) if acc is None else acc + img
            n += 1
    if acc is None:
        raise ValueError(f"{prep.path}: no face crops")
    return (acc / n).astype(np.float32)


def baseline_crops(name: str, crops: dict[int, np.ndarray], min_ref_gap: int = 5,
                   mean_crop: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """frame → filled crop for aligned crops ``{frame: (S, S, 3) uint8}`` of one clip (lower half
    replaced; the upper half is the frame's own). ``mean-fill`` needs ``mean_crop`` (``dataset_mean_crop``)."""
    from .submission import reference_frames

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    if not crops:
        return {}
    s = next(iter(crops.values())).shape[0]
    half = s // 2
    if name == "copy-reference":
        refs = reference_frames(crops, min_ref_gap)
        fill = {f: crops[refs[f]][half:] for f in crops}
    else:
        if name == "mean-fill":
            if mean_crop is None or mean_crop.shape[0] != s:
                raise ValueError("mean-fill needs the dataset mean crop at the crops' size")
            mean = mean_crop[half:]
        else:
            mean = np.mean(np.stack([c[half:].astype(np.float32) for c in crops.values()]), axis=0)
        lower = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
        fill = {f: lower for f in crops}
    out = {}
    for f, c in crops.items():
        o = c.copy()
        o[half:] = fill[f]
        out[f] = o
    return out


def write_baseline(name: str, prep_out, out_dir, clip_ids=None, audio_from=None, min_ref_gap: int = 5,
                   progress: bool = True) -> list[Path]:
    """Write the ``name`` baseline submission for the clips of ``prep_out``; returns the paths."""
    from prep.output import decode_crop

    from .data import open_prep
    from .submission import clip_frame_rows, driving_audio, list_clips, output_path, render_clip

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    prep = open_prep(prep_out)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = list_clips(prep, clip_ids)
    mean_crop = dataset_mean_crop(prep) if name == "mean-fill" else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc=name, unit="clip", dynamic_ncols=True)
    written = []
    for clip in clips:
        audio = driving_audio(prep, clip, audio_from)
        n = min(clip.num_frames, audio.num_frames)
        rows = clip_frame_rows(prep, clip.clip_id)
        crops = {f: decode_crop(r["crop"]) for f, r in rows.items()}
        filled = baseline_crops(name, crops, min_ref_gap, mean_crop)
        written.append(render_clip(clip, rows, n, audio.wav, output_path(out_dir, clip.clip_id), filled.get))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    log.info("%s: wrote %d videos to %s", name, len(written), out_dir)
    return written


__all__ = ["BASELINES", "baseline_crops", "dataset_mean_crop", "write_baseline"]
