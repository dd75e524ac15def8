"""Small real shard sets for tests and benchmarks without running face detection.

Each clip's "aligned crop" is a fixed box around where the face is (the same box for every frame),
resized to ``crop_size``; its affine maps source pixels to crop pixels exactly as the prep job's does.
Audio features are the real ones (``prep.audio``), written with the real shard writers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Boxes (x0, y0, side) around the face in the shared clips (checked with dlib on sampled frames).
KNOWN_BOXES = {
    "w2l_input3": (140, 100, 240),
    "w2l_input4": (300, 60, 270),
}


@dataclass(frozen=True)
class ClipSpec:
    video: Path
    box: tuple[int, int, int]  # x0, y0, side in source pixels
    clip_id: str | None = None
    stop: int | None = None  # keep frames [0, stop): writes a trimmed source video beside the shards
    split: str = "train"


def box_affine(box, crop_size: int) -> np.ndarray:
    """2x3 source→crop affine of a square box."""
    x0, y0, side = box
    s = crop_size / side
    return np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], np.float32)


def crop_frame(frame: np.ndarray, box, crop_size: int) -> np.ndarray:
    import cv2

    return cv2.warpAffine(frame, box_affine(box, crop_size), (crop_size, crop_size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def build_fixed_crop_shards(clips: list[ClipSpec], out_dir, crop_size: int = 256,
                            frames_per_shard: int = 128) -> Path:
    """Write a prep-style output (clips/, frames/, manifest.json) for ``clips`` into ``out_dir``."""
    from prep import audio as A
    from prep import media
    from prep.schema import SCHEMA_VERSION
    from prep.shards import encode_crop, rows_to_table, write_shard_set
    from talkbase.fileio import atomic_write_json, sha256_file
    from talkbase.timebase import FPS, SAMPLE_RATE

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip_rows, frame_tables, total = [], [], 0
    for spec in clips:
        clip_id = spec.clip_id or Path(spec.video).stem
        frames = media.read_frames(spec.video, stop=spec.stop)
        source = Path(spec.video)
        wav = media.read_audio(source, num_frames=len(frames))
        if spec.stop is not None:  # the source the submission is pasted into must match the frames
            source = media.write_video(out_dir / "sources" / f"{clip_id}.mp4", frames, wav)
        info = media.probe(source)
        mel = A.melspectrogram(wav)
        mfcc = A.mfcc(wav)
        aff = box_affine(spec.box, crop_size)
        clip_rows.append(dict(
            clip_id=clip_id, source_path=str(Path(source).resolve()), source_sha256=sha256_file(source), split=spec.split,
            speaker=clip_id, fps=FPS, num_frames=len(frames), sample_rate=SAMPLE_RATE,
            duration_s=len(frames) / FPS, src_width=info.width, src_height=info.height,
            src_fps=info.src_fps, src_video_codec=info.video_codec, mel=mel, mel_shape=mel.shape,
            mfcc=mfcc, mfcc_shape=mfcc.shape, crop_size=crop_size, main_track="fixed box (test fixture)",
            qa_pass=True, qa_flags=[]))
        rows = []
        for i, fr in enumerate(frames):
            rows.append(dict(clip_id=clip_id, frame_index=i, crop=encode_crop(crop_frame(fr, spec.box, crop_size)),
                             face_found=True, num_faces=1, affine=aff,
                             box=np.array([spec.box[0], spec.box[1], spec.box[0] + spec.box[2],
                                           spec.box[1] + spec.box[2]], np.float32)))
        frame_tables.append(rows_to_table(rows, "frames"))
        total += len(rows)
    clip_shards = write_shard_set([rows_to_table(clip_rows, "clips")], out_dir / "clips", "clips",
                                  len(clip_rows), 1 << 20)
    frame_shards = write_shard_set(frame_tables, out_dir / "frames", "frames", total, frames_per_shard)
    atomic_write_json(out_dir / "manifest.json", {
        "schema_version": SCHEMA_VERSION, "config": {"crop_size": crop_size, "crop_codec": "jpeg"},
        "counts": {"clips": len(clip_rows), "frames": total, "failures": 0},
        "shards": {"clips": clip_shards, "frames": frame_shards}, "producer": "refmodel.testing"})
    return out_dir


def prep_trimmed_clips(videos_dir, out_root, num_frames: int | None = 60,
                       names=("w2l_input3", "w2l_input4")) -> Path:
    """Run the real prep job (``prep.job.run_prep``, inline, no 3DMM fit) on the first ``num_frames``
    frames of shared clips; returns the prep output. Reuses ``out_root/prep`` when already complete, so
    several test modules of one session share it."""
    from prep import media
    from prep.config import PrepConfig
    from prep.faces import FaceConfig
    from prep.job import run_prep

    out_root = Path(out_root)
    prep_out = out_root / "prep"
    if (prep_out / "manifest.json").exists():
        return prep_out
    src = out_root / "in"
    src.mkdir(parents=True, exist_ok=True)
    for name in names:
        video = Path(videos_dir) / f"{name}.mp4"
        target = src / f"{name}.mp4"
        if not target.exists():
            frames = media.read_frames(video, stop=num_frames)
            media.write_video(target, frames, media.read_audio(video, num_frames=len(frames)))
    cfg = PrepConfig(faces=FaceConfig(detect_every=10, fit_3dmm=False), frames_per_shard=64)
    run_prep(src, prep_out, cfg, scheduler="inline", progress=False)
    return prep_out


def shared_clip_specs(videos_dir, stop: int | None = None) -> list[ClipSpec]:
    """Specs for the two 480p shared clips (the ones with large faces)."""
    videos_dir = Path(videos_dir)
    return [ClipSpec(videos_dir / f"{name}.mp4", box, stop=stop) for name, box in KNOWN_BOXES.items()]


__all__ = ["ClipSpec", "KNOWN_BOXES", "box_affine", "crop_frame", "build_fixed_crop_shards", "shared_clip_specs",
           "prep_trimmed_clips"]
