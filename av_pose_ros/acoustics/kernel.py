"""Pose kernels from raw captures: the stateful extractor that the kernel stage feeds window by window.

The kernel of a (speaker, mic) pair is what the body adds to the room's impulse response. A capture is validated,
deconvolved by the known emission (``deconvolution``), aligned so that the direct speaker->mic path sits at its
geometric delay (``alignment``; this absorbs device latency and clock offset), the empty-room response
(``empty_room``) is subtracted, and the analytic-signal envelope is kept inside the useful range.

How the subtraction is done depends on the probe family, one strategy each (``probe_modes``): ``periodic`` (chirps
and sweeps, the same every window) or ``continuous`` (music, BGM mode); ``KernelConfig.probe_mode`` "auto" switches
to continuous once two successive windows carry different emissions. A continuous probe needs the emission history,
so the extractor must see every window in order (``sequence`` detects gaps; after one it needs ``room_taps``
samples of history again before it can subtract).

The settings, the output and the error live in ``kernel_types`` and are re-exported here with the signal helpers
that callers used from this module.
"""

from __future__ import annotations

import numpy as np

from .alignment import DirectPathLocator, range_gate
from .deconvolution import envelope, envelope_of_spectrum, filter_gain, inverse_filter, psf_sidelobe_db, room_response
from .empty_room import EmptyRoom
from .kernel_types import AudioInputError, KernelConfig, KernelQuality, PoseKernelFrame
from .probe_modes import PROBE_MODES, ProbeMode, Rig, Window

__all__ = ["AudioInputError", "KernelConfig", "KernelQuality", "PoseKernelFrame", "PoseKernelExtractor",
           "EmissionHistory", "envelope", "envelope_of_spectrum", "filter_gain", "inverse_filter",
           "psf_sidelobe_db", "range_gate", "room_response"]


class EmissionHistory:
    """The emission stream as the extractor has seen it: the last ``keep`` samples before the current window
    (``keep`` = 0 keeps none: a periodic-only pipeline needs none), the last window's emission and sequence number."""

    def __init__(self, keep: int):
        self.keep = keep
        self.samples: np.ndarray | None = None
        self.last_emission: np.ndarray | None = None
        self.last_sequence: int | None = None

    def follows(self, emissions: np.ndarray, sequence: int | None) -> bool:
        """Whether this window directly follows the previous one that was processed."""
        if self.last_emission is None or self.last_emission.shape != emissions.shape:
            return False
        return sequence is None or self.last_sequence is None or int(sequence) == self.last_sequence + 1

    def before(self, contiguous: bool) -> np.ndarray | None:
        """The samples just before a window (None when it does not follow on)."""
        return self.samples if contiguous else None

    def push(self, emissions: np.ndarray, sequence: int | None, contiguous: bool) -> None:
        if self.keep:
            previous = self.samples if contiguous and self.samples is not None else emissions[:, :0]
            self.samples = np.concatenate([previous, emissions], axis=-1)[:, -self.keep:]
        self.last_emission = emissions
        self.last_sequence = None if sequence is None else int(sequence)

    def forget(self) -> None:
        self.samples = self.last_emission = self.last_sequence = None


class PoseKernelExtractor:
    """Stateful capture -> pose-kernel pipeline for a fixed rig (no ROS; the node feeds it frames).

    ``pairs`` (P, 2) are (speaker index, mic index); ``direct_path_m`` (P,) the speaker-mic distances that fix
    where the direct path must appear; ``n_mics`` the channel count a capture must have. ``mode`` names the
    current strategy and ``empty_room`` is its empty-room model (request captures on it).
    """

    def __init__(self, pairs: np.ndarray, direct_path_m: np.ndarray, n_mics: int, c: float,
                 config: KernelConfig | None = None):
        self.config = cfg = config or KernelConfig()
        self.pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
        self.direct_path_m = np.asarray(direct_path_m, dtype=float).ravel()
        if self.direct_path_m.shape[0] != self.pairs.shape[0]:
            raise ValueError("one direct-path distance per pair is needed")
        self.n_mics = int(n_mics)
        if self.pairs[:, 1].max() >= self.n_mics:
            raise ValueError("a pair names a mic beyond n_mics")
        self.n_speakers = int(self.pairs[:, 0].max()) + 1
        self.c = float(c)
        if cfg.probe_mode not in ("auto", *PROBE_MODES):
            raise ValueError(f"probe_mode {cfg.probe_mode!r} is not 'auto', 'periodic' or 'continuous'")
        self.gate = range_gate(cfg.taps, cfg.fs, self.c, self.direct_path_m + 2 * cfg.min_range_m,
                               self.direct_path_m + 2 * cfg.max_range_m)
        locator = DirectPathLocator(self.direct_path_m, self.c, cfg.fs, cfg.max_drift_s, cfg.min_snr_db, cfg.taps)
        self._rig = Rig(self.pairs, self.n_mics, self.gate, locator)
        self.probe: ProbeMode = PROBE_MODES["continuous" if cfg.probe_mode == "continuous" else "periodic"](
            self._rig, cfg)
        self._filters: dict[int, tuple[bytes, np.ndarray, np.ndarray]] = {}
        self.history = EmissionHistory(0 if cfg.probe_mode == "periodic" else cfg.room_taps - 1)
        self._last_window: tuple[np.ndarray, np.ndarray, float] | None = None   # auto mode: for a switch

    @property
    def mode(self) -> str:
        return self.probe.name

    @property
    def empty_room(self) -> EmptyRoom:
        return self.probe.empty_room

    def _set_mode(self, mode: str) -> None:
        """Switch the strategy (auto mode); a pending or finished capture request carries over."""
        if mode == self.mode:
            return
        previous = self.probe.empty_room
        self.probe = PROBE_MODES[mode](self._rig, self.config)
        self.probe.take_over(previous, self._last_window)

    def _forget_history(self) -> None:
        self.probe.forget()
        self.history.forget()

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
        snr, drift, shift = self._rig.locator.locate(envelope_of_spectrum(z, n))
        z = z * np.exp(2j * np.pi * np.fft.rfftfreq(n) * shift)
        return z, gains[self.pairs[:, 0]], snr, drift, shift

    def _refuse(self, err: AudioInputError, emissions: np.ndarray, sequence: int | None, contiguous: bool) -> None:
        """Bookkeeping for a refused window: the speakers still played a window that was only recorded badly."""
        if err.reason in ("non_finite", "clipped"):
            self.history.push(emissions, sequence, contiguous)
        else:
            self._forget_history()
        self.probe.interrupted()

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
        contiguous = self.history.follows(emissions, sequence)
        try:
            clipped = self.validate(recording, emissions, fs)
        except AudioInputError as err:
            self._refuse(err, emissions, sequence, contiguous)
            raise
        z, gain, snr, drift, shift = self.deconvolve(recording, emissions)
        if np.median(snr) < cfg.min_snr_db:
            self._forget_history()
            self.probe.interrupted()
            raise AudioInputError("no_probe", f"no direct path found (median SNR {np.median(snr):.1f} dB < "
                                              f"{cfg.min_snr_db} dB): speakers silent or not captured")
        if cfg.probe_mode == "auto" and contiguous:
            self._set_mode("periodic" if np.array_equal(emissions, self.history.last_emission) else "continuous")
        self._last_window = (recording, emissions, shift) if cfg.probe_mode == "auto" else None
        window = Window(recording, emissions, z, gain, snr, drift, shift, clipped, person_present, contiguous,
                        self.history.before(contiguous))
        frame = self.probe.process(window)
        self.history.push(emissions, sequence, contiguous)
        return frame
