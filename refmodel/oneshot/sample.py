"""``talkbench sample RUN PREP_OUT --out SUB`` for the one-shot model: benchmark submissions.

Each clip is generated from **one** frame of it (one-shot): the reference frame is the valid frame nearest
25 % of the clip whose eyes are open (blink target < 0.15), its full source frame decoded from the clip's
sha256-checked source video. The driving audio is the clip's own or ``audio_from``'s (a clip id or a file:
``refmodel.submission.driving_audio``); the video has ``min(clip, audio)`` frames, at the source's size, so
evalkit cuts its crops with the reference affines as for every submission.

Pose and blinks (``pose``): ``"teacher"`` takes them from the clip itself (each frame's stored crop affine
relative to the reference frame's moves the head; its 3DMM pose and its autoencoder blink code are the
renderer's condition) — the reconstruction protocol, scored with PSNR / SSIM / LMD; ``"sampled"`` draws
them from the motion VAE — the cross protocol (sync, FID, motion statistics). ``"auto"`` (default):
teacher-forced with the clip's own audio, sampled with ``audio_from``. ``sample_report.json`` records the
mode, reference frame and the blink / head-motion statistics of the attributes used, per clip.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .generate import Attributes, SourceFace

log = logging.getLogger(__name__)

POSE_MODES = ("auto", "teacher", "sampled")


def reference_frame(series) -> int:
    """The one-shot identity frame of a clip (see the module docstring)."""
    ok = np.flatnonzero(series.valid & (series.blink < 0.15))
    ok = ok if len(ok) else np.flatnonzero(series.valid)
    target = 0.25 * (series.num_frames - 1)
    return int(min(ok, key=lambda f: (abs(f - target), f)))


def clip_source(prep, series, frame: int) -> SourceFace:
    """:class:`SourceFace` of frame ``frame`` of a clip (its source video frame and stored face rows)."""
    from prep import media
    from prep.output import decode_crop

    clip = prep.clip(series.clip_id)
    chunk = next(iter(media.iter_frames(prep.verified_source(clip), start=frame, stop=frame + 1)))
    return SourceFace(np.ascontiguousarray(chunk.frames[0]), decode_crop(series.crops[frame]),
                      series.affine[frame].astype(np.float64), series.landmarks_src[frame].astype(np.float64),
                      series.mm_pose[frame].astype(np.float64), series.mm_exp[frame], series.radius)


def _fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rows where ``valid`` is False take the nearest valid row's value."""
    idx = np.flatnonzero(valid)
    nearest = idx[np.abs(np.arange(len(valid))[:, None] - idx[None, :]).argmin(1)]
    return values[nearest]


def teacher_attributes(model, series, ref: int, lip: np.ndarray) -> Attributes:
    """The clip's own pose and blinks for its first ``len(lip)`` frames, relative to frame ``ref``."""
    from .composite import relative_similarity

    n = len(lip)
    _, blink = model.ae.codes(np.nan_to_num(series.mm_exp))
    valid = series.valid & np.isfinite(series.affine).all(axis=(1, 2))
    pose = _fill_invalid(series.pose, valid)
    aff = _fill_invalid(series.affine.astype(np.float64), valid)
    blink = _fill_invalid(blink, valid)
    sims = np.stack([relative_similarity(aff[t], aff[ref]) for t in range(n)])
    return Attributes(lip, blink[:n].astype(np.float32), (pose[:n] - pose[ref]).astype(np.float32), sims)


def attribute_stats(attrs: Attributes, threshold: float = 0.25) -> dict:
    from .motion import blink_events

    seconds = len(attrs) / 25.0
    return {"blinks_per_10s": 10.0 * len(blink_events(attrs.blink, threshold)) / max(seconds, 1e-9),
            "roll_std_deg": float(np.degrees(attrs.pose_rel[:, 2].std())),
            "shift_std_radius": float(np.sqrt((attrs.pose_rel[:, 3:5].std(0) ** 2).sum()))}


def sample_videos(checkpoint, prep_out, out_dir, clip_ids=None, audio_from=None, steps: int | None = None,
                  seed: int = 0, device: str = "auto", progress: bool = True, pose: str = "auto",
                  batch_size: int = 32) -> list[Path]:
    """Write ``<clip_id>.mp4`` for each clip (all clips by default); returns the paths."""
    from prep import audio as A
    from prep import media
    from refmodel.data import open_prep
    from refmodel.submission import driving_audio, list_clips, output_path
    from refmodel.train import pick_device
    from talkbase.fileio import atomic_write_text

    from .features import load_series
    from .generate import lip_codes_from_audio, render_frames, sampled_attributes
    from .train import load_model

    if pose not in POSE_MODES:
        raise ValueError(f"pose must be one of {POSE_MODES}, got {pose!r}")
    prep = open_prep(prep_out)
    model = load_model(checkpoint)
    dev = pick_device(device)
    model.to(dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(checkpoint), "model": "oneshot3dmm", "seed": int(seed), "audio_from": audio_from,
              "pose": pose, "noise": "same x_T for every frame of a clip", "clips": {}}
    written = []
    for clip in list_clips(prep, clip_ids):
        series = load_series(prep, clip_ids=[clip.clip_id], crops=True)[0]
        ref = reference_frame(series)
        source = clip_source(prep, series, ref)
        audio = driving_audio(prep, clip, audio_from)
        n = min(clip.num_frames, audio.num_frames)
        lip = lip_codes_from_audio(model, audio.mel, n)
        mode = ("teacher" if audio_from is None else "sampled") if pose == "auto" else pose
        attrs = teacher_attributes(model, series, ref, lip) if mode == "teacher" else sampled_attributes(
            model, source, lip, seed)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc=f"sample {clip.clip_id}", unit="frame", dynamic_ncols=True)
        path = media.write_video(output_path(out_dir, clip.clip_id),
                                 render_frames(model, source, attrs, seed, steps, dev, bar, batch_size),
                                 audio.wav[:A.num_samples(n)])
        if bar is not None:
            bar.close()
        written.append(path)
        report["clips"][clip.clip_id] = {"frames": n, "reference_frame": ref, "pose": mode,
                                         "driving_audio": audio.name, **attribute_stats(attrs)}
        log.info("oneshot3dmm: sampled %s (%d frames, %s pose, reference frame %d)", path, n, mode, ref)
    atomic_write_text(out_dir / "sample_report.json", json.dumps(report, indent=2) + "\n")
    return written


__all__ = ["sample_videos", "reference_frame", "clip_source", "teacher_attributes", "POSE_MODES"]
