"""Where a response's direct path sits, and which taps of a kernel are kept.

The direct speaker->mic path must appear at its geometric delay; where it is measured instead is device latency
plus clock offset, which every pair shares. ``DirectPathLocator`` finds the peak per pair (sub-sample, parabolic)
and the common shift that aligns them; ``range_gate`` keeps the bistatic paths between the nearest and farthest
reflector of interest.
"""

from __future__ import annotations

import numpy as np


class DirectPathLocator:
    """Per-pair direct-path peak search around the geometric delay ``direct_path_m / c * fs``.

    ``half_width_s`` is how far from it the peak may be; pairs whose peak is ``min_snr_db`` above the median
    response power (noise plus late reverb) vote for the common shift; ``floor_taps`` is how many leading taps
    at least enter that median.
    """

    def __init__(self, direct_path_m: np.ndarray, c: float, fs: float, half_width_s: float, min_snr_db: float,
                 floor_taps: int):
        self.expected = direct_path_m / c * fs
        self.half = max(2, int(round(half_width_s * fs)))
        self.min_snr_db = min_snr_db
        self.floor_taps = floor_taps

    def locate(self, env: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Per-pair SNR (dB) and drift (samples) of the direct-path peak in envelopes (P, n), and their common shift
        (median drift of the pairs above ``min_snr_db``)."""
        n = env.shape[-1]
        lo = np.floor(self.expected).astype(int) - self.half
        width = 2 * self.half + 1
        search = np.take_along_axis(env, (lo[:, None] + np.arange(width)[None, :]) % n, axis=1)
        k = np.clip(np.argmax(search, axis=1), 1, width - 2)
        rows = np.arange(len(k))
        a, b, c = search[rows, k - 1], search[rows, k], search[rows, k + 1]
        denom = a - 2 * b + c
        frac = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
        drift = lo + k + np.clip(frac, -0.5, 0.5) - self.expected
        floor = np.median(env[:, : max(self.floor_taps, n // 2)] ** 2, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.nan_to_num(10 * np.log10(np.max(search, axis=1) ** 2 / floor), nan=-np.inf)
        reliable = snr >= self.min_snr_db
        shift = float(np.median(drift[reliable])) if np.any(reliable) else 0.0
        return snr, drift, shift


def range_gate(taps: int, fs: float, c: float, min_path_m: np.ndarray, max_path_m: np.ndarray,
               edge_m: float = 0.05) -> np.ndarray:
    """(pairs, taps) weights that keep bistatic path lengths in [min_path, max_path] with raised-cosine edges."""
    path = np.arange(taps) * c / fs
    lo = np.asarray(min_path_m, dtype=float)[:, None]
    hi = np.asarray(max_path_m, dtype=float)[:, None]
    rise = np.clip((path - lo) / edge_m + 0.5, 0, 1)
    fall = np.clip((hi - path) / edge_m + 0.5, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
