"""Background noise as real rooms have it: white sensor noise, HVAC-like pink noise, speech babble and impulses.

Every generator returns (mics, n) noise of unit mean power (impulses excepted: they are scaled to the background)
so that the renderer can set the total power from the scene's echo-to-noise ratio and the mix of kinds.

- white: independent per mic (electronic self-noise).
- pink (HVAC): a 1/f^a spectrum (a drawn 0.8-1.3 per scene) with a few low-frequency hum lines, as a diffuse
  field: two mics d apart share a component with coherence sinc(2 f d / c), so low frequencies are common to the
  array and high ones independent.
- babble: 3-7 synthetic talkers (nothing downloaded): glottal pulse trains at 90-250 Hz with intonation, shaped by
  formant resonators that change every syllable (150-300 ms) and a syllabic envelope, plus fricative noise
  bursts; they arrive from random directions, each a plane wave delayed across the mics.
- impulsive: Poisson clicks and knocks (exponentially decaying noise bursts of 1-15 ms), 15-35 dB above the
  background's rms, common to all mics with plane-wave delays.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

_KINDS = ("white", "pink", "babble")


def _unit_power(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def _delay_spectrum(spectrum: np.ndarray, f: np.ndarray, delays_s: np.ndarray) -> np.ndarray:
    """(M, F): one spectrum delayed by each mic's delay (plane wave)."""
    return spectrum[None] * np.exp(-2j * np.pi * f[None] * delays_s[:, None])


def pink_noise(n: int, mics: np.ndarray, fs: int, c: float, rng: np.random.Generator,
               scene_rng: np.random.Generator) -> np.ndarray:
    """(M, n) diffuse 1/f^a noise with hum lines; the spectrum's shape comes from ``scene_rng`` (fixed per room)."""
    n_m = len(mics)
    f = np.fft.rfftfreq(n, 1 / fs)
    slope = scene_rng.uniform(0.8, 1.3)
    shape = np.where(f > 0, np.maximum(f, 20.0) ** (-slope / 2), 0.0)
    hum = scene_rng.choice([50.0, 60.0]) * np.arange(1, 4)
    for h, level in zip(hum, scene_rng.uniform(2.0, 6.0, 3)):
        shape += level * shape[np.argmin(abs(f - h))] * np.exp(-0.5 * ((f - h) / 3.0) ** 2)
    d = np.linalg.norm(mics[:, None] - mics[None], axis=-1)
    spacing = float(d[np.triu_indices(n_m, 1)].mean()) if n_m > 1 else 0.0
    coherence = np.clip(np.sinc(2 * f * spacing / c), 0.0, 1.0)
    common = rng.normal(size=len(f)) + 1j * rng.normal(size=len(f))
    own = rng.normal(size=(n_m, len(f))) + 1j * rng.normal(size=(n_m, len(f)))
    spectrum = shape * (np.sqrt(coherence) * common + np.sqrt(1 - coherence) * own)
    return _unit_power(np.fft.irfft(spectrum, n))


def _talker(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic talker (n samples): voiced syllables (source-filter: glottal pulses rolled off at -12 dB/octave,
    three formant resonators in cascade, lip radiation +6 dB/octave), fricatives (band noise), pauses."""
    out = np.zeros(n)
    t = 0
    glottal = np.exp(-2 * np.pi * 150.0 / fs)
    while t < n:
        length = int(rng.uniform(0.15, 0.3) * fs)
        seg = min(length, n - t)
        if rng.random() < 0.15:                       # pause
            t += seg
            continue
        env = np.sin(np.pi * np.arange(seg) / length) ** 2
        if rng.random() < 0.2:                        # fricative: noise in 2.5-7 kHz, quieter than vowels
            x = 0.3 * _unit_power(lfilter(*_resonator(rng.uniform(3000, 6000), 2000.0, fs), rng.normal(size=seg)))
        else:
            f0 = rng.uniform(90, 250) * (1 + 0.1 * np.linspace(-1, 1, seg) * rng.uniform(-1, 1))
            x = (np.diff(np.floor(np.cumsum(f0 / fs)), prepend=0.0) > 0).astype(float)   # glottal pulses
            x = lfilter([1.0], [1.0, -glottal], lfilter([1.0], [1.0, -glottal], x))
            for formant, bw in zip((rng.uniform(300, 900), rng.uniform(900, 2500), rng.uniform(2400, 3500)),
                                   (80.0, 120.0, 160.0)):
                x = lfilter(*_resonator(formant, bw, fs), x)
            x = _unit_power(np.diff(x, prepend=0.0))
        out[t: t + seg] = env * x
        t += seg
    return out


def _resonator(frequency: float, bandwidth: float, fs: int):
    """(b, a) of a two-pole resonance, unit gain at DC-ish scale."""
    r = np.exp(-np.pi * bandwidth / fs)
    return [1 - r], [1, -2 * r * np.cos(2 * np.pi * frequency / fs), r * r]


def babble(n: int, mics: np.ndarray, fs: int, c: float, rng: np.random.Generator) -> np.ndarray:
    """(M, n) speech babble of 3-7 talkers from random directions."""
    f = np.fft.rfftfreq(n, 1 / fs)
    total = np.zeros((len(mics), len(f)), complex)
    for _ in range(int(rng.integers(3, 8))):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        total += _delay_spectrum(np.fft.rfft(_talker(n, fs, rng)) * rng.uniform(0.5, 1.5), f, mics @ u / c)
    return _unit_power(np.fft.irfft(total, n))


def impulses(n: int, mics: np.ndarray, fs: int, c: float, rate_hz: float, rng: np.random.Generator
             ) -> np.ndarray:
    """(M, n) Poisson clicks and knocks, peak amplitude ~1 (the renderer scales them to the background)."""
    out = np.zeros((len(mics), n))
    count = rng.poisson(rate_hz * n / fs)
    f = np.fft.rfftfreq(n, 1 / fs)
    for _ in range(count):
        start = int(rng.integers(n))
        decay = rng.uniform(0.001, 0.015) * fs
        length = min(int(6 * decay), n - start)
        burst = np.zeros(n)
        burst[start: start + length] = rng.normal(size=length) * np.exp(-np.arange(length) / decay)
        burst /= max(np.abs(burst).max(), 1e-12)
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        out += np.fft.irfft(_delay_spectrum(np.fft.rfft(burst), f, mics @ u / c), n)
    return out


def room_noise(n: int, mics: np.ndarray, fs: int, c: float, rms: float, mix, impulse_rate_hz: float,
               rng: np.random.Generator, scene_seed: int = 0) -> np.ndarray:
    """(M, n) noise of total background rms ``rms`` split by power ``mix`` (white, pink, babble) plus impulses."""
    mix = np.asarray(mix, float)
    mix = mix / max(mix.sum(), 1e-12)
    out = np.zeros((len(mics), n))
    if mix[0] > 0:
        out += np.sqrt(mix[0]) * rng.normal(size=out.shape)
    if mix[1] > 0:
        out += np.sqrt(mix[1]) * pink_noise(n, mics, fs, c, rng, np.random.default_rng([scene_seed, 1]))
    if mix[2] > 0:
        out += np.sqrt(mix[2]) * babble(n, mics, fs, c, rng)
    out *= rms
    if impulse_rate_hz > 0:
        out += rms * 10 ** (rng.uniform(15, 35) / 20) * impulses(n, mics, fs, c, impulse_rate_hz, rng)
    return out
