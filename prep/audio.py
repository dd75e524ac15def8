"""Audio features: Wav2Lip's mel spectrogram and SyncNet's MFCC, plus the frame→feature index rules.

Mel parameters are Wav2Lip's ``hparams.py`` exactly (16 kHz, pre-emphasis 0.97, n_fft = win = 800,
hop 200 → 80 mel frames/s, 80 Slaney mels 55–7600 Hz, magnitude STFT with a periodic Hann window and
reflect padding as librosa 0.7 did, dB with ref 20 and min −100, symmetric normalisation to ±4).
The filterbank is computed here (no librosa dependency) and tested against an independent reference.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from talkbase.timebase import FPS, MEL_HOP, MEL_WINDOW, SAMPLE_RATE

N_FFT = 800
WIN = 800
HOP = MEL_HOP
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS_VALUE = 4.0
MEL_FPS = SAMPLE_RATE / HOP  # 80 mel frames per second
MEL_STEP_SIZE = MEL_WINDOW  # mel steps per 5-frame window (Wav2Lip syncnet_mel_step_size)
MFCC_FPS = 100  # python_speech_features default winstep 0.01 s
MFCC_PER_FRAME = int(MFCC_FPS / FPS)  # 4
MFCC_FRAME_LEN = int(0.025 * SAMPLE_RATE)  # python_speech_features' winlen / winstep in samples: 400, 160
MFCC_STEP = int(0.01 * SAMPLE_RATE)
MFCC_PREEMPHASIS = 0.97

MEL_PARAMS = dict(sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN, hop_length=HOP, n_mels=N_MELS,
                  fmin=FMIN, fmax=FMAX, preemphasis=PREEMPHASIS, ref_level_db=REF_LEVEL_DB,
                  min_level_db=MIN_LEVEL_DB, max_abs_value=MAX_ABS_VALUE, window="hann(periodic)",
                  center=True, pad_mode="reflect", mel_norm="slaney", htk=False)
MFCC_PARAMS = dict(impl="python_speech_features.mfcc", samplerate=SAMPLE_RATE, winlen=0.025,
                   winstep=0.01, numcep=13, nfilt=26, nfft=512, preemph=MFCC_PREEMPHASIS, ceplifter=22,
                   appendEnergy=True, input="int16")


def _hz_to_mel(f):
    """Slaney mel scale (linear below 1 kHz, log above), as librosa with htk=False."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, 1000.0 * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) triangular filters with Slaney area normalisation."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:n_mels + 2] - mel_pts[:n_mels]))[:, None]
    weights.setflags(write=False)
    return weights


MEL_CHUNK = 2048  # STFT frames per block (25.6 s): memory stays bounded however long the clip
MFCC_CHUNK = 2500  # MFCC frames per block (25 s)


def _stft_magnitude(y: np.ndarray, start: int, stop: int) -> np.ndarray:
    """|STFT| (1 + n_fft/2, stop - start) of frames [start, stop) of the padded signal ``y``, periodic Hann
    window (each frame on its own: the blocks equal the whole transform bit for bit, tested)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(start, stop)[:, None]
    return np.abs(np.fft.rfft(y[idx] * window, n=N_FFT, axis=1)).T


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised mel spectrogram of 16 kHz float audio: (80, 1 + len(wav) // 200) float32,
    computed ``MEL_CHUNK`` frames at a time (a long clip's whole STFT would take ~1.8 MB per second)."""
    wav = np.asarray(wav, dtype=np.float64)
    if wav.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {wav.shape}")
    if len(wav) <= N_FFT // 2:
        raise ValueError(f"audio too short for a mel spectrogram ({len(wav)} samples)")
    emphasised = wav.copy()  # lfilter([1, -0.97], [1], wav), bit for bit
    emphasised[1:] -= PREEMPHASIS * wav[:-1]
    y = np.pad(emphasised, N_FFT // 2, mode="reflect")  # centred frames, reflect padding
    n_frames = 1 + (len(y) - N_FFT) // HOP
    out = np.empty((N_MELS, n_frames), np.float32)
    for a in range(0, n_frames, MEL_CHUNK):
        b = min(n_frames, a + MEL_CHUNK)
        mel = mel_filterbank() @ _stft_magnitude(y, a, b)
        db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
        norm = (2 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / (-MIN_LEVEL_DB)) - MAX_ABS_VALUE
        out[:, a:b] = np.clip(norm, -MAX_ABS_VALUE, MAX_ABS_VALUE)
    return out


def to_int16(wav: np.ndarray) -> np.ndarray:
    """Float [-1, 1] → int16 as a 16-bit WAV would hold it (what SyncNet's pipeline reads)."""
    return np.clip(np.round(np.asarray(wav, np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def mfcc(wav: np.ndarray) -> np.ndarray:
    """SyncNet MFCC: ``python_speech_features.mfcc(int16_audio, 16000)`` with its defaults → (T, 13)."""
    import python_speech_features

    x = wav if wav.dtype == np.int16 else to_int16(wav)
    # its pre-emphasis (sigproc.preemphasis, the same float64 arithmetic) over the whole signal here, then
    # MFCC_CHUNK frames at a time with preemph=0: each frame is computed on its own, so the blocks equal
    # one call on the whole signal bit for bit (tested), and memory stays bounded
    emphasised = np.empty(len(x))
    emphasised[:1] = x[:1]
    emphasised[1:] = x[1:] - MFCC_PREEMPHASIS * x[:-1]
    n = num_mfcc_frames_of(len(x))
    blocks = []
    for a in range(0, n, MFCC_CHUNK):
        b = min(n, a + MFCC_CHUNK)
        stop = len(x) if b == n else (b - 1) * MFCC_STEP + MFCC_FRAME_LEN
        sig = emphasised[a * MFCC_STEP:stop]
        blocks.append(python_speech_features.mfcc(sig, SAMPLE_RATE, preemph=0.0))
    return np.concatenate(blocks).astype(np.float32)


# ---- index rules (what a reader needs to cut windows from the full-clip features) ----

def num_samples(num_frames: int, fps: float = FPS, sr: int = SAMPLE_RATE) -> int:
    return int(round(num_frames / fps * sr))


def num_mel_frames(num_frames: int) -> int:
    """Mel frames of a clip of ``num_frames`` video frames (centred STFT: 1 + samples // hop)."""
    return 1 + num_samples(num_frames) // HOP


def num_mfcc_frames(num_frames: int) -> int:
    """MFCC frames from python_speech_features' framing of ``num_frames / 25`` s of audio."""
    return num_mfcc_frames_of(num_samples(num_frames))


def num_mfcc_frames_of(n_samples: int) -> int:
    """MFCC frames python_speech_features makes of ``n_samples`` samples (the last frame zero-padded)."""
    if n_samples <= MFCC_FRAME_LEN:
        return 1
    return 1 + int(np.ceil((n_samples - MFCC_FRAME_LEN) / MFCC_STEP))


def mel_start(frame_index: int, fps: float = FPS) -> int:
    """Wav2Lip's rule: the mel window of video frame ``f`` starts at ``int(80 * f / fps)``."""
    return int(MEL_FPS * frame_index / fps)


def mel_window(mel: np.ndarray, frame_index: int, steps: int = MEL_STEP_SIZE) -> np.ndarray | None:
    """(80, steps) mel window for a frame, or None where it would run past the clip end."""
    s = mel_start(frame_index)
    if s < 0 or s + steps > mel.shape[1]:
        return None
    return mel[:, s:s + steps]


__all__ = ["melspectrogram", "mfcc", "mel_filterbank", "to_int16", "num_samples", "num_mel_frames",
           "num_mfcc_frames", "mel_start", "mel_window", "MEL_PARAMS", "MFCC_PARAMS", "MEL_STEP_SIZE"]
