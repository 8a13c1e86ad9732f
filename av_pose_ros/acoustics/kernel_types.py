"""What the pose-kernel extractor takes and gives: its settings, its per-window output and its refusal.

Kept apart from the extractor so that the probe-mode strategies and the empty-room models can use them without
importing the extractor (which imports them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .probes import DEFAULT_BAND_HZ


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


BAND_FEATURES = ("music_db", "gain_db", "residual_db", "kernel_db")


@dataclass
class BandKernels:
    """Continuous mode with ``KernelConfig.frontend_bands`` > 0: the kernel split into B log-spaced bands, for a
    learned music front end that weights the bands where this window's music carries echo energy.

    ``analytic`` (P, B, taps) complex64: each band's range-gated analytic signal; ``|analytic.sum(axis=1)|`` is the
    plain kernel. ``features`` (P, B, len(BAND_FEATURES)) float32, per pair and band: the pair's speaker's music
    power re its mean over the band (dB), the deconvolution's gain there (dB, 0 = fully excited), the recording
    power the empty-room model left unexplained at the pair's mic re the recording's (dB), and the band's share of
    the kernel energy (dB). ``edges_hz`` (B + 1,) the band edges."""

    analytic: np.ndarray
    features: np.ndarray
    edges_hz: np.ndarray


@dataclass
class PoseKernelFrame:
    """Output of one capture: ``kernels`` is None until an empty-room response exists."""

    kernels: np.ndarray | None   # (pairs, taps) float32 envelope of (response - empty room), range-gated
    responses: np.ndarray        # (pairs, taps) float32 aligned room responses (what the empty-room model learns)
    quality: KernelQuality
    bands: BandKernels | None = None   # continuous mode with frontend_bands > 0, whenever ``kernels`` is set


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
    frontend_bands: int = 0           # continuous mode: also split the kernel into this many bands with per-band
    #                                   features (``BandKernels``, for the learned music front end); 0 = off

    @property
    def analysis_band_hz(self) -> tuple[float, float]:
        """The deconvolution band, its top kept below Nyquist (0.48 fs) so the taper has room."""
        return (self.band_hz[0], min(self.band_hz[1], 0.48 * self.fs))
