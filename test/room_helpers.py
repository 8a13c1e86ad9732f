"""A small synthetic two-speaker, two-mic room for the continuous-mode (music) tests: responses convolved here, so
the tests know the truth the room model must find."""

from __future__ import annotations

import numpy as np


def mix(x, h):
    """What each mic hears: every speaker's signal x[s] through h[s, m]."""
    return np.stack([sum(np.convolve(x[s], h[s, m])[: x.shape[1]] for s in range(h.shape[0]))
                     for m in range(h.shape[1])])


def two_pair_room(taps: int = 1200, direct: int = 8, seed: int = 3) -> np.ndarray:
    """(2, 2, taps): a direct path per pair (crosstalk at 60 samples), a wall, and a faint decaying tail."""
    rng = np.random.default_rng(seed)
    h = np.zeros((2, 2, taps))
    for s in range(2):
        for m in range(2):
            h[s, m, direct if s == m else 60] = 1.0 if s == m else 0.3
            h[s, m, 300 + 40 * s + 13 * m] = 0.05                 # a wall
            h[s, m] += 0.005 * rng.standard_normal(taps) * np.exp(-np.arange(taps) / 300)
    return 0.2 * h
