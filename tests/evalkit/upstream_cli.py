"""The upstream LSE scripts' file I/O through a real ``ffmpeg`` command line (the independent path).

Each function runs the exact command lines of run_pipeline.py / SyncNetInstance.evaluate /
syncnet_detect.py / calculate_scores_LRS.py with an ``ffmpeg`` binary (imageio-ffmpeg's, when installed),
writes the intermediate files upstream writes and reads them back with ``cv2.imread`` / ``wavfile.read``;
the tracking, cropping and scoring code is talkbench's (the part already checked against upstream on
given crops). Comparing :func:`run_preset_cli` with :func:`evalkit.lse_upstream.run_preset` measures only
the emulated frame and audio I/O.
"""
from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import numpy as np


def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


def _run(cmd):
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-nostdin", "-y", *map(str, cmd)], check=True)


def read_jpegs(folder, resize=None):
    import cv2

    out = []
    for f in sorted(glob.glob(os.path.join(folder, "*.jpg"))):
        img = cv2.imread(f)
        out.append(cv2.resize(img, (resize, resize)) if resize else img)
    return np.stack(out)


def read_wav(path):
    from scipy.io import wavfile

    return wavfile.read(str(path))[1]


def evaluate_cli(videofile, tmp: Path, model, preset):
    """SyncNetInstance.evaluate (or Wav2Lip's / LatentSync's copy) through the command line."""
    from evalkit.metrics.lse import lse

    d = tmp / "pytmp"
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    _run(["-i", videofile, "-threads", "1", "-f", "image2", d / "%06d.jpg"])
    _run(["-i", videofile, "-async", "1", "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", "16000", d / "audio.wav"])
    return lse(read_jpegs(d, preset.score_resize), read_wav(d / "audio.wav"), model, vshift=preset.vshift)


def run_preset_cli(video, tmp: Path, preset, model, detector):
    """run_pipeline.py (+ crop files) then the scorer on every track, all file I/O through ffmpeg / cv2."""
    import cv2

    from evalkit import lse_upstream
    from evalkit.syncnet_crop import crop_frame, smooth_track

    tmp.mkdir(parents=True, exist_ok=True)
    if preset.pipeline == "whole-frame":
        return [lse_upstream._track_score(0, 0, 0, evaluate_cli(video, tmp, model, preset))]
    conv = tmp / f"video.{preset.convert_container}"
    frames_dir = tmp / "pyframes"
    frames_dir.mkdir(exist_ok=True)
    _run(["-i", video, "-qscale:v", "2", "-async", "1", "-r", "25", conv])
    _run(["-i", conv, "-qscale:v", "2", "-threads", "1", "-f", "image2", frames_dir / "%06d.jpg"])
    _run(["-i", conv, "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", "16000", tmp / "audio.wav"])
    flist = sorted(glob.glob(str(frames_dir / "*.jpg")))
    dets = [detector(cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB)) for f in flist]
    tracks = lse_upstream.shot_tracks(dets, lse_upstream.detect_scenes(conv), preset)
    out = []
    ext = ".avi" if preset.crop_fourcc == "XVID" else ".mp4"
    for i, track in enumerate(tracks):
        cx, cy, half = smooth_track(track)
        w = cv2.VideoWriter(str(tmp / f"{i:05d}t{ext}"), cv2.VideoWriter_fourcc(*preset.crop_fourcc), 25, (224, 224))
        for k, f in enumerate(track.frames):
            w.write(crop_frame(cv2.imread(flist[int(f)]), cx[k], cy[k], half[k], preset.crop_scale))
        w.release()
        _run(["-i", tmp / "audio.wav", "-ss", "%.3f" % (track.start / 25), "-to", "%.3f" % (track.stop / 25),
              tmp / "audiotmp.wav"])
        acodec = "copy" if preset.crop_audio == "pcm" else "aac"
        _run(["-i", tmp / f"{i:05d}t{ext}", "-i", tmp / "audiotmp.wav", "-c:v", "copy", "-c:a", acodec,
              tmp / f"{i:05d}{ext}"])
        r = evaluate_cli(tmp / f"{i:05d}{ext}", tmp, model, preset)
        out.append(lse_upstream._track_score(i, track.start, track.stop, r))
    return out
