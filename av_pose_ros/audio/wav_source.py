"""The ``file`` backend: a multichannel WAV recording replayed as capture windows, for offline work.

The recording's sample ``latency_samples + k * W`` is aligned with sample ``k * W`` of the emission (the same
convention as the device backend, so a raw dump of a device stream replays with the device's round trip). The
emission is either a WAV of what the speakers played (one channel per speaker; one window long = repeated every
window, or as long as the recording) or regenerated from the probe parameters. Windows are paced in real time
(window k is handed out ``(k + 1) * window_s`` after the start, when a live device would have completed it) or as
fast as the consumer asks. Stamps are ``start + k * window_s`` on the system clock.

Problems: an unreadable file (``file_missing``), fewer channels than the mic map needs (``input_channel_count``),
another sample rate than configured (``input_sample_rate``: a recording is never resampled, its timing is the
data) and a probe WAV that does not fit (``input_probe``) are standing errors, re-checked every ``retry_s`` in case
the file is replaced; nothing is published meanwhile. NaN or clipped windows are dropped (``input_*``). At the end
the source reports ``file_ended`` (or starts over with ``loop``; the sequence keeps counting).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .probe_setup import ProbeSettings, RecordedEmission, make_emission, read_wav
from .window import ERROR, WARN, CaptureWindow, Problem, SignalLimits, channel_map, check_recording


@dataclass
class FileConfig:
    path: str = ""
    mic_channels: tuple[int, ...] = (0, 1, 2, 3)   # entry i: WAV channel of mic_<i>
    n_speakers: int = 4
    probe_path: str = ""                # WAV of the emission; "" = regenerate from the probe settings
    latency_samples: int = 0
    realtime: bool = True
    loop: bool = False
    retry_s: float = 2.0
    limits: SignalLimits = field(default_factory=SignalLimits)

    def __post_init__(self):
        self.mic_channels = channel_map(self.mic_channels, "mic_channels")
        if self.n_speakers < 1:
            raise ValueError("n_speakers must be >= 1")
        if self.latency_samples < 0:
            raise ValueError("latency_samples must be >= 0")


class WavSource:
    def __init__(self, config: FileConfig, probe: ProbeSettings | None = None):
        self.config = config
        self.probe = probe or ProbeSettings()
        self.fs = int(self.probe.fs)
        self.window_samples = self.probe.window_samples
        self.n_mics = len(config.mic_channels)
        self.n_speakers = int(config.n_speakers)
        self.probe_type = self.probe.probe_type
        self.data: np.ndarray | None = None         # (wav channels, samples)
        self.emission = None
        self._standing: dict[str, Problem] = {}
        self._next_try = 0.0
        self._k = 0              # window index inside the file
        self._sequence = 0       # window index since start (keeps counting through loops)
        self._t0_ns = 0
        self._t0_mono = 0.0
        self._started = False
        self.windows_out = 0
        self.dropped = 0

    # -- loading ----------------------------------------------------------------------------------------------
    def _load(self) -> bool:
        cfg = self.config
        self._next_try = time.monotonic() + cfg.retry_s
        self._standing.clear()
        path = Path(cfg.path)
        try:
            if not cfg.path or not path.is_file():
                raise FileNotFoundError(f"{cfg.path or '(wav_path not set)'}: no such file")
            rate, data = read_wav(path)
        except (OSError, ValueError) as err:
            self._standing["file_missing"] = Problem("file_missing", ERROR, f"{err}; retrying every {cfg.retry_s} s")
            return False
        need = max(cfg.mic_channels) + 1
        if data.shape[0] < need:
            self._standing["input_channel_count"] = Problem(
                "input_channel_count", ERROR, f"{path.name} has {data.shape[0]} channels, the mic map "
                                              f"{list(cfg.mic_channels)} needs {need}; nothing published")
            return False
        if rate != self.fs:
            self._standing["input_sample_rate"] = Problem(
                "input_sample_rate", ERROR, f"{path.name} is {rate} Hz, sample_rate is {self.fs} Hz (recordings are "
                                            "not resampled); nothing published")
            return False
        if data.shape[1] < cfg.latency_samples + self.window_samples:
            self._standing["input_channel_count"] = Problem(
                "input_channel_count", ERROR, f"{path.name} holds {data.shape[1]} samples, less than one window")
            return False
        try:
            self.emission = self._emission()
        except ValueError as err:
            self._standing["input_probe"] = Problem("input_probe", ERROR, f"{err}; nothing published")
            return False
        self.data = data
        return True

    def _emission(self):
        cfg = self.config
        if not cfg.probe_path:
            return make_emission(self.probe, self.n_speakers)
        rate, signals = read_wav(cfg.probe_path)
        if rate != self.fs:
            raise ValueError(f"probe WAV {cfg.probe_path} is {rate} Hz, sample_rate is {self.fs} Hz")
        if signals.shape[0] != self.n_speakers:
            raise ValueError(f"probe WAV {cfg.probe_path} has {signals.shape[0]} channels for {self.n_speakers} "
                             "speakers")
        if not np.all(np.isfinite(signals)):
            raise ValueError(f"probe WAV {cfg.probe_path} contains NaN/Inf")
        return RecordedEmission(signals, self.window_samples)

    # -- AudioSource ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._t0_ns = time.time_ns()
        self._t0_mono = time.monotonic()
        self._started = True
        self._load()

    @property
    def finished(self) -> bool:
        return "file_ended" in self._standing

    def status(self) -> dict[str, Problem]:
        return dict(self._standing)

    def stats(self) -> dict[str, float]:
        return {"windows": self.windows_out, "dropped": self.dropped, "file_window": self._k,
                "file_windows": self._file_windows() if self.data is not None else 0}

    def _file_windows(self) -> int:
        return (self.data.shape[1] - self.config.latency_samples) // self.window_samples

    def next_window(self, timeout_s: float = 1.0) -> CaptureWindow | None:
        if not self._started:
            self.start()
        deadline = time.monotonic() + timeout_s
        if self.data is None:
            if time.monotonic() >= self._next_try:
                self._load()
            if self.data is None:
                time.sleep(max(0.0, min(deadline, self._next_try) - time.monotonic()))
                return None
        if self._k >= self._file_windows():
            if not self.config.loop:
                self._standing["file_ended"] = Problem(
                    "file_ended", WARN, f"{Path(self.config.path).name} ended after {self._k} windows "
                                        "(loop: false); nothing more to publish")
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None
            self._k = 0
        if self.config.realtime:
            due = self._t0_mono + (self._sequence + 1) * self.window_samples / self.fs
            wait = due - time.monotonic()
            if wait > deadline - time.monotonic():
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None
            if wait > 0:
                time.sleep(wait)
        W = self.window_samples
        start = self.config.latency_samples + self._k * W
        recording = np.ascontiguousarray(self.data[list(self.config.mic_channels), start:start + W])
        emissions = self.emission.window(self._k).astype(np.float32)
        stamp = self._t0_ns + int(round(self._sequence * W * 1e9 / self.fs))
        window = CaptureWindow(recording, emissions, self.fs, stamp, self._sequence,
                               check_recording(recording, self.config.limits))
        self._k += 1
        self._sequence += 1
        self.windows_out += 1
        self.dropped += not window.usable
        return window

    def close(self) -> None:
        self.data = None
