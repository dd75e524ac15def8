"""One upstream LSE script run as a whole on one video: the preset's codec round trips, face detection,
scene detection, tracking, crop files and the scorer, each track scored (:func:`run_preset`).

``tracked`` presets (``syncnet_python``, ``wav2lip-real``, ``latentsync``) follow ``run_pipeline.py`` /
``syncnet_detect.py``:

1. the submitted video is converted as ``ffmpeg -qscale:v 2 -async 1 -r 25`` does (:func:`evalkit.frame_io.transcode`;
   ``video.avi`` or ``video.mp4``), its frames extracted as ``-qscale:v 2`` JPEGs and its audio as 16 kHz PCM;
2. S3FD (``sfd_face.pth``) on every JPEG read as ``cv2.imread`` → RGB, at ``facedet_scale`` 0.25, confidence > 0.9;
3. shots from PySceneDetect's ``ContentDetector`` on the converted video (the whole video when it finds no cut);
   shots shorter than ``min_track`` frames are skipped;
4. ``track_shot`` per shot (:func:`evalkit.syncnet_crop.track_faces`: IoU > 0.5, ≤ 25 missed detections, tracks of
   more than ``min_track`` detections whose mean box side exceeds 100 px);
5. each track's crops (:func:`evalkit.syncnet_crop.crop_frame` on the JPEG frames, 13-tap median-smoothed boxes,
   ``crop_scale`` 0.4, 224 × 224) written with ``cv2.VideoWriter`` (XVID ``.avi`` / mp4v ``.mp4``), remuxed
   with the track's audio (``-c:a copy`` PCM / ``-c:a aac``);
6. the scorer (``SyncNetInstance.evaluate`` or its copies): the crop file's frames extracted as JPEGs at FFmpeg's
   defaults, read back with ``cv2.imread`` (``cv2.resize`` to 224 for Wav2Lip / LatentSync), its audio as
   16 kHz PCM, then :func:`evalkit.metrics.lse.lse`.

``whole-frame`` (``wav2lip-lrs``) is step 6 on the submitted video itself.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from talkbase.timebase import SAMPLES_PER_FRAME

from . import frame_io
from .lse_presets import AGGREGATIONS, LSEPreset
from .syncnet_crop import CROP_SIZE, crop_frame, smooth_track, track_faces

log = logging.getLogger(__name__)

Detector = Callable[[np.ndarray], np.ndarray]  # one RGB uint8 frame -> (k, 5) x0, y0, x1, y1, score


@dataclass(frozen=True)
class TrackScore:
    """One face track's scores (frames ``start … stop − 1`` of the converted video)."""

    track: int
    start: int
    stop: int
    offset: int
    lse_d: float
    lse_c: float
    windows: int

    def to_dict(self) -> dict:
        return asdict(self)


class NoFaceTrack(ValueError):
    """A tracked preset found no face track (upstream writes no crop file and scores nothing)."""


# ---------------------------------------------------------------- scenes

def detect_scenes(path) -> list[tuple[int, int]]:
    """``run_pipeline.scene_detect``: PySceneDetect's ContentDetector (defaults) on ``path`` through its OpenCV
    backend; ``[(start, end)]`` frame ranges, the whole video when no cut is found."""
    from scenedetect import ContentDetector, SceneManager, open_video

    video = open_video(str(path))
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    if not scenes:
        scenes = [(video.base_timecode, video.base_timecode + video.duration)]
    return [(_frame_number(a), _frame_number(b)) for a, b in scenes]


def _frame_number(timecode) -> int:
    """A scenedetect FrameTimecode's frame number (``frame_num``; ``get_frames()`` before 0.6.7, deprecated since)."""
    return int(timecode.frame_num if hasattr(timecode, "frame_num") else timecode.get_frames())


# ---------------------------------------------------------------- tracks → crop files

def shot_tracks(detections: Sequence, scenes, preset: LSEPreset):
    """Tracks of every shot of at least ``min_track`` frames, in absolute frame numbers."""
    out = []
    for start, end in scenes:
        if end - start < preset.min_track:
            continue
        for t in track_faces(detections[start:end], min_track=preset.min_track, num_failed_det=preset.num_failed_det,
                             iou_threshold=preset.iou_threshold, min_face_size=preset.min_face_size):
            t.frames = t.frames + start
            out.append(t)
    return out


def write_crop_file(jpegs: list[bytes], track, audio: np.ndarray, preset: LSEPreset, stem: Path) -> Path:
    """``crop_video``: crops through ``cv2.VideoWriter``, then the track's audio muxed beside them."""
    cx, cy, half = smooth_track(track)

    def crops():
        for k, f in enumerate(track.frames):
            frame = frame_io.decode_jpegs([jpegs[int(f)]])[0]
            yield crop_frame(frame, cx[k], cy[k], half[k], preset.crop_scale)

    ext = ".avi" if preset.crop_fourcc == "XVID" else ".mp4"
    silent = stem.with_name(stem.name + "t" + ext)
    frame_io.write_cv2_video(silent, crops(), preset.crop_fourcc, size=CROP_SIZE)
    cut = audio[track.start * SAMPLES_PER_FRAME:track.stop * SAMPLES_PER_FRAME]  # -ss start/25 -to (last+1)/25
    out = stem.with_name(stem.name + ext)
    frame_io.mux_audio(silent, cut, out, "pcm_s16le" if preset.crop_audio == "pcm" else "aac")
    silent.unlink()
    return out


# ---------------------------------------------------------------- the scorer

def score_file(path, model, preset: LSEPreset) -> dict:
    """``SyncNetInstance.evaluate`` on a file: default-quality JPEGs read back with cv2, 16 kHz PCM audio."""
    from .metrics.lse import lse

    frames = frame_io.decode_jpegs(frame_io.extract_jpegs(path, qscale=preset.score_frames_qscale),
                                   resize=preset.score_resize)
    return lse(frames, frame_io.extract_audio(path), model, vshift=preset.vshift)


def _track_score(i, start, stop, r) -> TrackScore:
    return TrackScore(i, int(start), int(stop), int(r["offset"]), float(r["lse_d"]), float(r["lse_c"]),
                      int(r["num_windows"]))


def run_preset(video_path, preset: LSEPreset, model, detector: Detector | None = None,
               tmp_dir=None) -> list[TrackScore]:
    """Every track's offset / LSE-D / LSE-C for ``video_path`` under ``preset`` (in track order).

    ``detector``: one RGB frame → (k, 5) boxes (upstream's S3FD for the presets; tests may pass another).
    Raises :class:`NoFaceTrack` when a tracked preset finds no track.
    """
    if preset.pipeline == "whole-frame":
        return [_track_score(0, 0, 0, score_file(video_path, model, preset))]
    if preset.pipeline != "tracked":
        raise ValueError(f"preset {preset.name} is not an upstream pipeline")
    if detector is None:
        raise ValueError(f"preset {preset.name} needs a face detector")
    with tempfile.TemporaryDirectory(prefix="talkbench-lse-", dir=tmp_dir) as tmp:
        tmp = Path(tmp)
        converted = tmp / f"video.{preset.convert_container}"
        frame_io.transcode(video_path, converted, qscale=preset.convert_qscale)
        jpegs = frame_io.extract_jpegs(converted, qscale=preset.frames_qscale)
        audio = frame_io.extract_audio(converted)
        import cv2

        detections = [detector(cv2.cvtColor(frame_io.decode_jpegs([b])[0], cv2.COLOR_BGR2RGB)) for b in jpegs]
        tracks = shot_tracks(detections, detect_scenes(converted), preset)
        if not tracks:
            raise NoFaceTrack(f"{preset.name}: no face track of > {preset.min_track} frames and "
                              f"> {preset.min_face_size} px")
        out = []
        for i, track in enumerate(tracks):
            crop = write_crop_file(jpegs, track, audio, preset, tmp / f"{i:05d}")
            out.append(_track_score(i, track.start, track.stop, score_file(crop, model, preset)))
            crop.unlink()
        return out


def aggregate(tracks: Sequence[TrackScore], how: str) -> dict:
    """One video's offset / LSE-D / LSE-C from its tracks: ``mean`` (LatentSync: mean LSE-D / LSE-C,
    ``int(mean)`` offset) or ``best`` (the track with the highest LSE-C, as MoChaBench)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"track aggregation must be one of {AGGREGATIONS}, got {how!r}")
    if not tracks:
        raise NoFaceTrack("no track scored")
    if how == "best":
        t = max(tracks, key=lambda t: (t.lse_c, -t.track))
        return {"offset": t.offset, "lse_d": t.lse_d, "lse_c": t.lse_c, "num_windows": t.windows}
    return {"offset": int(np.mean([t.offset for t in tracks])), "lse_d": float(np.mean([t.lse_d for t in tracks])),
            "lse_c": float(np.mean([t.lse_c for t in tracks])), "num_windows": int(sum(t.windows for t in tracks))}


def s3fd_detector(path, scale: float, conf: float) -> Detector:
    """Upstream's S3FD (``sfd_face.pth`` at ``path``) as a one-frame detector."""
    from .inputs import s3fd

    det = s3fd(path)
    det.conf_th = conf

    def run(frame_rgb):
        return det.detect_one(frame_rgb, scale)
    return run


__all__ = ["run_preset", "aggregate", "detect_scenes", "shot_tracks", "score_file", "write_crop_file",
           "TrackScore", "NoFaceTrack", "s3fd_detector"]
