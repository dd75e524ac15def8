"""The frame and audio I/O of the upstream LSE scripts, emulated with PyAV's libavcodec and OpenCV.

syncnet_python, Wav2Lip and LatentSync never hand frames to SyncNet directly: they shell out to the
``ffmpeg`` command line, write videos with ``cv2.VideoWriter`` and read JPEG files back with
``cv2.imread``. Each lossy step moves LSE, so a preset that reproduces one of those scripts has to make
the same round trips. No ``ffmpeg`` binary is needed: PyAV bundles the same libavcodec / libavformat /
libswscale / libswresample that the command line drives, and the command line's choices are spelled out
here:

- ``ffmpeg -i SRC -qscale:v 2 -async 1 -r 25 video.avi`` (:func:`transcode`): MPEG-4 Part 2 (the AVI
  muxer's default video codec; H.264 CRF 23 for ``.mp4``, whose muxer defaults to libx264, which ignores
  ``-qscale``) at a fixed quantiser of 2, audio in the container's default codec (MP3 via libmp3lame for
  AVI, AAC for MP4). The command line sets ``frame->quality`` to 2·118 on every frame, which PyAV cannot;
  the same encoding decisions come from rate control clamped to that lambda (``lmin = lmax = 236``,
  ``qmin = qmax = 2``): decoded frames are identical to FFmpeg 9.0.2's (``tests/evalkit/test_frame_io.py``).
- ``ffmpeg -i V [-qscale:v 2] -threads 1 -f image2 %06d.jpg`` (:func:`extract_jpegs`): the decoded
  frames are converted to full-range ``yuvj420p`` by swscale (bicubic, as the command line's auto-inserted
  scaler) and encoded by the MJPEG encoder, either at a fixed quantiser or, without ``-qscale``, with
  libavcodec's defaults (200 kb/s rate control at 25 fps); the image2 muxer is constant frame rate, so a
  frame whose timestamp skips slots fills them (the command line's ``dup``). Files are never written: the
  JPEG bytes go straight to ``cv2.imdecode``, the decoder ``cv2.imread`` uses.
- ``ffmpeg -i V -ac 1 -vn -acodec pcm_s16le -ar 16000 audio.wav`` (:func:`extract_audio`): libswresample
  to int16 mono 16 kHz.
- ``cv2.VideoWriter(…, fourcc, 25, (224, 224))`` (:func:`write_cv2_video`): OpenCV itself (its bundled
  FFmpeg), as upstream calls it.

Where this cannot be bit-exact (measured in ``docs/LSE_PRESETS.md``): the bundled FFmpeg / OpenCV
versions differ from whatever a paper used (the MJPEG and MPEG-4 encoders have been stable for years;
libx264 output also depends on its thread count, pinned here to 1); ``-async 1`` only pads or trims the
start of the audio, which these files do not need; audio decoded from AAC can differ by ≤ 2 LSB on
~0.01 % of samples from FFmpeg 9.0.2's command line.
"""
from __future__ import annotations

import fractions
import logging
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

FPS = 25
QP2LAMBDA = 118  # FF_QP2LAMBDA
CLI_SCALE_FLAGS = "bicubic"  # the ffmpeg command line's default sws_flags for auto-inserted scalers
TIME_BASE = fractions.Fraction(1, FPS)


def ffmpeg_versions() -> dict:
    """The libav* versions PyAV bundles (recorded in every preset's protocol)."""
    import av

    return {k: ".".join(map(str, v)) for k, v in sorted(av.library_versions.items())
            if k in ("libavcodec", "libavformat", "libswscale", "libswresample")}


def fixed_quantiser(q: int) -> dict:
    """Encoder options equal to the command line's ``-qscale:v q`` for libavcodec's MPEG-family encoders."""
    lam = str(int(q) * QP2LAMBDA)
    return {"qmin": str(int(q)), "qmax": str(int(q)), "lmin": lam, "lmax": lam}


class _Converter:
    """The command line's auto-inserted scaler: frames of any format to ``pix_fmt`` (swscale, bicubic)."""

    def __init__(self, template, pix_fmt: str):
        import av

        self.graph = av.filter.Graph()
        src = self.graph.add_buffer(template=template)
        scale = self.graph.add("scale", f"flags={CLI_SCALE_FLAGS}")
        fmt = self.graph.add("format", f"pix_fmts={pix_fmt}")
        sink = self.graph.add("buffersink")
        src.link_to(scale)
        scale.link_to(fmt)
        fmt.link_to(sink)
        self.graph.configure()

    def __call__(self, frame):
        self.graph.push(frame)
        return self.graph.pull()


def _slots(frames, time_base_of) -> Iterator[tuple[int, object]]:
    """Constant-frame-rate output slots of decoded frames, as the command line's CFR vsync fills them: a frame
    ``delta0`` slots past the next free one first repeats the previous frame ``llrint(delta0 − 0.6)`` times,
    then is written ``llrint(delta0 + 1)`` − that many times; one more than 1.1 slots early is dropped."""
    nxt, origin, prev = 0, None, None
    for frame in frames:
        t = frame.pts * time_base_of(frame) if frame.pts is not None else None
        if origin is None:
            origin = t if t is not None else 0
        delta0 = float(nxt if t is None else (t - origin) * FPS) - nxt
        if -0.6 <= delta0 < 0:  # a little early: shown at the next slot
            delta0 = 0.0
        delta = delta0 + 1
        if delta < -1.1:
            continue
        nb, nb0 = 1, 0
        if delta > 1.1:
            nb = int(np.rint(delta))
            nb0 = int(np.rint(delta0 - 0.6)) if delta0 > 1.1 else 0
        for k in range(nb):
            yield nxt, (prev if k < nb0 and prev is not None else frame)
            nxt += 1
        prev = frame


def extract_jpegs(path, qscale: int | None = None) -> list[bytes]:
    """JPEG bytes of every output frame of ``ffmpeg -i path [-qscale:v Q] -threads 1 -f image2 %06d.jpg``."""
    import av

    out: list[bytes] = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        enc = conv = None
        frames = c.decode(stream)
        for i, frame in _slots(frames, lambda f: f.time_base or stream.time_base):
            if enc is None:
                enc = av.CodecContext.create("mjpeg", "w")
                enc.width, enc.height = frame.width, frame.height
                enc.pix_fmt = "yuvj420p"
                enc.time_base = TIME_BASE
                enc.framerate = FPS
                enc.thread_count = 1
                enc.color_range = 2  # full range (JPEG)
                if qscale is not None:
                    enc.options = fixed_quantiser(qscale)
                conv = _Converter(stream, "yuvj420p")
            f = conv(frame)
            f.pts, f.time_base = i, TIME_BASE
            out.extend(bytes(p) for p in enc.encode(f))
        if enc is not None:
            out.extend(bytes(p) for p in enc.encode(None))
    return out


def decode_jpegs(jpegs: list[bytes], resize: int | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 BGR frames as ``cv2.imread`` reads the files (``cv2.resize`` bilinear to
    ``resize`` × ``resize`` when given, as Wav2Lip's and LatentSync's scorers do)."""
    import cv2

    frames = []
    for b in jpegs:
        img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("undecodable JPEG frame")
        frames.append(cv2.resize(img, (resize, resize)) if resize else img)
    if not frames:
        raise ValueError("no frame extracted")
    return np.stack(frames)


def extract_audio(path) -> np.ndarray:
    """int16 mono 16 kHz samples of ``ffmpeg -i path -ac 1 -vn -acodec pcm_s16le -ar 16000 audio.wav``."""
    import av

    parts = []
    with av.open(str(path)) as c:
        if not c.streams.audio:
            raise ValueError(f"{Path(path).name}: no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in c.decode(c.streams.audio[0]):
            parts.extend(g.to_ndarray().reshape(-1) for g in resampler.resample(frame))
        parts.extend(g.to_ndarray().reshape(-1) for g in resampler.resample(None))
    return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)


def transcode(src, dst, qscale: int = 2, x264_threads: int = 1) -> None:
    """``ffmpeg -y -i src -qscale:v 2 -async 1 -r 25 dst`` for ``dst`` ending in ``.avi`` (MPEG-4 Part 2 at a
    fixed quantiser + MP3) or ``.mp4`` (libx264 CRF 23, which ignores ``-qscale``, + AAC).

    Frames go to the encoder in their decoded pixel format (converted to yuv420p by swscale when they are
    not); a 25 fps source passes through frame for frame. Sources at other rates are sampled at 25 fps by
    timestamp (the last frame shown at each instant), which is where the command line's ``-r`` may pick
    other frames.
    """
    import av

    dst = Path(dst)
    mp4 = dst.suffix.lower() == ".mp4"
    with av.open(str(src)) as ic, av.open(str(dst), "w", format="mp4" if mp4 else "avi") as oc:
        vs = ic.streams.video[0]
        astream = ic.streams.audio[0] if ic.streams.audio else None
        ov = oc.add_stream("libx264" if mp4 else "mpeg4", rate=FPS)
        ov.width, ov.height = vs.codec_context.width, vs.codec_context.height
        ov.pix_fmt = "yuv420p"
        ov.codec_context.time_base = TIME_BASE
        if mp4:
            ov.codec_context.options = {"crf": "23", "preset": "medium"}
            ov.codec_context.thread_count = x264_threads
        else:
            ov.codec_context.options = fixed_quantiser(qscale)
        oa = None
        if astream is not None:
            acc = astream.codec_context
            oa = oc.add_stream("aac" if mp4 else "libmp3lame", rate=acc.sample_rate, layout=acc.layout.name)
            supported = [f.name for f in (oa.codec_context.codec.audio_formats or ())]
            if acc.format.name in supported:  # the command line keeps the decoder's format when it can
                oa.codec_context.format = acc.format.name
        conv = None
        next_t, index = 0.0, 0
        streams = [vs] + ([astream] if astream is not None else [])
        for pkt in ic.demux(*streams):
            for frame in pkt.decode():
                if pkt.stream.type == "audio":
                    for p in oa.encode(frame):
                        oc.mux(p)
                    continue
                t = float(frame.pts * frame.time_base) if frame.pts is not None else index / FPS
                if abs(float(vs.average_rate or FPS) - FPS) > 1e-3:  # other rates: by timestamp
                    if t + 1e-6 < next_t:
                        continue
                    next_t += 1.0 / FPS
                if frame.format.name != "yuv420p":
                    conv = conv or _Converter(vs, "yuv420p")
                    frame = conv(frame)
                frame.pts, frame.time_base = index, TIME_BASE
                index += 1
                for p in ov.encode(frame):
                    oc.mux(p)
        for p in ov.encode(None):
            oc.mux(p)
        if oa is not None:
            for p in oa.encode(None):
                oc.mux(p)


def read_video_frames(path) -> Iterator[np.ndarray]:
    """BGR frames of a video in decode order (what ``cv2.VideoCapture.read`` returns)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield img
    finally:
        cap.release()


def write_cv2_video(path, frames_bgr, fourcc: str, fps: int = FPS, size: int = 224) -> None:
    """``cv2.VideoWriter(path, fourcc, fps, (size, size))`` fed ``frames_bgr``, as upstream's ``crop_video``."""
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (size, size))
    if not w.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {fourcc} to {Path(path).name}")
    try:
        for f in frames_bgr:
            w.write(np.ascontiguousarray(f))
    finally:
        w.release()


def mux_audio(video_path, samples: np.ndarray, out_path, acodec: str) -> None:
    """``ffmpeg -i video -i audio.wav -c:v copy -c:a (copy|aac) out``: the video packets copied, int16 mono
    16 kHz ``samples`` as PCM (``pcm_s16le``, a copied WAV) or encoded with FFmpeg's AAC encoder (``aac``)."""
    import av

    out_path = Path(out_path)
    samples = np.asarray(samples, np.int16).reshape(1, -1)
    with av.open(str(video_path)) as ic, av.open(str(out_path), "w",
                                                 format="mp4" if out_path.suffix == ".mp4" else "avi") as oc:
        vin = ic.streams.video[0]
        vout = oc.add_stream_from_template(vin)
        oa = oc.add_stream(acodec, rate=16000, layout="mono")
        encoded = []
        if samples.size:
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, 0, fractions.Fraction(1, 16000)
            encoded = list(oa.encode(frame))
        encoded += list(oa.encode(None))
        for pkt in ic.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            oc.mux(pkt)
        for pkt in encoded:
            oc.mux(pkt)


__all__ = ["extract_jpegs", "decode_jpegs", "extract_audio", "transcode", "write_cv2_video", "read_video_frames",
           "mux_audio", "fixed_quantiser", "ffmpeg_versions", "FPS"]
