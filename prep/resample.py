"""Polyphase audio resampling in numpy: ``scipy.signal.resample_poly``'s filter and alignment, without
importing ``scipy.signal`` (~0.8 s of every prep process's start-up, most of it ``scipy.stats``).

Same design as scipy's default (``window=("kaiser", 5.0)``, ``padtype="constant"``): a linear-phase
low-pass FIR of ``2 * 10 * max(up, down) + 1`` taps with cutoff ``1 / max(up, down)`` of Nyquist
(``firwin``: windowed sinc scaled to unit DC gain), times ``up``, zero-padded so the output samples sit
at the filter centre; ``upfirdn`` evaluated phase by phase. Agrees with scipy to float rounding
(``tests/prep/test_audio.py`` checks 48 and 44.1 kHz against it).
"""
from __future__ import annotations

import math

import numpy as np

KAISER_BETA = 5.0


def lowpass(up: int, down: int) -> np.ndarray:
    """scipy's ``firwin(2 * half_len + 1, 1 / max_rate, window=("kaiser", 5.0)) * up``."""
    max_rate = max(up, down)
    numtaps = 2 * 10 * max_rate + 1
    cutoff = 1.0 / max_rate
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, KAISER_BETA)
    return h / h.sum() * up


def _output_len(len_h: int, n_in: int, up: int, down: int) -> int:
    return ((n_in - 1) * up + len_h - 1) // down + 1


BLOCK_ROWS = 4096  # output samples per residue computed at once: memory holds a block, not the signal


def resample_poly(x: np.ndarray, up: int, down: int, dtype=np.float64, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``x`` (1-D) resampled by ``up / down``, as ``scipy.signal.resample_poly(x, up, down)`` (computed in
    float64, returned as ``dtype``). The output is computed ``block_rows`` samples of one filter phase at a
    time from float64 copies of just the input those need, so a long signal is never copied whole; the
    values are bit for bit those of one pass over the whole signal (tested)."""
    x = np.asarray(x)
    g = math.gcd(int(up), int(down))
    up, down = int(up) // g, int(down) // g
    if up == down == 1:
        return x.astype(dtype)
    n_in = len(x)
    n_out = n_in * up // down + bool(n_in * up % down)
    h = lowpass(up, down)
    half_len = 10 * max(up, down)
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    n_post_pad = 0
    while _output_len(len(h) + n_pre_pad + n_post_pad, n_in, up, down) < n_out + n_pre_remove:
        n_post_pad += 1
    h = np.concatenate([np.zeros(n_pre_pad), h, np.zeros(n_post_pad)])
    # upfirdn: y[m] = sum_k h[k] xu[m down - k], xu = x upsampled by zeros. Outputs m = r + up k (one residue
    # r of m mod up) share a phase p = (r down) mod up and meet samples x[i0 + k down - q] with taps
    # h[p + up q]: a strided window matrix times one reversed filter phase (BLAS), per residue.
    q_len = -(-len(h) // up)
    bank = np.zeros((up, q_len))
    for p in range(up):
        taps = h[p::up]
        bank[p, :len(taps)] = taps
    m_lo, m_hi = n_pre_remove, n_pre_remove + n_out
    out = np.empty(n_out, dtype)
    block_rows = max(4, block_rows - block_rows % 4)  # whole groups of BLAS's 4-row kernel: the same sums
    for r in range(up):
        first = m_lo + (r - m_lo) % up  # the first m >= m_lo with m = r (mod up)
        if first >= m_hi:
            continue
        count = (m_hi - 1 - first) // up + 1
        pos = first * down
        i0 = pos // up - (q_len - 1)  # window k starts at x[i0 + k down] (x zero outside [0, n_in))
        phase = bank[pos % up, ::-1]
        dst = out[first - m_lo::up]
        for k0 in range(0, count, block_rows):
            k1 = min(count, k0 + block_rows)
            lo = i0 + k0 * down
            seg = _padded(x, lo, lo + (k1 - 1 - k0) * down + q_len)
            windows = np.lib.stride_tricks.as_strided(seg, shape=(k1 - k0, q_len),
                                                      strides=(down * seg.strides[0], seg.strides[0]), writeable=False)
            dst[k0:k1] = windows @ phase
    return out


def _padded(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """float64 ``x[lo:hi]``, zeros where the range runs outside ``x``."""
    seg = np.zeros(hi - lo)
    a, b = max(lo, 0), min(hi, len(x))
    if b > a:
        seg[a - lo:b - lo] = x[a:b]
    return seg


__all__ = ["resample_poly", "lowpass"]
