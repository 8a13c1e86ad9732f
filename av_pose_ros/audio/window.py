"""What every audio backend hands out: capture windows, and problems as short reason codes.

A backend (``device``, ``sim``, ``file``) yields ``CaptureWindow`` objects through ``next_window(timeout_s)``.
Every window carries the problems found in it; a window with a problem whose ``drop`` is true holds data that must
not be published (it would be garbage downstream), and the node only reports it. Problems that persist (no
device, file ended, a WAV with the wrong channel count) are *standing* problems, read from ``source.status()``;
they go away by themselves when the cause does.

Reason codes (the node turns each into a diagnostic entry; the ``input_`` ones clear as soon as good data arrives):

=====================  =======  ==================================================================================
code                   level    meaning
=====================  =======  ==================================================================================
``input_non_finite``   WARN     NaN/Inf samples in the window (window dropped)
``input_clipped``      WARN     more than ``max_clipped_fraction`` of samples at full scale (window dropped)
``input_channel_count`` ERROR   the source has fewer channels than the mic map needs (standing, nothing published)
``input_sample_rate``  ERROR    the source runs at another sample rate than configured (standing)
``input_probe``        ERROR    the probe WAV does not fit (speakers, rate or length) (standing)
``xrun``               WARN     over/underflow reported by the audio callback inside the window (window dropped)
``backlog``            WARN     the consumer fell behind the device; old windows were skipped
``device_missing``     ERROR    no device matches ``device``; retrying with backoff (standing)
``device_format``      ERROR    the device refuses the channel count or sample rate; retrying (standing)
``device_lost``        ERROR    the stream stopped (error or no callbacks); reopening with backoff (standing)
``latency_changed``    WARN     the tracked round trip moved (after an xrun); realigned, window dropped
``calibration_failed`` ERROR    the start-up round-trip measurement found no chirp (configured latency kept)
``clock_resync``       WARN     the device clock jumped against the system clock; stamps re-anchored
``file_missing``       ERROR    the WAV file cannot be read; retrying (standing)
``file_ended``         WARN     the WAV file is exhausted and ``loop`` is off (standing)
=====================  =======  ==================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# Same numbers as diagnostic_msgs/DiagnosticStatus (kept here so the core stays free of ROS).
OK, WARN, ERROR = 0, 1, 2


@dataclass(frozen=True)
class Problem:
    code: str
    level: int
    text: str
    drop: bool = False      # the window's data must not be published


@dataclass(eq=False)
class CaptureWindow:
    """One capture window: ``recording`` (mics, n) float32 whose sample 0 was acquired at ``start_time_ns``
    (system/ROS time) and is aligned with sample 0 of ``emissions`` (speakers, n) float32, what each speaker
    emitted for this window (tap k of a response = delay k / fs)."""

    recording: np.ndarray
    emissions: np.ndarray
    fs: int
    start_time_ns: int
    sequence: int                       # window index since start; gaps mean dropped windows
    problems: list[Problem] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not any(p.drop for p in self.problems)

    @property
    def duration_ns(self) -> int:
        return int(round(self.recording.shape[-1] * 1e9 / self.fs))


class AudioSource(Protocol):
    """The interface all three backends share."""

    fs: int
    window_samples: int
    n_mics: int
    n_speakers: int
    probe_type: str

    def start(self) -> None: ...
    def next_window(self, timeout_s: float = 1.0) -> CaptureWindow | None: ...
    def status(self) -> dict[str, Problem]: ...
    def stats(self) -> dict[str, float]: ...
    @property
    def finished(self) -> bool: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SignalLimits:
    clip_level: float = 0.999           # |x| at or above this counts as clipped
    max_clipped_fraction: float = 1e-4  # share of clipped samples above which a window is dropped (1.0: never)


def check_recording(recording: np.ndarray, limits: SignalLimits = SignalLimits()) -> list[Problem]:
    """Content problems of one window's recording (NaN/Inf, clipping); empty when it is fine."""
    problems = []
    finite = np.isfinite(recording)
    if not finite.all():
        problems.append(Problem("input_non_finite", WARN,
                                f"{recording.size - int(np.count_nonzero(finite))} NaN/Inf samples in the window; "
                                "dropped", drop=True))
        recording = np.where(finite, recording, 0.0)
    clipped = float(np.mean(np.abs(recording) >= limits.clip_level)) if recording.size else 0.0
    if clipped > limits.max_clipped_fraction:
        problems.append(Problem("input_clipped", WARN,
                                f"{clipped:.3%} of samples at full scale (limit {limits.max_clipped_fraction:.3%}); "
                                "window dropped: lower the input gain or the probe level", drop=True))
    return problems


def channel_map(channels, what: str) -> tuple[int, ...]:
    """Validate a channel map: distinct non-negative device channel numbers, entry i for speaker/mic i."""
    chans = tuple(int(c) for c in channels)
    if not chans:
        raise ValueError(f"{what}: at least one channel is needed")
    if min(chans) < 0 or len(set(chans)) != len(chans):
        raise ValueError(f"{what}: channels must be distinct and >= 0, got {list(chans)}")
    return chans


def frame_names(names, count: int, prefix: str) -> list[str]:
    """TF frame per channel: ``names`` when given (one per channel), else ``<prefix>_<i>``."""
    names = [str(n) for n in names or []]
    if not names:
        return [f"{prefix}_{i}" for i in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} {prefix} frame names for {count} {prefix} channels")
    return names
