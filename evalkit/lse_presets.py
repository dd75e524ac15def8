"""Named, versioned LSE presets: which upstream script an LSE number reproduces, frozen in one place.

A preset bundles every setting of one upstream script: how the submitted video reaches the face detector
(codec round trips), the detector and its scale, scene detection, tracking thresholds, the crop, the
crop file's codec, how the scorer reads frames and audio back, and how per-track scores are reported.
``EvalConfig.lse_preset`` selects one (``--lse-preset NAME``); its :meth:`LSEPreset.protocol` is part of
the LSE metrics' protocol, so numbers made under different presets never rank together. Change a preset
only by adding a new version.

- ``fast`` (the default): talkbench's own path, no codec round trips: the reference's aligned crop, or
  syncnet_python's tracked crop on the decoded frames (``--lse-crop syncnet-pipeline``). Fast and
  deterministic, but not any upstream script's numbers.
- ``syncnet_python``: ``run_pipeline.py`` + ``run_syncnet.py`` (joonson/syncnet_python).
- ``wav2lip-real``: Wav2Lip's ``calculate_scores_real_videos.sh`` (syncnet_python's ``run_pipeline.py``, then
  ``calculate_scores_real_videos.py`` with ``SyncNetInstance_calc_scores``): the same crops as
  ``syncnet_python``; it prints ``LSE-D LSE-C`` per track.
- ``wav2lip-lrs``: Wav2Lip's ``calculate_scores_LRS.py``: no face detection, the whole frame resized to 224
  (for face-centred LRS2/LRS3/LRW videos), one score per video.
- ``latentsync``: LatentSync's ``eval/eval_sync_conf.py`` with ``eval/syncnet_detect.py``: tracks of > 50
  frames, H.264 + AAC intermediate files, the mean over tracks; it reports LSE-C (and ``int(mean)`` offset).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

AGGREGATIONS = ("mean", "best")


@dataclass(frozen=True)
class LSEPreset:
    name: str
    version: str
    source: str  # the upstream files this preset reproduces
    pipeline: str  # "fast" | "tracked" (detect, scenes, track, crop) | "whole-frame"
    # stage 1: the converted video the detector and the crops read (run_pipeline's video.avi)
    convert_container: str | None = None  # "avi" (MPEG-4 Part 2 + MP3) | "mp4" (H.264 CRF 23 + AAC)
    convert_qscale: int | None = 2
    frames_qscale: int | None = 2  # JPEGs the detector and crops read (ffmpeg -qscale:v)
    detector: str | None = None
    facedet_scale: float | None = None
    det_conf: float | None = None
    scene_detection: str | None = None
    min_track: int | None = None
    num_failed_det: int | None = None
    min_face_size: int | None = None
    iou_threshold: float | None = None
    median_kernel: int | None = None
    crop_scale: float | None = None
    crop_fourcc: str | None = None  # cv2.VideoWriter fourcc of the crop file
    crop_audio: str | None = None  # "pcm" (copied) | "aac" (re-encoded)
    # stage 2: the scorer (SyncNetInstance.evaluate or its copies)
    score_frames_qscale: int | None = None  # None: ffmpeg's image2/mjpeg defaults (200 kb/s rate control)
    score_resize: int | None = None  # cv2.resize of each read-back frame (Wav2Lip / LatentSync)
    vshift: int = 15
    reports: str = "offset, LSE-D, LSE-C"
    track_aggregation_default: str = "mean"
    notes: str = ""

    def protocol(self) -> dict:
        """Every setting (the fields themselves: a new constant here is a new protocol) + FFmpeg versions."""
        from .frame_io import ffmpeg_versions

        d = {k: v for k, v in asdict(self).items() if v is not None and k != "track_aggregation_default"}
        if self.pipeline != "fast":
            import cv2

            d["ffmpeg_libraries"] = ffmpeg_versions()
            d["opencv"] = cv2.__version__
            if self.scene_detection:
                import scenedetect

                d["scenedetect"] = scenedetect.__version__
        return d


_TRACKED = dict(pipeline="tracked", detector="s3fd", facedet_scale=0.25, det_conf=0.9,
                scene_detection="PySceneDetect ContentDetector (defaults) on the converted video",
                num_failed_det=25, min_face_size=100, iou_threshold=0.5, median_kernel=13, crop_scale=0.4)

PRESETS: dict[str, LSEPreset] = {p.name: p for p in (
    LSEPreset(name="fast", version="fast-1", source="talkbench evalkit (no upstream script)", pipeline="fast",
              convert_qscale=None, frames_qscale=None,
              notes="talkbench's default: crops straight from the decoded frames (the reference's aligned crop, "
                    "or --lse-crop syncnet-pipeline), no codec round trips; not an upstream script's numbers"),
    LSEPreset(name="syncnet_python", version="syncnet_python-1",
              source="joonson/syncnet_python run_pipeline.py + run_syncnet.py (SyncNetInstance.evaluate)",
              convert_container="avi", min_track=100, crop_fourcc="XVID", crop_audio="pcm", **_TRACKED,
              reports="offset and confidence per track (offsets.txt); min dist logged",
              notes="every track is scored; run_syncnet.py prints each, talkbench aggregates them explicitly"),
    LSEPreset(name="wav2lip-real", version="wav2lip-real-1",
              source="Rudrabha/Wav2Lip evaluation/scores_LSE/calculate_scores_real_videos.sh (syncnet_python "
                     "run_pipeline.py, then calculate_scores_real_videos.py + SyncNetInstance_calc_scores.py)",
              convert_container="avi", min_track=100, crop_fourcc="XVID", crop_audio="pcm", score_resize=224,
              **_TRACKED, reports="'LSE-D LSE-C' per track, appended to all_scores.txt"),
    LSEPreset(name="wav2lip-lrs", version="wav2lip-lrs-1",
              source="Rudrabha/Wav2Lip evaluation/scores_LSE/calculate_scores_LRS.py + SyncNetInstance_calc_scores.py",
              pipeline="whole-frame", convert_qscale=None, frames_qscale=None, score_resize=224,
              reports="mean over videos of LSE-C and LSE-D (one score per video)",
              notes="no face detection: for face-centred LRS2/LRS3/LRW-style videos only"),
    LSEPreset(name="latentsync", version="latentsync-1",
              source="bytedance/LatentSync eval/eval_sync_conf.py + eval/syncnet_detect.py + "
                     "eval/syncnet/syncnet_eval.py",
              convert_container="mp4", min_track=50, crop_fourcc="mp4v", crop_audio="aac", score_resize=224,
              **_TRACKED, reports="mean over tracks of LSE-C and int(mean) of the offsets",
              notes="libx264 runs single-threaded here; upstream's default thread count changes its bitstream"),
)}


def get_preset(name: str) -> LSEPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown LSE preset {name!r}; known: {', '.join(PRESETS)}") from None


__all__ = ["LSEPreset", "PRESETS", "AGGREGATIONS", "get_preset"]
