"""Probe signals the speakers emit: short chirps and sweeps for active sensing, or any music track (BGM mode).

Every function returns float32 mono samples in [-1, 1]. Fades matter: a probe that starts or stops abruptly
spreads energy over the whole spectrum (clicks), which the deconvolution then has to undo.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

DEFAULT_FS = 48000
DEFAULT_BAND_HZ = (1000.0, 20000.0)
DEFAULT_DURATION_S = 0.005
DEFAULT_FADE_S = 0.0005


def apply_fades(signal: np.ndarray, fade_samples: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``fade_samples`` each (returns a new array)."""
    out = np.array(signal, dtype=np.float64)
    n = min(int(fade_samples), out.shape[-1] // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
        out[..., :n] *= ramp
        out[..., -n:] *= ramp[::-1]
    return out


def _check_sweep_args(f0_hz: float, f1_hz: float, duration_s: float, fs: int) -> int:
    if not 0 < f0_hz < f1_hz <= fs / 2:
        raise ValueError(f"need 0 < f0 < f1 <= fs/2, got f0={f0_hz}, f1={f1_hz}, fs={fs}")
    n = int(round(duration_s * fs))
    if n < 8:
        raise ValueError(f"probe of {duration_s} s at {fs} Hz is too short ({n} samples)")
    return n


def linear_chirp(f0_hz: float = DEFAULT_BAND_HZ[0], f1_hz: float = DEFAULT_BAND_HZ[1],
                 duration_s: float = DEFAULT_DURATION_S, fs: int = DEFAULT_FS,
                 fade_s: float = DEFAULT_FADE_S) -> np.ndarray:
    """Linear frequency sweep f0 -> f1 (flat spectrum over the band), raised-cosine fades, float32."""
    n = _check_sweep_args(f0_hz, f1_hz, duration_s, fs)
    t = np.arange(n) / fs
    rate = (f1_hz - f0_hz) / duration_s
    chirp = np.sin(2 * np.pi * (f0_hz * t + 0.5 * rate * t * t))
    return apply_fades(chirp, round(fade_s * fs)).astype(np.float32)


def exponential_sweep(f0_hz: float = DEFAULT_BAND_HZ[0], f1_hz: float = DEFAULT_BAND_HZ[1],
                      duration_s: float = DEFAULT_DURATION_S, fs: int = DEFAULT_FS,
                      fade_s: float = DEFAULT_FADE_S) -> np.ndarray:
    """Exponential (log) sweep f0 -> f1: equal time per octave, so more energy low (pink spectrum), float32."""
    n = _check_sweep_args(f0_hz, f1_hz, duration_s, fs)
    t = np.arange(n) / fs
    k = np.log(f1_hz / f0_hz)
    sweep = np.sin(2 * np.pi * f0_hz * duration_s / k * (np.exp(t * k / duration_s) - 1.0))
    return apply_fades(sweep, round(fade_s * fs)).astype(np.float32)


def load_wav(path: str | Path, fs: int = DEFAULT_FS) -> np.ndarray:
    """Mono float32 track from a WAV file, channels averaged, resampled to ``fs``, peak-normalised to 0.9."""
    rate, data = wavfile.read(str(path))
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        midpoint = 0 if info.min < 0 else (info.max + 1) // 2  # 8-bit WAV is unsigned
        data = (data.astype(np.float64) - midpoint) / (info.max + 1 - midpoint)
    else:
        data = data.astype(np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0 or not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: empty or non-finite audio")
    if rate != fs:
        g = gcd(int(rate), int(fs))
        data = resample_poly(data, fs // g, rate // g)
    peak = np.max(np.abs(data))
    if peak == 0:
        raise ValueError(f"{path}: silent track")
    return (0.9 * data / peak).astype(np.float32)


def synthetic_music(duration_s: float = 8.0, fs: int = DEFAULT_FS, seed: int = 0) -> np.ndarray:
    """A deterministic stand-in for a music track: chords of harmonic notes plus hi-hat noise bursts.

    Its spectrum is music-like (strong low-mid harmonics, weak and bursty treble), which is exactly what makes
    music a hard probe; tests and the simulator use it so BGM mode works without shipping a recording.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    out = np.zeros(n)
    beat = 0.25
    roots = 220.0 * 2 ** (rng.integers(-5, 7, size=int(np.ceil(duration_s / (4 * beat)))) / 12)
    for bar, root in enumerate(roots):
        start = int(bar * 4 * beat * fs)
        seg = slice(start, min(n, start + int(4 * beat * fs)))
        tt = t[seg] - t[start]
        for ratio in (1.0, 1.26, 1.5, 2.0):
            for h in range(1, 12):
                f = root * ratio * h
                if f < fs / 2:
                    out[seg] += np.sin(2 * np.pi * f * tt + rng.uniform(0, 2 * np.pi)) / h ** 1.2 * np.exp(-tt * 1.5)
    hat_len = int(0.04 * fs)
    hat_env = np.exp(-np.arange(hat_len) / (0.008 * fs))
    for k in range(int(duration_s / (beat / 2))):
        start = int(k * beat / 2 * fs)
        stop = min(n, start + hat_len)
        noise = np.diff(rng.standard_normal(stop - start + 1))  # differentiated noise: bright, like a cymbal
        out[start:stop] += 0.15 * noise * hat_env[: stop - start]
    return (0.9 * out / np.max(np.abs(out))).astype(np.float32)
