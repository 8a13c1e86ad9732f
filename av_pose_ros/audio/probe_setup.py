"""The emission every backend plays (or assumes was played): built from probe parameters or read from a WAV.

``make_emission`` turns probe settings into the acoustic core's ``SlottedEmission`` (chirp, sweep: each speaker
in its own slot of every window) or ``MusicEmission`` (music plays continuously); ``RecordedEmission`` wraps a
multichannel WAV of what the speakers played, so a recording made elsewhere can be replayed with its own probe.
All of them answer ``window(k)`` (speakers, window_samples) and ``signal(start, n)`` on the emission clock, whose
sample 0 is sample 0 of window 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission

PROBE_TYPES = ("chirp", "sweep", "music")
FROM_SCENARIO = ""      # probe_type / music_file: what the sim scenario says (other backends: chirp, synthetic track)


@dataclass(frozen=True)
class ProbeSettings:
    probe_type: str = "chirp"
    fs: int = probes.DEFAULT_FS
    window_s: float = 0.1
    band_hz: tuple[float, float] = probes.DEFAULT_BAND_HZ
    duration_s: float = probes.DEFAULT_DURATION_S
    level: float = 0.5                  # peak amplitude of the emitted probe (full scale = 1)
    music_file: str = ""                # BGM mode: a WAV track; empty = the deterministic synthetic track

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.fs))

    def validate(self) -> None:
        if self.probe_type not in PROBE_TYPES + (FROM_SCENARIO,):
            raise ValueError(f"probe_type {self.probe_type!r} is not one of {list(PROBE_TYPES)} "
                             f"(or '' for the scenario's)")
        if not 0.0 < self.level <= 1.0:
            raise ValueError(f"probe level {self.level} outside (0, 1]")
        if self.window_samples < 64:
            raise ValueError(f"window of {self.window_s} s at {self.fs} Hz is too short")


    def or_scenario(self, probe: str, music_file: str | None) -> ProbeSettings:
        """These settings with what was left to the scenario filled in: its probe type and its track (an explicit
        value wins), so that the simulator emits what the scenario says unless the node was told otherwise."""
        return replace(self, probe_type=self.probe_type or probe, music_file=self.music_file or (music_file or ""))

    def or_default(self) -> ProbeSettings:
        """Backends without a scenario (device, file): probe type left to the scenario means a chirp."""
        return replace(self, probe_type=self.probe_type or "chirp")


def make_emission(settings: ProbeSettings, n_speakers: int):
    """``SlottedEmission`` (chirp/sweep) or ``MusicEmission`` (music) scaled to ``settings.level``."""
    settings = settings.or_default()
    settings.validate()
    window = settings.window_samples
    if settings.probe_type == "music":
        track = probes.load_wav(settings.music_file, settings.fs) if settings.music_file else \
            probes.synthetic_music(fs=settings.fs)
        return MusicEmission(track * np.float32(settings.level / max(np.abs(track).max(), 1e-9)), n_speakers, window)
    make = probes.linear_chirp if settings.probe_type == "chirp" else probes.exponential_sweep
    probe = make(settings.band_hz[0], settings.band_hz[1], settings.duration_s, settings.fs)
    return SlottedEmission(probe * np.float32(settings.level), n_speakers, window)


class RecordedEmission:
    """What the speakers played, from a (speakers, L) array: periodic when L is one window, else zero outside."""

    def __init__(self, signals: np.ndarray, window_samples: int):
        self.signals = np.atleast_2d(np.asarray(signals, dtype=np.float32))
        self.n_speakers = self.signals.shape[0]
        self.window_samples = int(window_samples)
        self.periodic = self.signals.shape[1] == self.window_samples
        if self.signals.shape[1] < self.window_samples:
            raise ValueError(f"probe of {self.signals.shape[1]} samples is shorter than one window "
                             f"({self.window_samples}); give one window (periodic) or the whole recording")

    @property
    def max_taps(self) -> int:
        return self.window_samples

    def window(self, index: int) -> np.ndarray:
        return self.signal(int(index) * self.window_samples, self.window_samples)

    def signal(self, start: int, n_samples: int) -> np.ndarray:
        idx = int(start) + np.arange(int(n_samples))
        length = self.signals.shape[1]
        if self.periodic:
            return self.signals[:, idx % length]
        out = np.zeros((self.n_speakers, idx.size), np.float32)
        inside = (idx >= 0) & (idx < length)
        out[:, inside] = self.signals[:, idx[inside]]
        return out


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """(rate, (channels, samples) float32) from a WAV; integer PCM is scaled to [-1, 1). Raises ValueError."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(str(path), mmap=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read WAV: {err}") from None
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        midpoint = 0 if info.min < 0 else (info.max + 1) // 2      # 8-bit WAV is unsigned
        data = (data.astype(np.float64) - midpoint) / (info.max + 1 - midpoint)
    data = np.atleast_2d(data.astype(np.float32).T) if data.ndim == 2 else data.astype(np.float32)[None, :]
    return int(rate), np.ascontiguousarray(data)
