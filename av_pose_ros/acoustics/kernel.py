"""Pose kernels from raw captures: deconvolution, empty-room model, subtraction, alignment, envelope, range gate.

The kernel of a (speaker, mic) pair is what the body adds to the room's impulse response. A capture is
deconvolved by the known emission (regularised, per band, so music works as well as chirps), aligned so that the
direct speaker->mic path sits at its geometric delay (this absorbs device latency and clock offset), the
empty-room response is subtracted, and the analytic-signal envelope is kept inside the useful range.

Two probe families need two ways of doing that (``KernelConfig.probe_mode``):

* ``periodic`` (chirps and sweeps in time slots, the same every window): a window is one period, so circular
  deconvolution by the window's emission is exact, and the empty room is kept per pair in the frequency domain.
* ``continuous`` (music, BGM mode): every window carries different music and also records the room's echoes of the
  previous windows, and all speakers overlap. The empty room is a multi-speaker model (``room_model.RoomModel``:
  every (speaker, mic) impulse response over the whole reverberant tail, fitted by least squares over a few
  seconds of known emission); each window's empty-room recording is *predicted* from the emission history and
  subtracted in the time domain, and only the remainder (body echoes and noise) is deconvolved, by a multi-input
  Wiener filter that divides by all speakers' power per bin so that bins dominated by another speaker are damped.
  The extractor keeps the emission history itself, so it must see every window in order (``sequence`` detects gaps;
  after one it needs ``room_taps`` samples of history again before it can subtract).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import hilbert

from .probes import DEFAULT_BAND_HZ
from .room_model import RoomModel


class AudioInputError(ValueError):
    """A capture that cannot give a trustworthy kernel; ``reason`` is a short code for diagnostics and logs.

    Codes: ``shape``, ``channel_count``, ``sample_rate``, ``length``, ``non_finite``, ``clipped``, ``no_probe``.
    ``REASONS`` lists them with a one-line meaning (for diagnostics).
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason

    REASONS = {
        "shape": "recording is not a (mics, samples) array",
        "channel_count": "number of mic channels differs from the rig",
        "sample_rate": "capture sample rate differs from the pipeline's",
        "length": "window or probe length does not fit the recording / kernel length",
        "non_finite": "NaN or Inf samples",
        "clipped": "too many samples at full scale",
        "no_probe": "no direct path found: the probe was not played or not captured",
    }


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


def _band_window(freqs: np.ndarray, band_hz: tuple[float, float], taper: float = 0.25) -> np.ndarray:
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


def _band_mean(power: np.ndarray, freqs: np.ndarray, fraction_octave: float) -> np.ndarray:
    """Mean of ``power`` (last axis = bins) over a fractional-octave band centred on every bin (cumulative sums)."""
    lo, hi = _cached("edges", freqs, float(fraction_octave))
    csum = np.concatenate([np.zeros(np.shape(power)[:-1] + (1,)), np.cumsum(power, axis=-1)], axis=-1)
    return (csum[..., hi] - csum[..., lo]) / (hi - lo)


def _band_edges_uncached(freqs: np.ndarray, fraction_octave: float) -> tuple[np.ndarray, np.ndarray]:
    half = 2.0 ** (fraction_octave / 2)
    lo = np.searchsorted(freqs, freqs / half, side="left")
    hi = np.searchsorted(freqs, freqs * half, side="right")
    return lo, np.maximum(hi, lo + 1)


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


def envelope_of_spectrum(spectrum: np.ndarray, n: int) -> np.ndarray:
    """``envelope(irfft(spectrum, n))`` from the one-sided spectrum directly: one inverse FFT instead of three."""
    full = np.zeros(spectrum.shape[:-1] + (n,), dtype=complex)
    half = (n + 1) // 2
    full[..., 0] = spectrum[..., 0]
    full[..., 1:half] = 2 * spectrum[..., 1:half]
    if n % 2 == 0:
        full[..., n // 2] = spectrum[..., n // 2]
    return np.abs(np.fft.ifft(full, axis=-1))


def range_gate(taps: int, fs: float, c: float, min_path_m: np.ndarray, max_path_m: np.ndarray,
               edge_m: float = 0.05) -> np.ndarray:
    """(pairs, taps) weights that keep bistatic path lengths in [min_path, max_path] with raised-cosine edges."""
    path = np.arange(taps) * c / fs
    lo = np.asarray(min_path_m, dtype=float)[:, None]
    hi = np.asarray(max_path_m, dtype=float)[:, None]
    rise = np.clip((path - lo) / edge_m + 0.5, 0, 1)
    fall = np.clip((hi - path) / edge_m + 0.5, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))


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


@dataclass
class KernelQuality:
    """Per-frame figures for diagnostics. Arrays are per pair."""

    snr_db: np.ndarray                 # direct-path peak power over the median response power (noise + late reverb)
    clipped_fraction: float            # share of recorded samples at or above the clip level
    direct_delay_drift_s: np.ndarray   # measured minus geometric direct-path delay, before alignment
    applied_shift_s: float             # common shift removed from every pair (median of the reliable drifts)
    empty_room_ready: bool
    empty_room_frames: int             # frames the empty-room model has absorbed since it was (re)captured
    probe_mode: str = "periodic"       # how this window was deconvolved: "periodic" or "continuous"
    history_ok: bool = True            # continuous mode: enough gap-free emission history to subtract the room
    empty_room_residual_db: float = float("nan")  # continuous mode: recording energy the empty-room model leaves
    #                                    unexplained, dB re the recording (body echoes + noise + model error)
    latency_jump_samples: int = 0      # continuous mode: whole-sample device latency change since the capture
    psf_sidelobe_db: np.ndarray | None = None  # continuous mode, per pair: strongest sidelobe of a point
    #                                    reflector's kernel re its peak (music without broadband content rings)


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
    probe_mode: str = "auto"          # "periodic", "continuous" (music) or "auto": continuous once two successive
    #                                   windows carry different emissions
    room_taps: int = 9600             # continuous mode: length of every empty-room response (whole reverb tail)
    music_capture_frames: int = 82    # continuous mode: frames of a default empty-room capture. The model only
    #                                   predicts music it has heard: 8 s (the simulator's music loop) + 0.2 s of tail.
    #                                   Any capture takes at least 2 x speakers x room_taps samples (the unknowns)
    room_fit_iterations: int = 150    # continuous mode: conjugate-gradient iterations of the empty-room fit
    room_ridge: float = 1e-6          # continuous mode: ridge per band, relative to the music's power there
    room_floor_db: float = -80.0      # continuous mode: ridge floor re the strongest band
    max_room_residual_db: float = -30.0  # continuous mode: a window whose recording the empty-room model leaves
    #                                   more unexplained than this (music it never heard) gives no kernel
    echo_prior_db: float | None = -40.0  # continuous mode: expected body-echo power re the pair's empty-room
    #                                   response, for the Wiener noise term (None: no noise term)
    music_memory: float = 0.5         # continuous mode: weight of the previous windows in each bin's deconvolution
    #                                   (0 = this window alone; 0.5 = about two windows, 200 ms)


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
        self.requested = 0
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
        self.requested = self._pending
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


class ContinuousEmptyRoom:
    """Empty room for a continuous probe: a ``RoomModel`` fitted over an explicit capture, then slow tracking.

    Same interface as ``EmptyRoomModel`` (``ready``, ``capturing``, ``frames``, ``request_capture``). An explicit
    capture collects gap-free windows (recording and emission), at least twice as many samples as the model has
    unknowns per mic, and fits the model when the last one arrives; a gap restarts it. The model predicts well only
    the music it has heard, so the capture should span the music loop (or the slow tracking should run for a while
    with the room empty); ``KernelQuality.empty_room_residual_db`` shows when it does not.
    """

    def __init__(self, n_mics: int, config: KernelConfig):
        self.config = config
        self.n_mics = int(n_mics)
        self.model: RoomModel | None = None       # made at the first capture (speakers = emission rows)
        self.rate = float(config.empty_room_rate)
        self.capture_frames = int(config.music_capture_frames)
        self.frames = 0
        self.fit_report = None
        self.reference_shift = 0.0      # common clock shift (samples) while the model was captured
        self._pending = 0
        self.requested = self._requested = 0
        self._prefix = None
        self._buffer: list[tuple[np.ndarray, np.ndarray, float]] = []

    @property
    def ready(self) -> bool:
        return self.model is not None and self.model.ready

    @property
    def capturing(self) -> bool:
        return self._pending > 0

    def request_capture(self, frames: int | None = None) -> None:
        """Fit a fresh model over the next ``frames`` windows (default ``music_capture_frames``; the operator
        vouches the room is empty)."""
        frames = self.capture_frames if frames is None else max(1, int(frames))
        self.requested = self._requested = self._pending = frames
        self._buffer = []
        self._prefix = None

    def restart_capture(self) -> None:
        """A gap in the stream: the capture has to start again (the fit needs one gap-free stretch)."""
        if self._pending:
            self.request_capture(self._requested)

    def collect(self, recording: np.ndarray, emission: np.ndarray, history: np.ndarray, shift: float) -> bool:
        """Add one window to a pending capture; fits when it is complete. Returns True when a new model was fitted."""
        if not self._pending:
            return False
        cfg = self.config
        if not self._buffer:
            self._prefix = history[:, -(cfg.room_taps - 1):]
            needed = int(np.ceil((2 * emission.shape[0] * cfg.room_taps + cfg.room_taps) / recording.shape[-1]))
            self._pending = max(self._pending, needed)
        self._buffer.append((np.asarray(recording, float), np.asarray(emission, float), float(shift)))
        self._pending -= 1
        if self._pending:
            return False
        x = np.concatenate([self._prefix] + [e for _, e, _ in self._buffer], axis=-1)
        y = np.concatenate([r for r, _, _ in self._buffer], axis=-1)
        fitted = RoomModel(x.shape[0], self.n_mics, cfg.room_taps, cfg.room_ridge, cfg.room_floor_db)
        self.fit_report = fitted.fit(x, y, self._prefix.shape[-1], iterations=self.config.room_fit_iterations)
        self.model = fitted
        self.reference_shift = float(np.median([s for _, _, s in self._buffer]))
        self.frames = len(self._buffer)
        self._buffer = []
        self._prefix = None
        return True

    def track(self, history: np.ndarray, error: np.ndarray) -> None:
        """One slow update from a window recorded while nobody is present (``error`` = recorded - predicted)."""
        self.model.adapt(history, error, self.rate)
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
        if cfg.probe_mode not in ("auto", "periodic", "continuous"):
            raise ValueError(f"probe_mode {cfg.probe_mode!r} is not 'auto', 'periodic' or 'continuous'")
        self.mode = "continuous" if cfg.probe_mode == "continuous" else "periodic"
        self.empty_room = self._new_empty_room(self.mode)
        self.gate = range_gate(cfg.taps, cfg.fs, self.c, self.direct_path_m + 2 * cfg.min_range_m,
                               self.direct_path_m + 2 * cfg.max_range_m)
        self._filters: dict[int, tuple[bytes, np.ndarray, np.ndarray]] = {}
        # emission history (continuous mode): the last room_taps - 1 samples before the current window
        self._history: np.ndarray | None = None
        self._last_emission: np.ndarray | None = None
        self._last_sequence: int | None = None
        self._recent_shifts: list[float] = []
        self._music_memory: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._last_window: tuple[np.ndarray, np.ndarray, float] | None = None
        self._noise_cache = None

    def _new_empty_room(self, mode: str):
        cfg = self.config
        if mode == "continuous":
            return ContinuousEmptyRoom(self.n_mics, cfg)
        return EmptyRoomModel(cfg.empty_room_rate, cfg.empty_room_frames)

    def _set_mode(self, mode: str) -> None:
        """Switch the deconvolution (auto mode); a pending or finished capture request carries over."""
        if mode == self.mode:
            return
        old = self.empty_room
        self.mode = mode
        self.empty_room = self._new_empty_room(mode)
        if old.capturing or old.ready:
            self.empty_room.request_capture(old.requested or None)
            previous = self._last_window
            if mode == "continuous" and previous is not None:   # the window that looked periodic counts too
                recording, emission, shift = previous
                self.empty_room.collect(recording, emission, emission[:, :0].astype(float), shift)

    # -- emission history (continuous mode) ---------------------------------------------------------------------
    def _contiguous(self, emissions: np.ndarray, sequence: int | None) -> bool:
        """Whether this window directly follows the previous one that was processed."""
        if self._last_emission is None or self._last_emission.shape != emissions.shape:
            return False
        return sequence is None or self._last_sequence is None or int(sequence) == self._last_sequence + 1

    def _push_history(self, emissions: np.ndarray, sequence: int | None, contiguous: bool) -> None:
        keep = self.config.room_taps - 1
        if self.config.probe_mode != "periodic":
            previous = self._history if contiguous and self._history is not None else emissions[:, :0]
            self._history = np.concatenate([previous, emissions], axis=-1)[:, -keep:]
        self._last_emission = emissions
        self._last_sequence = None if sequence is None else int(sequence)

    def _forget_history(self) -> None:
        self._music_memory = None
        self._history = None
        self._last_emission = None
        self._last_sequence = None

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
        n = recording.shape[-1]
        spectra = np.fft.rfft(recording.astype(float), n)
        filters = [self._inverse(s, np.asarray(emissions[s], float)) for s in range(self.n_speakers)]
        inverses, gains = np.stack([f[0] for f in filters]), np.stack([f[1] for f in filters])
        z = spectra[self.pairs[:, 1]] * inverses[self.pairs[:, 0]]
        snr, drift, shift = self._direct_path(envelope_of_spectrum(z, n))
        z = z * np.exp(2j * np.pi * np.fft.rfftfreq(n) * shift)
        return z, gains[self.pairs[:, 0]], snr, drift, shift

    def _direct_path(self, env: np.ndarray):
        """Per-pair SNR (dB) and drift (samples) of the direct-path peak in envelopes (P, n), and their common shift
        (median drift of the pairs above ``min_snr_db``)."""
        cfg = self.config
        n = env.shape[-1]
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
        return snr, drift, shift

    def _model_shift(self, room: ContinuousEmptyRoom) -> float:
        """Common clock shift (samples) of a fitted room model: where its pairs' direct paths sit. The model has no
        spill and no crosstalk, so this is steadier than any one music window's estimate."""
        cfg = self.config
        h = room.model.h[self.pairs[:, 0], self.pairs[:, 1]]
        n = h.shape[-1]
        band = _band_window(np.fft.rfftfreq(n, 1.0 / cfg.fs), (cfg.band_hz[0], min(cfg.band_hz[1], 0.48 * cfg.fs)))
        return self._direct_path(envelope_of_spectrum(np.fft.rfft(h, n) * band, n))[2]

    def process(self, recording: np.ndarray, emissions: np.ndarray, fs: float,
                person_present: bool | None = None, sequence: int | None = None) -> PoseKernelFrame:
        """Turn one capture into pose kernels; raises ``AudioInputError`` instead of returning garbage.

        ``recording`` (mics, n) float in [-1, 1]; ``emissions`` (speakers, n) what each speaker played in the
        same window; ``person_present`` False lets the empty-room model track slow changes, None leaves it alone;
        ``sequence`` (window counter, optional) lets a continuous probe detect dropped windows (without it,
        successive calls are taken as successive windows).
        """
        cfg = self.config
        emissions = np.asarray(emissions, dtype=np.float32)
        contiguous = self._contiguous(emissions, sequence)
        try:
            clipped = self.validate(recording, emissions, fs)
        except AudioInputError as err:
            if err.reason in ("non_finite", "clipped"):
                self._push_history(emissions, sequence, contiguous)   # the speakers still played this window
            else:
                self._forget_history()
            if self.mode == "continuous" and isinstance(self.empty_room, ContinuousEmptyRoom):
                self.empty_room.restart_capture()
            raise
        z, gain, snr, drift, shift = self.deconvolve(recording, emissions)
        if np.median(snr) < cfg.min_snr_db:
            self._forget_history()
            if isinstance(self.empty_room, ContinuousEmptyRoom):
                self.empty_room.restart_capture()
            raise AudioInputError("no_probe", f"no direct path found (median SNR {np.median(snr):.1f} dB < "
                                              f"{cfg.min_snr_db} dB): speakers silent or not captured")
        if cfg.probe_mode == "auto" and contiguous:
            self._set_mode("periodic" if np.array_equal(emissions, self._last_emission) else "continuous")
        self._last_window = (recording, emissions, shift) if cfg.probe_mode == "auto" else None
        if self.mode == "continuous":
            frame = self._process_continuous(recording, emissions, z, snr, drift, shift, clipped, person_present,
                                             contiguous)
        else:
            frame = self._process_periodic(recording, z, gain, snr, drift, shift, clipped, person_present)
        self._push_history(emissions, sequence, contiguous)
        return frame

    def _process_periodic(self, recording, z, gain, snr, drift, shift, clipped, person_present) -> PoseKernelFrame:
        cfg = self.config
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

    def _multi_input_wiener(self, residual: np.ndarray, emissions: np.ndarray, noise: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Pair spectra (P, F) of the body echoes in ``residual`` (M, n), and each pair's point-spread function.

        Per bin, ``B_sm = sum_k a^k X_s,k* R_m,k / (sum_k a^k sum_s' |X_s',k|^2 + lambda)`` over this and earlier
        windows k (``a`` = ``music_memory``): dividing by every speaker's power (the MMSE answer when all pairs'
        kernels are a priori alike) damps the bins where another speaker is louder than this pair's, which is
        where its echoes leak in; the short memory lets a bin that this window's music leaves silent (a chord with
        no cymbal) borrow from the last windows instead of ringing. lambda is per band, relative to the music's
        power there. Each pair is scaled so that its mean gain over the band is one, as a chirp kernel's is; the
        point-spread function is what a single reflector would look like through that gain (for ``psf_sidelobe``).
        """
        cfg = self.config
        n = residual.shape[-1]
        freqs = np.fft.rfftfreq(n, 1.0 / cfg.fs)
        band = _band_window(freqs, (cfg.band_hz[0], min(cfg.band_hz[1], 0.48 * cfg.fs)))
        X = np.fft.rfft(emissions.astype(float), n)
        R = np.fft.rfft(residual, n)
        s_idx, m_idx = self.pairs[:, 0], self.pairs[:, 1]
        power = np.abs(X) ** 2
        numerator = np.conj(X[s_idx]) * R[m_idx]
        denominator = np.broadcast_to(np.sum(power, axis=0), numerator.shape)
        own = power[s_idx]
        memory = self._music_memory
        if memory is not None and memory[0].shape == numerator.shape:
            a = float(np.clip(cfg.music_memory, 0.0, 0.99))
            numerator = numerator + a * memory[0]
            denominator = denominator + a * memory[1]
            own = own + a * memory[2]
        self._music_memory = (numerator, denominator, own)
        local = _band_mean(denominator, freqs, 1 / 3)
        strongest = np.max(local[:, band > 0], axis=1, keepdims=True) if np.any(band > 0) else 0.0
        lam = cfg.regularisation * local + 10 ** (cfg.floor_db / 10) * strongest + np.finfo(float).tiny
        if noise is not None:
            lam = lam + noise
        weight = band / (denominator + lam)
        gain = own * weight
        mean_gain = np.maximum(np.sum(gain * band, axis=1) / max(np.sum(band), 1e-12), 1e-12)[:, None]
        return numerator * weight / mean_gain, gain / mean_gain

    def _noise_term(self, room: ContinuousEmptyRoom, n: int) -> np.ndarray | None:
        """(P, F) Wiener noise term per pair: what the room fit left unexplained at the pair's mic, over the power
        a body echo is expected to have (``echo_prior_db`` re the pair's empty-room response, direct path included).
        Music is weak in the treble where sensor noise is not, so without it the whitening amplifies noise there."""
        cfg = self.config
        if room.model is None or room.model.noise_psd is None or cfg.echo_prior_db is None:
            return None
        key = (id(room.model), n)
        if self._noise_cache is None or self._noise_cache[0] != key:
            noise = room.model.noise_power(n, cfg.fs)[self.pairs[:, 1]]
            h = room.model.h[self.pairs[:, 0], self.pairs[:, 1]]
            response = np.mean(np.abs(np.fft.rfft(h, n)) ** 2, axis=1, keepdims=True)
            self._noise_cache = (key, noise / (10 ** (cfg.echo_prior_db / 10) * response))
        return self._noise_cache[1]

    def _process_continuous(self, recording, emissions, z, snr, drift, shift, clipped, person_present,
                            contiguous) -> PoseKernelFrame:
        cfg = self.config
        n = recording.shape[-1]
        room: ContinuousEmptyRoom = self.empty_room
        history = self._history if contiguous and self._history is not None else emissions[:, :0]
        history = history.astype(float)
        history_ok = history.shape[-1] >= cfg.room_taps - 1
        if room.capturing:
            if not contiguous:
                room.restart_capture()
            if room.collect(recording, emissions, history, shift):
                room.reference_shift = self._model_shift(room)
                self._recent_shifts = []
        kernels = None
        residual_db = float("nan")
        psf_db = None
        jump = 0
        applied = shift
        responses = None
        if room.ready:
            applied = room.reference_shift
            self._recent_shifts = (self._recent_shifts + [shift])[-5:]
        if room.ready and history_ok:
            x = np.concatenate([history, emissions.astype(float)], axis=-1)
            energy = max(float(np.sum(recording.astype(float) ** 2)), 1e-300)
            residual = recording.astype(float) - room.model.predict(x, n)
            residual_db = float(10 * np.log10(np.sum(residual ** 2) / energy))
            # The device latency may have jumped (stream restart): only when the last windows agree on a whole-sample
            # move of the direct path (music windows alone are too noisy to trust one), and the moved model explains
            # this window better, is it applied.
            recent = np.asarray(self._recent_shifts)
            candidate = int(np.round(np.median(recent) - room.reference_shift)) if len(recent) == 5 else 0
            if candidate and np.ptp(recent) < 1.0 and -8 <= candidate <= cfg.room_taps // 4:
                moved = recording.astype(float) - room.model.predict(x, n, shift=candidate)
                moved_db = float(10 * np.log10(np.sum(moved ** 2) / energy))
                if moved_db < residual_db - 3.0:
                    jump, residual, residual_db = candidate, moved, moved_db
                    applied = room.reference_shift + jump
            if person_present is False and not room.capturing:
                room.track(x, residual)
            if residual_db <= cfg.max_room_residual_db:
                spectra, psf_gain = self._multi_input_wiener(residual, emissions, self._noise_term(room, n))
                guard = max(3, int(round(cfg.fs / (cfg.band_hz[1] - cfg.band_hz[0]))))
                psf_db = psf_sidelobe_db(psf_gain, n, guard)
                align = np.exp(2j * np.pi * np.fft.rfftfreq(n) * applied)
                body = np.fft.irfft(spectra * align, n)[:, : cfg.taps]
                kernels = (envelope(body) * self.gate).astype(np.float32)
                freqs = np.fft.rfftfreq(n, 1.0 / cfg.fs)
                band = _band_window(freqs, (cfg.band_hz[0], min(cfg.band_hz[1], 0.48 * cfg.fs)))
                h = room.model.h[self.pairs[:, 0], self.pairs[:, 1], :n]
                room_part = np.fft.rfft(h, n) * band * np.exp(2j * np.pi * np.fft.rfftfreq(n) * room.reference_shift)
                responses = (np.fft.irfft(room_part, n)[:, : cfg.taps] + body).astype(np.float32)
            else:
                self._music_memory = None    # this window's music is unheard: no kernel, and no memory of it
        else:
            self._music_memory = None
        if responses is None:
            responses = np.fft.irfft(z, n)[:, : cfg.taps].astype(np.float32)
        quality = KernelQuality(snr_db=snr, clipped_fraction=clipped, direct_delay_drift_s=drift / cfg.fs,
                                applied_shift_s=applied / cfg.fs, empty_room_ready=room.ready,
                                empty_room_frames=room.frames, probe_mode="continuous", history_ok=history_ok,
                                empty_room_residual_db=residual_db, latency_jump_samples=jump,
                                psf_sidelobe_db=psf_db)
        return PoseKernelFrame(kernels=kernels, responses=responses, quality=quality)
