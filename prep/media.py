"""Decode any common video to frames at a fixed rate (25 fps) and audio at 16 kHz mono.

Frame resampling is by timestamp: output frame ``i`` is the source frame *shown* at time ``i / fps``
(the last source frame whose presentation time is <= that instant), with times measured from the
first video frame. This handles 29.97/30/50/60 fps and variable frame rate alike. Frames are streamed
in bounded chunks so a long 1080p video never needs all frames in memory.

Audio is decoded at its native rate, averaged to mono, resampled with a polyphase filter
(:mod:`prep.resample`, scipy's ``resample_poly`` in numpy, so the result does not depend on FFmpeg's
resampler version) and trimmed/padded to exactly
``num_frames / fps`` seconds, aligned to the first video frame.

The decoder is PyAV for every codec; decord (the optional extra ``decord``) is not used.
``python bench/decode_backends.py`` (decord 0.6.0 vs PyAV 18.1.0, the four shared clips, 2026-12-01, on the
2-core machine loaded by a parallel test run) found decord's frames identical to these bit for bit (same output
count, same source frame at every output instant from its ``get_frame_timestamp``, max |diff| 0 on all 1112
frames, H.264 and HEVC; ``tests/prep/test_decord_backend.py`` checks it), but slower like for like: on one thread
(PyAV's codec and its swscale RGB conversion both at 1) decord / PyAV is 0.75-0.81x in frames per second on
every clip. Against this module as it runs (automatic codec and swscale threads) decord is 1.5-2.0x in wall
time on the 480p H.264 clips (1.0-1.1x per CPU second) and 0.84-0.91x on the 1080x1920 HEVC ones; the H.264
gain is PyAV's threaded RGB conversion waiting for a busy core (``to_ndarray`` defaults to automatic swscale
threads), not decord's decoding: single-threaded PyAV beats threaded decord on every clip. So the RGB
conversion here runs on one swscale thread (:func:`rgb_array`; the same pixels, checked on the shared clips).
"""
from __future__ import annotations

import errno
import logging
import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from talkbase.timebase import FPS, SAMPLE_RATE

from .resample import resample_poly
from .video_write import write_video  # noqa: F401 (re-exported: the writer lives in its own module)
from .errors import (MediaError, NoAudioStream, NoVideoStream, NotAFile, UndecodableMedia,
                     ZeroFrames)

log = logging.getLogger(__name__)
_EPS = 1e-6  # seconds; absorbs float rounding of timestamps
# a decoded frame larger than this is refused before it is converted (every frame is checked: a stream can
# switch resolution in-band after a small first SPS); callers with their own limits pass ``max_pixels``
MAX_FRAME_PIXELS = 4096 * 2304
# audio longer than the video by more than this (seconds, and more than twice the video) is refused
MAX_AUDIO_EXCESS_S = 60.0


@dataclass(frozen=True)
class MediaInfo:
    path: str
    width: int
    height: int
    src_fps: float  # average rate as declared by the container
    duration_s: float  # video duration (container estimate; exact after decoding)
    est_num_frames: int  # estimated number of frames at the output rate
    video_codec: str
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_codec: str | None
    rotation: int = 0  # display rotation applied to every decoded frame (degrees counter-clockwise)
    audio_duration_s: float | None = None  # container estimate

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FrameChunk:
    """``frames[j]`` is output frame ``start + j`` (RGB uint8, H×W×3)."""

    start: int
    frames: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + len(self.frames)


def _check_file(path: Path) -> None:
    if not path.exists():
        if os.path.islink(path):
            try:
                os.stat(path)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise NotAFile(path, "symlink loop") from None
            raise NotAFile(path, "dangling symlink (its target does not exist)")
        raise NotAFile(path, "file does not exist")
    if not path.is_file():
        raise NotAFile(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise NotAFile(path, "not readable (permission denied)")
    if path.stat().st_size == 0:
        raise NotAFile(path, "empty file (0 bytes)")


def _open(path) -> av.container.InputContainer:
    path = Path(path)
    _check_file(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except PermissionError as e:
        raise NotAFile(path, f"not readable ({e.strerror})") from e
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise UndecodableMedia(path, f"not a readable media container ({type(e).__name__}: {e})") from e


def _video_stream(container, path):
    if not container.streams.video:
        raise NoVideoStream(path, "no video stream")
    return container.streams.video[0]


def probe(path) -> MediaInfo:
    """Container-level facts about a file, without decoding every frame."""
    with _open(path) as c:
        vs = _video_stream(c, path)
        cc = vs.codec_context
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        if vs.duration is not None and vs.time_base is not None:
            dur = float(vs.duration * vs.time_base)
        elif c.duration is not None:
            dur = c.duration / av.time_base
        else:
            dur = (vs.frames or 0) / float(rate)
        a = c.streams.audio[0] if c.streams.audio else None
        rot = _first_rotation(c, vs)
        w, h = (int(cc.height), int(cc.width)) if rot in (90, 270) else (int(cc.width), int(cc.height))
        a_dur = float(a.duration * a.time_base) if a is not None and a.duration and a.time_base else None
        return MediaInfo(
            path=str(path), width=w, height=h, src_fps=float(rate),
            duration_s=dur, est_num_frames=num_output_frames(dur),
            video_codec=cc.name, has_audio=a is not None,
            audio_sample_rate=int(a.codec_context.sample_rate) if a else None,
            audio_channels=int(a.codec_context.channels) if a else None,
            audio_codec=a.codec_context.name if a else None, rotation=rot, audio_duration_s=a_dur,
        )


def _rotation(frame) -> int:
    """The frame's display rotation (counter-clockwise degrees: 0, 90, 180 or 270; phones write it)."""
    try:
        r = frame.rotation
    except Exception:  # noqa: BLE001 - no or unreadable display matrix
        return 0
    return int(round((r or 0) / 90.0)) % 4 * 90


def _first_rotation(container, vs) -> int:
    try:
        for frame in container.decode(vs):
            return _rotation(frame)
    except av.error.FFmpegError:
        pass
    return 0


def check_audio_length(info: MediaInfo) -> str | None:
    """Why the audio stream is absurdly longer than the video (a resource bomb), or None."""
    a, v = info.audio_duration_s, info.duration_s
    if a is not None and a > v + MAX_AUDIO_EXCESS_S and a > 2 * v:
        return f"audio lasts {a:.1f}s but the video {v:.1f}s (more than {MAX_AUDIO_EXCESS_S:.0f}s longer)"
    return None


def num_output_frames(duration_s: float, fps: float = FPS) -> int:
    """Output frames of a video lasting ``duration_s``: every ``i`` with ``i / fps < duration``."""
    return max(0, math.ceil(duration_s * fps - 1e-4))


def _frame_time(frame, time_base, origin_pts, index, rate) -> float:
    if frame.pts is None or time_base is None:
        return index / float(rate)
    return float((frame.pts - origin_pts) * time_base)


def _origin_pts(path) -> int:
    """pts of the first decodable video frame: time zero for every reader of this file."""
    with _open(path) as c:
        vs = _video_stream(c, path)
        try:
            for frame in c.decode(vs):
                return frame.pts if frame.pts is not None else 0
        except av.error.FFmpegError as e:
            raise UndecodableMedia(path, f"video stream cannot be decoded ({e})") from e
    raise ZeroFrames(path, "video stream has zero decodable frames")


def _show_until(img, until: float, i: int, stop, fps: float, buf: list, buf_start: int, chunk_size: int,
                pack=np.stack):
    """Output frames ``i, i+1, …`` (before ``stop``) whose instant is before ``until`` show ``img``; full chunks
    are yielded. Returns the next output index and the open chunk."""
    while (stop is None or i < stop) and i / fps < until:
        buf.append(img)
        i += 1
        if len(buf) >= chunk_size:
            yield FrameChunk(buf_start, pack(buf))
            buf_start += len(buf)
            buf = []
    return i, buf, buf_start


def rgb_array(frame, rotation: int = 0) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB (FFmpeg's conversion: the frames every reader sees), turned by
    its display ``rotation`` (counter-clockwise degrees)."""
    img = frame.to_ndarray(format="rgb24", threads=1)  # swscale's own threads only wait for a core under load
    return np.ascontiguousarray(np.rot90(img, rotation // 90)) if rotation else img


def _iter_converted(path, fps, chunk_size, start, stop, convert, pack, max_chunk_bytes=None,
                    max_pixels=MAX_FRAME_PIXELS):
    """The 25 fps resampling of :func:`iter_frames` with each shown source frame ``convert(frame, rotation)``-ed
    once and a chunk's frames ``pack``-ed (``np.stack``: RGB arrays; ``list``: any frame objects)."""
    path = Path(path)
    origin = _origin_pts(path) if start > 0 else None  # from the start: time zero is this decode's first frame
    with _open(path) as c:
        vs = _video_stream(c, path)
        vs.thread_type = "AUTO"
        tb = vs.time_base
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        if start > 0 and tb is not None:
            target = origin + int((start / fps - 1.0) / tb)
            c.seek(max(target, origin), stream=vs, backward=True, any_frame=False)
        buf: list = []
        buf_start = start
        i = start  # next output index to emit
        prev = None  # (time, converted frame, duration) of the last source frame seen
        n_src = 0
        size = None
        try:
            for frame in c.decode(vs):
                if size is None:
                    size = (frame.width, frame.height)
                    if origin is None:  # as _origin_pts: the first decodable frame's pts
                        origin = frame.pts if frame.pts is not None else 0
                    if max_pixels is not None and frame.width * frame.height > max_pixels:
                        raise UndecodableMedia(path, f"frame size {frame.width}x{frame.height} is more than "
                                                     f"{max_pixels} pixels")
                    rotation = _rotation(frame)
                elif (frame.width, frame.height) != size:
                    raise UndecodableMedia(path, f"frame size changes mid-stream from {size[0]}x{size[1]} to "
                                                 f"{frame.width}x{frame.height} (source frame {n_src})")
                t = _frame_time(frame, tb, origin, n_src, rate)
                n_src += 1
                if prev is not None:  # every output instant in [prev_t, t) shows prev
                    i, buf, buf_start = yield from _show_until(prev[1], t - _EPS, i, stop, fps, buf, buf_start,
                                                               chunk_size, pack)
                    if stop is not None and i >= stop:
                        break
                # only convert frames that can still be shown
                if stop is None or t < stop / fps + 1.0:
                    dur = float(frame.duration * tb) if frame.duration and tb is not None else 1.0 / float(rate)
                    prev = (t, convert(frame, rotation), dur)
                    if max_chunk_bytes is not None and n_src == 1:
                        chunk_size = max(1, min(chunk_size, max_chunk_bytes // max(1, prev[1].nbytes)))
        except av.error.FFmpegError as e:
            raise UndecodableMedia(path, f"decoding failed after {n_src} frames ({e})") from e
        if n_src == 0:
            raise ZeroFrames(path, "video stream has zero decodable frames")
        if prev is not None:
            i, buf, buf_start = yield from _show_until(prev[1], prev[0] + prev[2] - 1e-4, i, stop, fps, buf,
                                                       buf_start, chunk_size, pack)
        if buf:
            yield FrameChunk(buf_start, pack(buf))


def iter_frames(path, fps: float = FPS, chunk_size: int = 16, start: int = 0, stop: int | None = None,
                max_chunk_bytes: int | None = None, max_pixels: int | None = MAX_FRAME_PIXELS) -> Iterator[FrameChunk]:
    """Yield output frames ``[start, stop)`` at ``fps`` in chunks of at most ``chunk_size``.

    ``stop=None`` means to the end of the video. A segment (``start > 0``) seeks to the keyframe before
    it, so segments of a long video can be decoded independently and agree with a full decode.
    ``max_chunk_bytes`` also caps a chunk's size in bytes (the chunk size is set from the first frame).
    Frames are shown as displayed: a display-matrix rotation (phone videos) is applied. Every decoded frame
    is checked before conversion: larger than ``max_pixels``, or another size than the first frame, raises
    :class:`~prep.errors.UndecodableMedia`.
    """
    return _iter_converted(path, fps, chunk_size, start, stop, rgb_array, np.stack, max_chunk_bytes, max_pixels)


def iter_planar(path, fps: float = FPS, chunk_size: int = 16, start: int = 0,
                stop: int | None = None) -> Iterator[FrameChunk]:
    """:func:`iter_frames`' frames, unconverted: ``chunk.frames`` is a list of :class:`prep.frames.Frame`
    (8-bit 4:2:0 sources stay YUV and convert only the regions read, bit for bit as the whole frame would
    be; others are the RGB array). Same frames, same chunks (tested frame for frame)."""
    from .frames import ArrayFrame, from_av

    def convert(frame, rotation):  # a rotated source is turned as RGB (its planes would need turning too)
        return ArrayFrame(rgb_array(frame, rotation)) if rotation else from_av(frame)

    return _iter_converted(path, fps, chunk_size, start, stop, convert, list)


def read_frames(path, fps: float = FPS, start: int = 0, stop: int | None = None) -> np.ndarray:
    """All output frames ``[start, stop)`` as one (T, H, W, 3) uint8 RGB array. For short clips."""
    chunks = [ch.frames for ch in iter_frames(path, fps, chunk_size=64, start=start, stop=stop)]
    if not chunks:
        raise ZeroFrames(path, f"no frames in [{start}, {stop})")
    return np.concatenate(chunks)


def count_frames(path, fps: float = FPS) -> int:
    """Exact number of output frames (decodes timestamps only, no pixel conversion)."""
    path = Path(path)
    origin = _origin_pts(path)
    with _open(path) as c:
        vs = _video_stream(c, path)
        tb = vs.time_base
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        last_t, last_dur, n = None, 1.0 / float(rate), 0
        for packet in c.demux(vs):
            if packet.pts is None or packet.size == 0:
                continue
            t = float((packet.pts - origin) * tb)
            if last_t is None or t > last_t:
                last_t = t
                last_dur = float(packet.duration * tb) if packet.duration else 1.0 / float(rate)
            n += 1
        if n == 0:
            raise ZeroFrames(path, "video stream has zero packets")
        return num_output_frames(last_t + last_dur, fps)


def read_audio(path, num_frames: int | None = None, fps: float = FPS,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio in [-1, 1] at ``sample_rate``, aligned to the first video frame.

    With ``num_frames`` the result has exactly ``round(num_frames / fps * sample_rate)`` samples
    (trimmed, or zero-padded at the end), and decoding stops once those are read (plus a margin for the
    resampling filter), so a short video with hours of audio costs no more than its own length.
    """
    return read_audio_covered(path, num_frames, fps, sample_rate)[0]


MAX_AUDIO_RESERVE = 1 << 27  # samples reserved up front at most (512 MiB); a longer read grows as it goes
AUDIO_MARGIN_S = 1.0  # decoded past the last needed sample: the resampler's output there is then exact


def read_audio_covered(path, num_frames: int | None = None, fps: float = FPS,
                       sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """:func:`read_audio` and the fraction of the returned samples that came from the file (the rest is
    zero padding: audio that starts late or ends early)."""
    wav, (lo, hi) = read_audio_span(path, num_frames, fps, sample_rate)
    return wav, (hi - lo) / len(wav) if len(wav) else 0.0


class _Samples:
    """Mono float32 samples appended in place: a long clip's native-rate audio is held once (not as decoded
    parts plus their concatenation), in a buffer reserved up front when the length needed is known."""

    def __init__(self):
        self.data = np.empty(1 << 16, np.float32)
        self.n = 0

    def reserve(self, size: int) -> None:
        if size > len(self.data):
            grown = np.empty(size, np.float32)
            grown[:self.n] = self.data[:self.n]
            self.data = grown

    def append(self, x: np.ndarray) -> None:
        if self.n + len(x) > len(self.data):
            self.reserve(max(self.n + len(x), len(self.data) * 3 // 2))
        self.data[self.n:self.n + len(x)] = x
        self.n += len(x)

    def array(self) -> np.ndarray:
        return self.data[:self.n]


def read_audio_span(path, num_frames: int | None = None, fps: float = FPS,
                    sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`read_audio` and the sample range ``[lo, hi)`` of it that came from the file (outside it: zero
    padding), so any part of the clip (a shot) can tell its own coverage."""
    path = Path(path)
    with _open(path) as c:
        if not c.streams.audio:
            raise NoAudioStream(path, "no audio stream")
        a = c.streams.audio[0]
        v_origin = None
        if c.streams.video:
            vs = c.streams.video[0]
            if vs.start_time is not None and vs.time_base is not None:
                v_origin = float(vs.start_time * vs.time_base)
        native_rate = int(a.codec_context.sample_rate)
        samples, a_start, need = _Samples(), None, None
        try:
            for frame in c.decode(a):
                if a_start is None and frame.pts is not None and frame.time_base is not None:
                    a_start = float(frame.pts * frame.time_base)
                if need is None and num_frames is not None:  # native samples the output needs, from here
                    offset_s = (a_start or 0.0) - (v_origin or 0.0)
                    need = int(math.ceil((num_frames / fps - offset_s + AUDIO_MARGIN_S) * native_rate))
                    samples.reserve(min(need + (1 << 16), MAX_AUDIO_RESERVE))  # + the last frame's overshoot
                if need is not None and samples.n >= need:
                    break
                x = frame.to_ndarray()
                if x.dtype.kind in "iu":
                    x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
                if not frame.format.is_planar:  # packed: (1, samples*channels)
                    x = x.reshape(-1, len(frame.layout.channels)).T
                samples.append(x.astype(np.float32).mean(axis=0))
        except av.error.FFmpegError as e:
            raise UndecodableMedia(path, f"audio stream cannot be decoded ({e})") from e
    if not samples.n:
        raise NoAudioStream(path, "audio stream has no decodable samples")
    wav = samples.array()
    if native_rate != sample_rate:
        g = math.gcd(native_rate, sample_rate)
        wav = resample_poly(wav, sample_rate // g, native_rate // g, dtype=np.float32)
    offset_s = (a_start or 0.0) - (v_origin or 0.0)
    shift = int(round(offset_s * sample_rate))
    real = len(wav) + min(shift, 0)  # samples from the file that are at or after the first video frame
    if shift > 0:
        wav = np.concatenate([np.zeros(shift, np.float32), wav])
    elif shift < 0:
        wav = wav[-shift:]
    if num_frames is not None:
        n = int(round(num_frames / fps * sample_rate))
        wav = wav[:n] if len(wav) >= n else np.pad(wav, (0, n - len(wav)))
    lo = min(max(shift, 0), len(wav))
    hi = lo + min(max(real, 0), len(wav) - lo)
    wav = np.ascontiguousarray(wav, np.float32)
    return np.clip(wav, -1.0, 1.0, out=wav), (int(lo), int(hi))  # in place: the samples are this call's own


@dataclass
class DecodedClip:
    """A whole short clip in memory: (T, H, W, 3) RGB frames at 25 fps and matching audio."""

    info: MediaInfo
    frames: np.ndarray
    audio: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def decode_clip(path, fps: float = FPS, sample_rate: int = SAMPLE_RATE,
                require_audio: bool = True) -> DecodedClip:
    """Decode a short clip fully (frames + audio trimmed to ``num_frames / fps`` seconds)."""
    info = probe(path)
    if require_audio and not info.has_audio:
        raise NoAudioStream(path, "no audio stream")
    frames = read_frames(path, fps)
    audio = (read_audio(path, len(frames), fps, sample_rate) if info.has_audio
             else np.zeros(int(round(len(frames) / fps * sample_rate)), np.float32))
    return DecodedClip(info, frames, audio)


__all__ = ["FPS", "SAMPLE_RATE", "MediaInfo", "FrameChunk", "DecodedClip", "probe", "iter_frames", "iter_planar",
           "rgb_array",
           "read_frames", "read_audio", "read_audio_covered", "read_audio_span", "count_frames", "decode_clip", "num_output_frames",
           "write_video", "check_audio_length", "MAX_FRAME_PIXELS", "MediaError"]

