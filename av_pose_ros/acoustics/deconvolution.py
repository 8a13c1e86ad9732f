"""Regularised deconvolution of recordings by the known emission, and the envelope that turns a response into echo
strength per tap.

The emitted samples are known, so a room response is the recording divided by the emission per frequency bin.
Division is regularised per band (Wiener form, lambda proportional to the probe's own power in a fractional-octave
band around each bin), so that a music probe whose treble is 40 dB below its bass is whitened band by band instead
of having its weak bands drowned by one global lambda. ``MultiInputWiener`` is the several-speakers-at-once variant
that continuous (music) probes need.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import hilbert

from .probes import DEFAULT_BAND_HZ

_BAND_CACHE: dict = {}


def _cached(kind: str, freqs: np.ndarray, *args):
    """Band windows and band edges depend only on the frequency grid; music mode needs them every window."""
    key = (kind, freqs.shape[0], float(freqs[-1]) if freqs.size else 0.0, *args)
    value = _BAND_CACHE.get(key)
    if value is None:
        if len(_BAND_CACHE) > 64:
            _BAND_CACHE.clear()
        value = _BAND_CACHE[key] = _band_window_uncached(freqs, *args) if kind == "window" else \
            _band_edges_uncached(freqs, *args)
    return value


def band_window(freqs: np.ndarray, band_hz: tuple[float, float], taper: float = 0.25) -> np.ndarray:
    """Tukey-shaped pass band: smooth edges keep the kernel's time sidelobes low (no fake reflectors)."""
    return _cached("window", freqs, float(band_hz[0]), float(band_hz[1]), float(taper))


def _band_window_uncached(freqs: np.ndarray, f0: float, f1: float, taper: float) -> np.ndarray:
    x = (freqs - f0) / (f1 - f0)
    w = np.zeros_like(freqs)
    inside = (x >= 0) & (x <= 1)
    w[inside] = 1.0
    for edge in (x, 1.0 - x):
        ramp = inside & (edge < taper)
        w[ramp] = 0.5 - 0.5 * np.cos(np.pi * edge[ramp] / taper)
    return w


def band_mean(power: np.ndarray, freqs: np.ndarray, fraction_octave: float) -> np.ndarray:
    """Mean of ``power`` (last axis = bins) over a fractional-octave band centred on every bin (cumulative sums)."""
    lo, hi = _cached("edges", freqs, float(fraction_octave))
    csum = np.concatenate([np.zeros(np.shape(power)[:-1] + (1,)), np.cumsum(power, axis=-1)], axis=-1)
    return (csum[..., hi] - csum[..., lo]) / (hi - lo)


def _band_edges_uncached(freqs: np.ndarray, fraction_octave: float) -> tuple[np.ndarray, np.ndarray]:
    half = 2.0 ** (fraction_octave / 2)
    lo = np.searchsorted(freqs, freqs / half, side="left")
    hi = np.searchsorted(freqs, freqs * half, side="right")
    return lo, np.maximum(hi, lo + 1)


def _regularisation(power_band: np.ndarray, band: np.ndarray, regularisation: float, floor_db: float,
                    axis_keep: bool) -> np.ndarray:
    """lambda per bin: ``regularisation`` x the band power, plus a floor ``floor_db`` below the strongest band."""
    if axis_keep:
        strongest = np.max(power_band[:, band > 0], axis=1, keepdims=True) if np.any(band > 0) else 0.0
    else:
        strongest = np.max(power_band[band > 0]) if np.any(band > 0) else 0.0
    return regularisation * power_band + 10 ** (floor_db / 10) * strongest + np.finfo(float).tiny


def inverse_filter(probe: np.ndarray, n_fft: int, fs: float, band_hz=DEFAULT_BAND_HZ, regularisation: float = 1e-2,
                   floor_db: float = -40.0, fraction_octave: float = 1 / 3) -> np.ndarray:
    """Spectrum G(f) such that irfft(G * Y) is the band-limited impulse response behind recording Y.

    Wiener form ``conj(P) / (|P|^2 + lambda)`` with lambda proportional to the probe's own power in a
    fractional-octave band around each bin, so single empty bins inside a band (between harmonics) stay
    regularised. Bands more than ``-floor_db`` below the strongest band carry no probe and are suppressed rather
    than amplified (they would only return noise).
    """
    probe = np.asarray(probe, dtype=float)
    if probe.shape[-1] > n_fft:
        raise ValueError(f"probe ({probe.shape[-1]} samples) is longer than the FFT ({n_fft})")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    spectrum = np.fft.rfft(probe, n_fft)
    power = np.abs(spectrum) ** 2
    band = band_window(freqs, (band_hz[0], min(band_hz[1], 0.48 * fs)))
    lam = _regularisation(band_mean(power, freqs, fraction_octave), band, regularisation, floor_db, False)
    return band * np.conj(spectrum) / (power + lam)


def filter_gain(probe: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Real gain G(f) P(f) that ``inverse`` leaves on a response: 1 in well-excited bins, less where regularised.

    A music window excites every bin differently, so its deconvolved response is the true one seen through this
    gain; the empty-room response must be seen through the same gain before it is subtracted.
    """
    return np.real(inverse * np.fft.rfft(np.asarray(probe, float), 2 * (inverse.shape[-1] - 1)))


def room_response(recording: np.ndarray, probe: np.ndarray, fs: float, taps: int, **filter_args) -> np.ndarray:
    """(mics, taps) impulse responses behind a (mics, n) recording of ``probe`` emitted from sample 0.

    Tap k is the delay k / fs. The window is treated as one period of a periodic emission (circular
    deconvolution), which is exact for probes repeated every window; for music it is not, because the previous
    window's echoes are recorded too (see ``emission``).
    ``filter_args`` go to ``inverse_filter`` (band_hz, regularisation, floor_db, fraction_octave).
    """
    recording = np.atleast_2d(np.asarray(recording, dtype=float))
    n = recording.shape[-1]
    if taps > n:
        raise ValueError(f"{taps} taps asked from a {n}-sample recording")
    g = inverse_filter(probe, n, fs, **filter_args)
    return np.fft.irfft(np.fft.rfft(recording, n) * g, n)[:, :taps].astype(np.float32)


def envelope(kernels: np.ndarray) -> np.ndarray:
    """Analytic-signal magnitude along the last axis: a smooth, sign-free echo strength per tap."""
    return np.abs(hilbert(np.asarray(kernels, dtype=float), axis=-1))


def envelope_of_spectrum(spectrum: np.ndarray, n: int) -> np.ndarray:
    """``envelope(irfft(spectrum, n))`` from the one-sided spectrum directly: one inverse FFT instead of three."""
    full = np.zeros(spectrum.shape[:-1] + (n,), dtype=complex)
    half = (n + 1) // 2
    full[..., 0] = spectrum[..., 0]
    full[..., 1:half] = 2 * spectrum[..., 1:half]
    if n % 2 == 0:
        full[..., n // 2] = spectrum[..., n // 2]
    return np.abs(np.fft.ifft(full, axis=-1))


def psf_sidelobe_db(gain: np.ndarray, n: int, guard: int = 3) -> np.ndarray:
    """(P,) strongest sidelobe (dB re peak) of the envelope of ``irfft(gain, n)``: how a point reflector rings.

    ``gain`` (P, F) real is what the deconvolution leaves on a response per bin; taps within ``guard`` of the
    peak count as main lobe. A chirp gives about -25 dB; a music window that is only a chord (harmonic lines,
    no cymbal or consonant) gives -10 dB or worse, i.e. one reflector looks like several.
    """
    env = np.roll(envelope_of_spectrum(gain, n), n // 2, axis=-1)
    peak = np.argmax(env, axis=-1)
    idx = np.arange(n)[None, :]
    side = np.where(np.abs(idx - peak[:, None]) > guard, env, 0.0).max(axis=-1)
    with np.errstate(divide="ignore"):
        return 20 * np.log10(np.maximum(side, 1e-300) / np.maximum(env.max(axis=-1), 1e-300))


class MultiInputWiener:
    """Pair spectra of body echoes from a window where every speaker plays at once (music), with a short memory.

    Per bin, ``B_sm = sum_k a^k X_s,k* R_m,k / (sum_k a^k sum_s' |X_s',k|^2 + lambda)`` over this and earlier
    windows k (``a`` = ``memory``): dividing by every speaker's power (the MMSE answer when all pairs' kernels are
    a priori alike) damps the bins where another speaker is louder than this pair's, which is where its echoes leak
    in; the memory lets a bin that this window's music leaves silent (a chord with no cymbal) borrow from the last
    windows instead of ringing. lambda is per band, relative to the music's power there. ``reset()`` forgets the
    memory (a gap, or a window the empty-room model could not explain).
    """

    def __init__(self, pairs: np.ndarray, fs: float, band_hz: tuple[float, float], regularisation: float,
                 floor_db: float, memory: float):
        self.pairs = pairs
        self.fs = fs
        self.band_hz = band_hz
        self.regularisation = regularisation
        self.floor_db = floor_db
        self.memory = float(np.clip(memory, 0.0, 0.99))
        self._sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._sums = None

    def __call__(self, residual: np.ndarray, emissions: np.ndarray, noise: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Pair spectra (P, F) of the echoes in ``residual`` (M, n), and each pair's gain (point-spread function).

        Each pair is scaled so that its mean gain over the band is one, as a chirp kernel's is; ``noise`` (P, F) is
        added to lambda (the Wiener noise term)."""
        n = residual.shape[-1]
        freqs = np.fft.rfftfreq(n, 1.0 / self.fs)
        band = band_window(freqs, self.band_hz)
        X = np.fft.rfft(emissions.astype(float), n)
        R = np.fft.rfft(residual, n)
        s_idx, m_idx = self.pairs[:, 0], self.pairs[:, 1]
        power = np.abs(X) ** 2
        numerator = np.conj(X[s_idx]) * R[m_idx]
        denominator = np.broadcast_to(np.sum(power, axis=0), numerator.shape)
        own = power[s_idx]
        if self._sums is not None and self._sums[0].shape == numerator.shape:
            numerator = numerator + self.memory * self._sums[0]
            denominator = denominator + self.memory * self._sums[1]
            own = own + self.memory * self._sums[2]
        self._sums = (numerator, denominator, own)
        lam = _regularisation(band_mean(denominator, freqs, 1 / 3), band, self.regularisation, self.floor_db, True)
        if noise is not None:
            lam = lam + noise
        weight = band / (denominator + lam)
        gain = own * weight
        mean_gain = np.maximum(np.sum(gain * band, axis=1) / max(np.sum(band), 1e-12), 1e-12)[:, None]
        return numerator * weight / mean_gain, gain / mean_gain


def split_band_windows(freqs: np.ndarray, band_hz: tuple[float, float], n_bands: int,
                       transition: float = 0.3) -> np.ndarray:
    """(B, F) windows over ``n_bands`` log-spaced bands of ``band_hz`` that sum to exactly one at every bin.

    Band b is ``u_b - u_{b+1}``, where ``u_i`` rises from 0 to 1 across edge i (raised cosine over ``transition``
    of a band's log width); ``u_0 = 1`` and ``u_B = 0``, so the sum telescopes to one. The split is lossless: the
    band responses of a spectrum add up to its full-band response, which is what lets a learned front end weight
    bands while equal weights give back the plain kernel exactly."""
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    edges = np.geomspace(band_hz[0], band_hz[1], n_bands + 1)
    logf = np.log(np.maximum(freqs, 1e-9))
    width = np.log(edges[1] / edges[0]) * float(np.clip(transition, 1e-3, 1.0))
    rises = [np.ones_like(freqs)]
    for edge in edges[1:-1]:
        x = np.clip((logf - np.log(edge)) / width + 0.5, 0.0, 1.0)
        rises.append(0.5 - 0.5 * np.cos(np.pi * x))
    rises.append(np.zeros_like(freqs))
    return np.stack([rises[b] - rises[b + 1] for b in range(n_bands)])


def band_analytic(spectra: np.ndarray, n: int, taps: int, windows: np.ndarray) -> np.ndarray:
    """(P, B, taps) complex analytic signals of each band's response, from pair spectra (P, F) and (B, F) windows.

    Each band's real response is truncated to ``taps`` before its analytic signal is taken, as ``envelope`` does
    with the full-band response, so that ``|sum_b band_analytic[:, b]|`` equals ``envelope(irfft(spectra)[:taps])``
    (the Hilbert transform is linear)."""
    responses = np.fft.irfft(spectra[:, None, :] * windows[None], n)[..., :taps]
    return hilbert(responses, axis=-1)


def band_mean_db(power: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(..., B) dB of the window-weighted mean of ``power`` (..., F) in each band."""
    mean = np.einsum("...f,bf->...b", power, windows) / np.maximum(windows.sum(axis=-1), 1e-12)
    return 10 * np.log10(np.maximum(mean, 1e-300))
