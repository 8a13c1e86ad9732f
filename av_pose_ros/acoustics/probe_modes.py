"""The two ways a deconvolved window becomes pose kernels, one strategy class per probe family.

* ``PeriodicProbe`` (chirps and sweeps in time slots, the same every window): a window is one period, so circular
  deconvolution by the window's emission is exact, and the empty room is kept per pair in the frequency domain
  (``SpectralEmptyRoom``) and subtracted there.
* ``ContinuousProbe`` (music, BGM mode): every window carries different music and also records the room's echoes
  of the previous windows, and all speakers overlap. The empty room is a multi-speaker model
  (``ContinuousEmptyRoom``); each window's empty-room recording is *predicted* from the emission history and
  subtracted in the time domain, and only the remainder (body echoes and noise) is deconvolved, by a multi-input
  Wiener filter (``deconvolution.MultiInputWiener``).

The extractor validates, deconvolves and aligns a window (what both need), then hands it to its strategy as a
``Window``; in ``auto`` mode it replaces the strategy when the emission starts or stops changing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .alignment import DirectPathLocator
from .deconvolution import (
    MultiInputWiener,
    band_analytic,
    band_mean_db,
    band_window,
    envelope,
    envelope_of_spectrum,
    psf_sidelobe_db,
    split_band_windows,
)
from .empty_room import ContinuousEmptyRoom, EmptyRoom, SpectralEmptyRoom
from .kernel_types import BandKernels, KernelConfig, KernelQuality, PoseKernelFrame


@dataclass
class Window:
    """One validated, deconvolved capture as the strategies see it.

    ``z`` (P, F) aligned pair spectra and ``gain`` (P, F) what the deconvolution left on them; ``snr`` / ``drift``
    per pair and ``shift`` (samples) from the direct-path search; ``history`` the emission of the windows just before
    (None after a gap)."""

    recording: np.ndarray
    emissions: np.ndarray
    z: np.ndarray
    gain: np.ndarray
    snr: np.ndarray
    drift: np.ndarray
    shift: float
    clipped: float
    person_present: bool | None
    contiguous: bool
    history: np.ndarray | None


@dataclass
class Rig:
    """What a strategy needs to know about the rig: pairs (P, 2) of (speaker, mic), mic count, range gate
    (P, taps) and the direct-path search."""

    pairs: np.ndarray
    n_mics: int
    gate: np.ndarray
    locator: DirectPathLocator


class ProbeMode:
    """A strategy: owns its empty-room model and whatever it keeps between windows."""

    name = ""
    empty_room: EmptyRoom

    def __init__(self, rig: Rig, config: KernelConfig):
        self.rig = rig
        self.config = config

    def process(self, window: Window) -> PoseKernelFrame:
        raise NotImplementedError

    def take_over(self, previous: EmptyRoom, last_window: tuple[np.ndarray, np.ndarray, float] | None) -> None:
        """Continue the previous strategy's capture request (auto mode switched): a fresh capture of the same size."""
        if previous.capturing or previous.ready:
            self.empty_room.request_capture(previous.requested or None)

    def interrupted(self) -> None:
        """The stream had a window that gave nothing (refused, or no probe in it)."""

    def forget(self) -> None:
        """The emission history is gone (gap or refused window): drop whatever depends on it."""

    def _responses(self, z: np.ndarray, n: int) -> np.ndarray:
        return np.fft.irfft(z, n)[:, : self.config.taps].astype(np.float32)

    def _quality(self, window: Window, **extra) -> KernelQuality:
        fs = self.config.fs
        extra.setdefault("applied_shift_s", window.shift / fs)
        return KernelQuality(snr_db=window.snr, clipped_fraction=window.clipped,
                             direct_delay_drift_s=window.drift / fs, empty_room_ready=self.empty_room.ready,
                             empty_room_frames=self.empty_room.frames, **extra)


class PeriodicProbe(ProbeMode):
    """Periodic probes: subtract the per-pair empty-room spectrum seen through this window's gain."""

    name = "periodic"

    def __init__(self, rig: Rig, config: KernelConfig):
        super().__init__(rig, config)
        self.empty_room = SpectralEmptyRoom(config.empty_room_rate, config.empty_room_frames)

    def process(self, window: Window) -> PoseKernelFrame:
        n = window.recording.shape[-1]
        kernels = None
        if self.empty_room.ready:
            residual = np.fft.irfft(window.z - self.empty_room.expected(window.gain), n)[:, : self.config.taps]
            kernels = (envelope(residual) * self.rig.gate).astype(np.float32)
        self.empty_room.observe(window.z, window.gain, window.person_present)
        return PoseKernelFrame(kernels=kernels, responses=self._responses(window.z, n), quality=self._quality(window))


@dataclass
class _Subtraction:
    """What the room model left of one window: the residual (M, n), its energy re the recording (dB), the
    whole-sample latency jump it applied and the clock shift to align the kernel with."""

    residual: np.ndarray
    residual_db: float
    jump: int
    applied: float
    recording: np.ndarray | None = None


class ContinuousProbe(ProbeMode):
    """Continuous probes: predict and subtract the empty room in the time domain, deconvolve the rest.

    It needs ``room_taps - 1`` samples of gap-free emission history before it can subtract (the extractor keeps
    it); the device latency may jump by whole samples (a stream restart), which the last five windows must agree on
    before the model is moved."""

    name = "continuous"

    def __init__(self, rig: Rig, config: KernelConfig):
        super().__init__(rig, config)
        self.empty_room = ContinuousEmptyRoom(rig.n_mics, config)
        self.wiener = MultiInputWiener(rig.pairs, config.fs, config.analysis_band_hz, config.regularisation,
                                       config.floor_db, config.music_memory)
        self._recent_shifts: list[float] = []
        self._noise_cache = None

    def take_over(self, previous: EmptyRoom, last_window: tuple[np.ndarray, np.ndarray, float] | None) -> None:
        """As the base, and the window that still looked periodic counts towards the capture too."""
        super().take_over(previous, last_window)
        if (previous.capturing or previous.ready) and last_window is not None:
            recording, emission, shift = last_window
            self.empty_room.collect(recording, emission, emission[:, :0].astype(float), shift)

    def interrupted(self) -> None:
        self.empty_room.restart_capture()

    def forget(self) -> None:
        self.wiener.reset()

    def _band(self, n: int) -> np.ndarray:
        return band_window(np.fft.rfftfreq(n, 1.0 / self.config.fs), self.config.analysis_band_hz)

    def _model_shift(self) -> float:
        """Common clock shift (samples) of a fitted room model: where its pairs' direct paths sit. The model has no
        spill and no crosstalk, so this is steadier than any one music window's estimate."""
        pairs = self.rig.pairs
        h = self.empty_room.model.h[pairs[:, 0], pairs[:, 1]]
        n = h.shape[-1]
        return self.rig.locator.locate(envelope_of_spectrum(np.fft.rfft(h, n) * self._band(n), n))[2]

    def _noise_term(self, n: int) -> np.ndarray | None:
        """(P, F) Wiener noise term per pair: what the room fit left unexplained at the pair's mic, over the power
        a body echo is expected to have (``echo_prior_db`` re the pair's empty-room response, direct path included).
        Music is weak in the treble where sensor noise is not, so without it the whitening amplifies noise there."""
        model, cfg, pairs = self.empty_room.model, self.config, self.rig.pairs
        if model is None or model.noise_psd is None or cfg.echo_prior_db is None:
            return None
        key = (id(model), n)
        if self._noise_cache is None or self._noise_cache[0] != key:
            noise = model.noise_power(n, cfg.fs)[pairs[:, 1]]
            h = model.h[pairs[:, 0], pairs[:, 1]]
            response = np.mean(np.abs(np.fft.rfft(h, n)) ** 2, axis=1, keepdims=True)
            self._noise_cache = (key, noise / (10 ** (cfg.echo_prior_db / 10) * response))
        return self._noise_cache[1]

    def _capture(self, window: Window, history: np.ndarray) -> None:
        room = self.empty_room
        if not room.capturing:
            return
        if not window.contiguous:
            room.restart_capture()
        if room.collect(window.recording, window.emissions, history, window.shift):
            room.reference_shift = self._model_shift()
            self._recent_shifts = []

    def _subtract(self, recording: np.ndarray, x: np.ndarray) -> _Subtraction:
        """Recording minus the room model's prediction. The device latency may have jumped (stream restart): only
        when the last windows agree on a whole-sample move of the direct path (music windows alone are too noisy to
        trust one), and the moved model explains this window better, is it applied."""
        room, n = self.empty_room, recording.shape[-1]
        recording = recording.astype(float)
        energy = max(float(np.sum(recording ** 2)), 1e-300)
        residual = recording - room.model.predict(x, n)
        result = _Subtraction(residual, float(10 * np.log10(np.sum(residual ** 2) / energy)), 0,
                              room.reference_shift, recording)
        recent = np.asarray(self._recent_shifts)
        candidate = int(np.round(np.median(recent) - room.reference_shift)) if len(recent) == 5 else 0
        if candidate and np.ptp(recent) < 1.0 and -8 <= candidate <= self.config.room_taps // 4:
            moved = recording - room.model.predict(x, n, shift=candidate)
            moved_db = float(10 * np.log10(np.sum(moved ** 2) / energy))
            if moved_db < result.residual_db - 3.0:
                result = _Subtraction(moved, moved_db, candidate, room.reference_shift + candidate, recording)
        return result

    def _kernels(self, sub: _Subtraction, emissions: np.ndarray, n: int):
        """Kernels (P, taps), responses (P, taps) and point-spread sidelobes (P,) of one subtracted window."""
        cfg, pairs, room = self.config, self.rig.pairs, self.empty_room
        spectra, psf_gain = self.wiener(sub.residual, emissions, self._noise_term(n))
        guard = max(3, int(round(cfg.fs / (cfg.band_hz[1] - cfg.band_hz[0]))))
        psf_db = psf_sidelobe_db(psf_gain, n, guard)
        align = np.exp(2j * np.pi * np.fft.rfftfreq(n) * sub.applied)
        body = np.fft.irfft(spectra * align, n)[:, : cfg.taps]
        kernels = (envelope(body) * self.rig.gate).astype(np.float32)
        h = room.model.h[pairs[:, 0], pairs[:, 1], :n]
        room_part = np.fft.rfft(h, n) * self._band(n) * np.exp(2j * np.pi * np.fft.rfftfreq(n) * room.reference_shift)
        responses = (np.fft.irfft(room_part, n)[:, : cfg.taps] + body).astype(np.float32)
        bands = self._band_kernels(spectra * align, psf_gain, emissions, sub, n) if cfg.frontend_bands > 0 else None
        return kernels, responses, psf_db, bands

    def _band_kernels(self, body: np.ndarray, psf_gain: np.ndarray, emissions: np.ndarray, sub: _Subtraction,
                      n: int) -> BandKernels:
        """The same body spectra split into ``frontend_bands`` bands, with what this window says about each band
        (``BandKernels``): an extra output, the plain kernel is untouched."""
        cfg, pairs = self.config, self.rig.pairs
        freqs = np.fft.rfftfreq(n, 1.0 / cfg.fs)
        band_hz = cfg.analysis_band_hz
        windows = split_band_windows(freqs, band_hz, cfg.frontend_bands)
        analytic = band_analytic(body, n, cfg.taps, windows) * self.rig.gate[:, None, :]
        music = np.abs(np.fft.rfft(emissions.astype(float), n)[pairs[:, 0]]) ** 2
        music_db = band_mean_db(music, windows)
        residual = np.abs(np.fft.rfft(sub.residual, n)[pairs[:, 1]]) ** 2
        recorded = np.abs(np.fft.rfft(sub.recording, n)[pairs[:, 1]]) ** 2
        energy = np.sum(np.abs(analytic) ** 2, axis=-1)
        features = np.stack([music_db - music_db.mean(axis=1, keepdims=True),
                             band_mean_db(np.maximum(psf_gain, 0.0), windows),
                             band_mean_db(residual, windows) - band_mean_db(recorded, windows),
                             10 * np.log10(np.maximum(energy, 1e-300) / max(float(energy.sum()), 1e-300))], axis=-1)
        edges = np.geomspace(band_hz[0], band_hz[1], cfg.frontend_bands + 1)
        return BandKernels(analytic.astype(np.complex64), features.astype(np.float32), edges)

    def process(self, window: Window) -> PoseKernelFrame:
        cfg, room = self.config, self.empty_room
        n = window.recording.shape[-1]
        history = window.history if window.history is not None else window.emissions[:, :0]
        history = history.astype(float)
        history_ok = history.shape[-1] >= cfg.room_taps - 1
        self._capture(window, history)
        kernels = responses = psf_db = bands = None
        residual_db, jump, applied = float("nan"), 0, window.shift
        if room.ready:
            applied = room.reference_shift
            self._recent_shifts = (self._recent_shifts + [window.shift])[-5:]
        if room.ready and history_ok:
            x = np.concatenate([history, window.emissions.astype(float)], axis=-1)
            sub = self._subtract(window.recording, x)
            residual_db, jump, applied = sub.residual_db, sub.jump, sub.applied
            if window.person_present is False and not room.capturing:
                room.track(x, sub.residual)
            if residual_db <= cfg.max_room_residual_db:
                kernels, responses, psf_db, bands = self._kernels(sub, window.emissions, n)
            else:
                self.wiener.reset()    # this window's music is unheard: no kernel, and no memory of it
        else:
            self.wiener.reset()
        if responses is None:
            responses = self._responses(window.z, n)
        quality = self._quality(window, applied_shift_s=applied / cfg.fs, probe_mode=self.name,
                                history_ok=history_ok, empty_room_residual_db=residual_db,
                                latency_jump_samples=jump, psf_sidelobe_db=psf_db)
        return PoseKernelFrame(kernels=kernels, responses=responses, quality=quality, bands=bands)


PROBE_MODES = {mode.name: mode for mode in (PeriodicProbe, ContinuousProbe)}
