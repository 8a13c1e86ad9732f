"""Pose kernels from raw captures: deconvolution, empty-room model, subtraction, alignment, envelope, range gate.

The kernel of a (speaker, mic) pair is what the body adds to the room's impulse response. A capture is
deconvolved by the known emission (regularised, per band, so music works as well as chirps), aligned so that the
direct speaker->mic path sits at its geometric delay (this absorbs device latency and clock offset), the
empty-room response is subtracted, and the analytic-signal envelope is kept inside the useful range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import hilbert

from .probes import DEFAULT_BAND_HZ


class AudioInputError(ValueError):
    """A capture that cannot give a trustworthy kernel; ``reason`` is a short code for diagnostics and logs.

    Codes: ``shape``, ``channel_count``, ``sample_rate``, ``length``, ``non_finite``, ``clipped``, ``no_probe``.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _band_window(freqs: np.ndarray, band_hz: tuple[float, float], taper: float = 0.25) -> np.ndarray:
    """Tukey-shaped pass band: smooth edges keep the kernel's time sidelobes low (no fake reflectors)."""
    f0, f1 = band_hz
    x = (freqs - f0) / (f1 - f0)
    w = np.zeros_like(freqs)
    inside = (x >= 0) & (x <= 1)
    w[inside] = 1.0
    for edge in (x, 1.0 - x):
        ramp = inside & (edge < taper)
        w[ramp] = 0.5 - 0.5 * np.cos(np.pi * edge[ramp] / taper)
    return w


def _band_mean(power: np.ndarray, freqs: np.ndarray, fraction_octave: float) -> np.ndarray:
    """Mean of ``power`` over a fractional-octave band centred on every bin (cumulative sums, O(F))."""
    half = 2.0 ** (fraction_octave / 2)
    lo = np.searchsorted(freqs, freqs / half, side="left")
    hi = np.searchsorted(freqs, freqs * half, side="right")
    hi = np.maximum(hi, lo + 1)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    return (csum[hi] - csum[lo]) / (hi - lo)


def inverse_filter(probe: np.ndarray, n_fft: int, fs: float, band_hz=DEFAULT_BAND_HZ, regularisation: float = 1e-2,
                   floor_db: float = -40.0, fraction_octave: float = 1 / 3) -> np.ndarray:
    """Spectrum G(f) such that irfft(G * Y) is the band-limited impulse response behind recording Y.

    Wiener form ``conj(P) / (|P|^2 + lambda)`` with lambda proportional to the probe's own power in a
    fractional-octave band around each bin: a music probe with 40 dB less treble than bass is still whitened
    band by band instead of having its weak bands drowned by one global lambda, while single empty bins inside a
    band (between harmonics) stay regularised. Bands more than ``-floor_db`` below the strongest band carry no
    probe and are suppressed rather than amplified (they would only return noise).
    """
    probe = np.asarray(probe, dtype=float)
    if probe.shape[-1] > n_fft:
        raise ValueError(f"probe ({probe.shape[-1]} samples) is longer than the FFT ({n_fft})")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    spectrum = np.fft.rfft(probe, n_fft)
    power = np.abs(spectrum) ** 2
    band = _band_window(freqs, (band_hz[0], min(band_hz[1], 0.48 * fs)))
    local = _band_mean(power, freqs, fraction_octave)
    strongest = np.max(local[band > 0]) if np.any(band > 0) else 0.0
    lam = regularisation * local + 10 ** (floor_db / 10) * strongest + np.finfo(float).tiny
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


def range_gate(taps: int, fs: float, c: float, min_path_m: np.ndarray, max_path_m: np.ndarray,
               edge_m: float = 0.05) -> np.ndarray:
    """(pairs, taps) weights that keep bistatic path lengths in [min_path, max_path] with raised-cosine edges."""
    path = np.arange(taps) * c / fs
    lo = np.asarray(min_path_m, dtype=float)[:, None]
    hi = np.asarray(max_path_m, dtype=float)[:, None]
    rise = np.clip((path - lo) / edge_m + 0.5, 0, 1)
    fall = np.clip((hi - path) / edge_m + 0.5, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))


@dataclass
class KernelQuality:
    """Per-frame figures for diagnostics. Arrays are per pair."""

    snr_db: np.ndarray                 # direct-path peak power over the median response power (noise + late reverb)
    clipped_fraction: float            # share of recorded samples at or above the clip level
    direct_delay_drift_s: np.ndarray   # measured minus geometric direct-path delay, before alignment
    applied_shift_s: float             # common shift removed from every pair (median of the reliable drifts)
    empty_room_ready: bool
    empty_room_frames: int             # frames the empty-room model has absorbed since it was (re)captured


@dataclass
class PoseKernelFrame:
    """Output of one capture: ``kernels`` is None until an empty-room response exists."""

    kernels: np.ndarray | None   # (pairs, taps) float32 envelope of (response - empty room), range-gated
    responses: np.ndarray        # (pairs, taps) float32 aligned room responses (what the empty-room model learns)
    quality: KernelQuality


@dataclass
class KernelConfig:
    """Settings of the kernel pipeline (the node maps its parameters onto these)."""

    fs: int = 48000
    taps: int = 1200
    band_hz: tuple[float, float] = DEFAULT_BAND_HZ
    regularisation: float = 1e-2
    floor_db: float = -40.0
    min_range_m: float = 0.3          # one-way range below which the direct-path residue dominates
    max_range_m: float = 4.5
    clip_level: float = 0.999
    max_clipped_fraction: float = 1e-4
    min_snr_db: float = 12.0          # below this the capture is treated as holding no probe
    max_drift_s: float = 1e-3         # search half-width for the direct path around its geometric delay
    empty_room_rate: float = 0.02     # exponential update weight per frame while nobody is present
    empty_room_frames: int = 8        # frames averaged by an explicit empty-room capture


class EmptyRoomModel:
    """Per-pair empty-room response in the frequency domain: an explicit average, then slow tracking.

    Each frame brings ``z = gain * H + noise`` (see ``filter_gain``); the model keeps ``sum z`` and ``sum gain``
    so that ``H = sum z / sum gain`` is unbiased even when every frame (music) has a different gain, and
    ``expected(gain)`` is what an empty room would give through this frame's gain.
    """

    def __init__(self, rate: float = 0.02, capture_frames: int = 8):
        self.rate = float(rate)
        self.capture_frames = int(capture_frames)
        self.frames = 0
        self._num = self._den = None
        self._pending = 0
        self._acc_num = self._acc_den = None

    @property
    def ready(self) -> bool:
        return self._num is not None

    @property
    def capturing(self) -> bool:
        return self._pending > 0

    def request_capture(self, frames: int | None = None) -> None:
        """Average the next ``frames`` frames into a fresh model (the operator vouches the room is empty)."""
        self._pending = self.capture_frames if frames is None else max(1, int(frames))
        self._acc_num = self._acc_den = None

    def response(self) -> np.ndarray:
        """(pairs, F) unbiased empty-room spectra."""
        return self._num / np.maximum(self._den, 1e-6)

    def expected(self, gain: np.ndarray) -> np.ndarray:
        return gain * self.response()

    def observe(self, z: np.ndarray, gain: np.ndarray, person_present: bool | None) -> None:
        """Feed one frame: completes a pending capture, else tracks slowly when ``person_present`` is False."""
        if self._pending:
            self._acc_num = z.copy() if self._acc_num is None else self._acc_num + z
            self._acc_den = gain.copy() if self._acc_den is None else self._acc_den + gain
            self._pending -= 1
            if not self._pending:
                self._num, self._den = self._acc_num, self._acc_den
                self.frames = self.capture_frames
        elif self.ready and person_present is False:
            total = float(np.mean(self._den[self._den > 0])) if np.any(self._den > 0) else 1.0
            keep = 1.0 - self.rate
            self._num = keep * self._num + self.rate * total * z
            self._den = keep * self._den + self.rate * total * gain
            self.frames += 1


class PoseKernelExtractor:
    """Stateful capture -> pose-kernel pipeline for a fixed rig (no ROS; the node feeds it frames).

    ``pairs`` (P, 2) are (speaker index, mic index); ``direct_path_m`` (P,) the speaker-mic distances that fix
    where the direct path must appear; ``n_mics`` the channel count a capture must have.
    """

    def __init__(self, pairs: np.ndarray, direct_path_m: np.ndarray, n_mics: int, c: float,
                 config: KernelConfig | None = None):
        self.config = config or KernelConfig()
        self.pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
        self.direct_path_m = np.asarray(direct_path_m, dtype=float).ravel()
        if self.direct_path_m.shape[0] != self.pairs.shape[0]:
            raise ValueError("one direct-path distance per pair is needed")
        self.n_mics = int(n_mics)
        if self.pairs[:, 1].max() >= self.n_mics:
            raise ValueError("a pair names a mic beyond n_mics")
        self.n_speakers = int(self.pairs[:, 0].max()) + 1
        self.c = float(c)
        cfg = self.config
        self.empty_room = EmptyRoomModel(cfg.empty_room_rate, cfg.empty_room_frames)
        self.gate = range_gate(cfg.taps, cfg.fs, self.c, self.direct_path_m + 2 * cfg.min_range_m,
                               self.direct_path_m + 2 * cfg.max_range_m)
        self._filters: dict[int, tuple[bytes, np.ndarray, np.ndarray]] = {}

    # -- validation -------------------------------------------------------------------------------------------
    def validate(self, recording: np.ndarray, emissions: np.ndarray, fs: float) -> float:
        """Raise ``AudioInputError`` for captures that would give garbage; return the clipped fraction."""
        cfg = self.config
        if not isinstance(recording, np.ndarray) or recording.ndim != 2:
            raise AudioInputError("shape", f"recording must be a (mics, samples) array, got "
                                           f"{getattr(recording, 'shape', type(recording).__name__)}")
        if recording.shape[0] != self.n_mics:
            raise AudioInputError("channel_count", f"expected {self.n_mics} mic channels, got {recording.shape[0]}")
        if int(fs) != cfg.fs:
            raise AudioInputError("sample_rate", f"capture at {fs} Hz, pipeline configured for {cfg.fs} Hz")
        if emissions.ndim != 2 or emissions.shape[0] < self.n_speakers or emissions.shape[1] != recording.shape[1]:
            raise AudioInputError("length", f"emissions {emissions.shape} do not match {self.n_speakers} speakers "
                                            f"x {recording.shape[1]} recorded samples")
        if recording.shape[1] < cfg.taps:
            raise AudioInputError("length", f"{recording.shape[1]} samples is shorter than {cfg.taps} taps")
        if not np.all(np.isfinite(recording)):
            raise AudioInputError("non_finite", f"{np.count_nonzero(~np.isfinite(recording))} NaN/Inf samples")
        clipped = float(np.mean(np.abs(recording) >= cfg.clip_level))
        if clipped > cfg.max_clipped_fraction:
            raise AudioInputError("clipped", f"{clipped:.2%} of samples at full scale (limit "
                                             f"{cfg.max_clipped_fraction:.2%}); lower the input gain")
        return clipped

    # -- processing -------------------------------------------------------------------------------------------
    def _inverse(self, speaker: int, emission: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse filter and gain of one speaker's emission, reused while the emission does not change."""
        key = emission.tobytes()
        cached = self._filters.get(speaker)
        if cached is None or cached[0] != key:
            cfg = self.config
            g = inverse_filter(emission, emission.shape[-1], cfg.fs, cfg.band_hz, cfg.regularisation, cfg.floor_db)
            cached = self._filters[speaker] = (key, g, filter_gain(emission, g))
        return cached[1], cached[2]

    def deconvolve(self, recording: np.ndarray, emissions: np.ndarray):
        """Aligned pair spectra z (P, F), their gains (P, F), per-pair SNR (dB) and drift, common shift (samples)."""
        cfg = self.config
        n = recording.shape[-1]
        spectra = np.fft.rfft(recording.astype(float), n)
        filters = [self._inverse(s, np.asarray(emissions[s], float)) for s in range(self.n_speakers)]
        inverses, gains = np.stack([f[0] for f in filters]), np.stack([f[1] for f in filters])
        z = spectra[self.pairs[:, 1]] * inverses[self.pairs[:, 0]]
        env = envelope(np.fft.irfft(z, n))
        expected = self.direct_path_m / self.c * cfg.fs
        half = max(2, int(round(cfg.max_drift_s * cfg.fs)))
        lo = np.floor(expected).astype(int) - half
        width = 2 * half + 1
        search = np.take_along_axis(env, (lo[:, None] + np.arange(width)[None, :]) % n, axis=1)
        k = np.clip(np.argmax(search, axis=1), 1, width - 2)
        rows = np.arange(len(k))
        a, b, c = search[rows, k - 1], search[rows, k], search[rows, k + 1]
        denom = a - 2 * b + c
        frac = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
        drift = lo + k + np.clip(frac, -0.5, 0.5) - expected
        floor = np.median(env[:, : max(cfg.taps, n // 2)] ** 2, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.nan_to_num(10 * np.log10(np.max(search, axis=1) ** 2 / floor), nan=-np.inf)
        reliable = snr >= cfg.min_snr_db
        shift = float(np.median(drift[reliable])) if np.any(reliable) else 0.0
        z = z * np.exp(2j * np.pi * np.fft.rfftfreq(n) * shift)
        return z, gains[self.pairs[:, 0]], snr, drift, shift

    def process(self, recording: np.ndarray, emissions: np.ndarray, fs: float,
                person_present: bool | None = None) -> PoseKernelFrame:
        """Turn one capture into pose kernels; raises ``AudioInputError`` instead of returning garbage.

        ``recording`` (mics, n) float in [-1, 1]; ``emissions`` (speakers, n) what each speaker played in the
        same window; ``person_present`` False lets the empty-room model track slow changes, None leaves it alone.
        """
        cfg = self.config
        emissions = np.asarray(emissions, dtype=np.float32)
        clipped = self.validate(recording, emissions, fs)
        z, gain, snr, drift, shift = self.deconvolve(recording, emissions)
        if np.median(snr) < cfg.min_snr_db:
            raise AudioInputError("no_probe", f"no direct path found (median SNR {np.median(snr):.1f} dB < "
                                              f"{cfg.min_snr_db} dB): speakers silent or not captured")
        n = recording.shape[-1]
        kernels = None
        if self.empty_room.ready:
            residual = np.fft.irfft(z - self.empty_room.expected(gain), n)[:, : cfg.taps]
            kernels = (envelope(residual) * self.gate).astype(np.float32)
        self.empty_room.observe(z, gain, person_present)
        quality = KernelQuality(snr_db=snr, clipped_fraction=clipped, direct_delay_drift_s=drift / cfg.fs,
                                applied_shift_s=shift / cfg.fs, empty_room_ready=self.empty_room.ready,
                                empty_room_frames=self.empty_room.frames)
        responses = np.fft.irfft(z, n)[:, : cfg.taps].astype(np.float32)
        return PoseKernelFrame(kernels=kernels, responses=responses, quality=quality)
