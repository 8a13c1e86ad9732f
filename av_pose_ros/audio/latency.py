"""Finding a known signal in a recording: the delay (samples) and how clearly it stands out.

Used for the round-trip calibration (one chirp into silence) and for tracking the round trip while a stream runs
(the probe window on a reference input, e.g. an electrical loopback or a PulseAudio monitor channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import correlate


@dataclass(frozen=True)
class LagEstimate:
    lag: int                # samples by which the recording is late against the reference
    peak_db: float          # correlation peak over the median correlation magnitude (a matched-filter SNR)
    peak: float             # normalised correlation at the peak (1.0 = the reference exactly, any gain)

    def clear(self, min_peak_db: float = 15.0) -> bool:
        return self.peak_db >= min_peak_db


def find_lag(recorded: np.ndarray, reference: np.ndarray, min_lag: int, max_lag: int) -> LagEstimate:
    """Delay ``d`` in ``[min_lag, max_lag]`` maximising ``sum_t recorded[t] * reference_at(t - d)``.

    ``reference`` covers reference clock samples ``[-max_lag, len(recorded) - min_lag)`` relative to
    ``recorded[0]``'s nominal position, i.e. ``reference[j]`` is reference sample ``j - max_lag``; so its length
    must be ``len(recorded) + max_lag - min_lag``.
    """
    x = np.asarray(recorded, dtype=np.float64).ravel()
    e = np.asarray(reference, dtype=np.float64).ravel()
    span = max_lag - min_lag
    if e.size != x.size + span:
        raise ValueError(f"reference has {e.size} samples, needs {x.size + span}")
    c = correlate(e, x, mode="valid", method="fft")          # c[j] = sum_t e[j + t] x[t], j in [0, span]
    # e[j + t] is reference sample (j + t - max_lag) = t - d  =>  d = max_lag - j
    mag = np.abs(c)
    j = int(np.argmax(mag))
    floor = float(np.median(mag)) + 1e-30
    norm = float(np.sqrt(np.sum(x ** 2) * np.sum(e[j:j + x.size] ** 2))) + 1e-30
    return LagEstimate(lag=max_lag - j, peak_db=float(20 * np.log10(max(mag[j], 1e-30) / floor)),
                       peak=float(c[j] / norm))


def locate(recorded: np.ndarray, pulse: np.ndarray, max_lag: int, sent_at: int = 0) -> LagEstimate:
    """Where ``pulse`` (sent at sample ``sent_at`` of the recording's clock) comes back, searching lags
    ``[0, max_lag]``: the round trip of one chirp played into silence."""
    x = np.asarray(recorded, dtype=np.float64).ravel()
    p = np.asarray(pulse, dtype=np.float64).ravel()
    n = min(x.size - sent_at, p.size + max_lag)
    if n < p.size:
        raise ValueError("recording too short to hold the pulse")
    segment = x[sent_at:sent_at + n]
    c = correlate(segment, p, mode="valid", method="fft")   # c[d] = sum_t segment[d + t] p[t]
    mag = np.abs(c[: max_lag + 1])
    d = int(np.argmax(mag))
    floor = float(np.median(np.abs(c))) + 1e-30
    norm = float(np.sqrt(np.sum(p ** 2) * np.sum(segment[d:d + p.size] ** 2))) + 1e-30
    return LagEstimate(lag=d, peak_db=float(20 * np.log10(max(mag[d], 1e-30) / floor)), peak=float(c[d] / norm))
