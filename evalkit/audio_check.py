"""Does a submission carry the audio it claims? A comparison that survives AAC re-encoding.

A reconstruction submission must carry its reference clip's audio; a cross-mode submission named in a
pairs list must carry the audio of the clip the list names. Both are checked the same way:
:func:`similarity` is the Pearson correlation of the two log-mel spectrograms (Wav2Lip's 80-band mel,
:func:`prep.audio.melspectrogram`) after each band's mean over time is removed, maximised over lags of
±``MAX_LAG`` mel steps (±25 ms). A video whose similarity is below :data:`THRESHOLD` is skipped as
``audio_mismatch``.

The threshold is measured, not guessed (``bench/audio_match.py``, numbers in ``bench/README.md``): 66
windows of 2 s (hop 1 s) of the shared real clips and their driving .wav files, re-encoded as AAC (16 kHz
128 kbit/s, 16 kHz 24 kbit/s, 44.1 kHz stereo 64 kbit/s) under a video, score 0.943–1.000 against their
own decoded audio (the lowest: 24 kbit/s); the same windows against every other non-overlapping window
(4170 pairs: other speakers, and other moments of the same speaker in the same room) score −0.55–0.56
(99th percentile 0.45). ``THRESHOLD = 0.75`` sits in the middle of that gap (margins 0.19 either side).
"""
from __future__ import annotations

import numpy as np

MAX_LAG = 2  # mel steps (12.5 ms each)
THRESHOLD = 0.75
MIN_STEPS = 16  # one 5-frame window; shorter audio is not compared
SILENT_RMS = 1e-4  # both sides below this: silence matches silence


def _centered_mel(wav: np.ndarray) -> np.ndarray:
    from prep.audio import melspectrogram

    mel = melspectrogram(np.asarray(wav, np.float32)).astype(np.float64)
    return mel - mel.mean(axis=1, keepdims=True)


def similarity(ref: np.ndarray, gen: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """Correlation in [-1, 1] of two 16 kHz mono signals' band-centred log-mel spectrograms (best lag)."""
    n = min(len(ref), len(gen))
    ref, gen = np.asarray(ref[:n]), np.asarray(gen[:n])
    rms = [float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if n else 0.0 for x in (ref, gen)]
    if max(rms) < SILENT_RMS:
        return 1.0
    if min(rms) < SILENT_RMS:
        return 0.0
    a, b = _centered_mel(ref), _centered_mel(gen)
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x = a[:, max(0, lag):a.shape[1] + min(0, lag)]
        y = b[:, max(0, -lag):b.shape[1] + min(0, -lag)]
        m = min(x.shape[1], y.shape[1])
        if m < MIN_STEPS:
            continue
        x, y = x[:, :m].ravel(), y[:, :m].ravel()
        den = np.sqrt(np.dot(x, x) * np.dot(y, y))
        if den > 0:
            best = max(best, float(np.dot(x, y) / den))
    return best


def check(ref: np.ndarray, gen: np.ndarray, what: str = "its reference clip") -> str | None:
    """None when ``gen`` carries ``ref``'s audio; else the skip reason."""
    if min(len(ref), len(gen)) < 4 * 200 * MIN_STEPS // 4:
        return None  # too short to tell (validation already refused clips under 5 frames)
    s = similarity(ref, gen)
    if s >= THRESHOLD:
        return None
    return (f"the submission's audio is not {what}'s audio (similarity {s:.2f} < {THRESHOLD}; "
            "another clip's audio, or shifted)")


__all__ = ["similarity", "check", "THRESHOLD", "MAX_LAG"]
