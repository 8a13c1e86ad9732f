"""Round-trip latency of a sound device: play a chirp into silence, record it back, cross-correlate.

``measure_round_trip`` opens the device ``repeats`` times exactly as the ``device`` backend does (same channels,
blocksize and suggested latency, so the same buffering), plays one chirp on the reference output after the
warm-up and finds it on the reference input (``latency.locate``: the lag of the matched-filter peak, searched up to
``max_latency_s``). The round trip is that lag minus ``reference_delay_samples`` (the acoustic or electrical delay
of the reference path itself: 0 for a loopback cable or a virtual device's monitor, distance / c * fs for a
speaker heard by a microphone). Each opening gives one value; the result reports their median and spread,
because some devices keep the round trip between openings (an ALSA ``hw:`` card) and some do not (PulseAudio:
a new value at each start) - for those the node should measure at start-up and track it
(``startup_calibration`` and ``track_latency``), which the command says.

``write_latency`` stores the result as ``latency_samples`` in the node's YAML, keeping its comments.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .duplex import DuplexConfig, DuplexSource
from .probe_setup import ProbeSettings


@dataclass
class CalibrationResult:
    device: str
    fs: int
    samples: list[int] = field(default_factory=list)     # one round trip per stream opening
    failures: list[str] = field(default_factory=list)
    reported_latency_s: list[float] = field(default_factory=list)   # PortAudio's input + output latency

    @property
    def median(self) -> int | None:
        return int(np.median(self.samples)) if self.samples else None

    @property
    def spread(self) -> int:
        return int(max(self.samples) - min(self.samples)) if self.samples else 0

    @property
    def median_ms(self) -> float | None:
        return None if self.median is None else 1000.0 * self.median / self.fs

    def stable(self, tolerance: int = 2) -> bool:
        return bool(self.samples) and self.spread <= tolerance

    def summary(self) -> str:
        if not self.samples:
            return f"{self.device}: no round trip measured ({'; '.join(self.failures) or 'no reason given'})"
        lines = [f"device {self.device!r} at {self.fs} Hz: round trip {self.median} samples "
                 f"({self.median_ms:.2f} ms), median of {len(self.samples)} openings: {self.samples}"]
        if self.reported_latency_s:
            lines.append(f"PortAudio reports in+out latency {1000 * float(np.median(self.reported_latency_s)):.1f} ms")
        if self.failures:
            lines.append(f"{len(self.failures)} openings failed: {'; '.join(self.failures)}")
        if not self.stable():
            lines.append(f"the round trip changes between openings (spread {self.spread} samples): a fixed "
                         "latency_samples cannot hold; set startup_calibration: true and track_latency: true with "
                         "reference_channels [input, output] of a loopback")
        return "\n".join(lines)


def measure_round_trip(config: DuplexConfig, probe: ProbeSettings | None = None, repeats: int = 3,
                       timeout_s: float = 10.0) -> CalibrationResult:
    """Open the device ``repeats`` times and measure the round trip once per opening (see module doc)."""
    if not config.reference_channels:
        config = replace(config, reference_channels=(config.mic_channels[0], config.speaker_channels[0]))
    config = replace(config, startup_calibration=True, track_latency=False, latency_samples=0)
    probe = probe or ProbeSettings()
    result = CalibrationResult(device=str(config.device), fs=int(probe.fs))
    for _ in range(repeats):
        source = DuplexSource(config, probe)
        try:
            source.start()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not source.measured_latency:
                if "calibration_failed" in source.status():
                    break
                source.next_window(0.2)
            if source.measured_latency:
                result.samples.append(int(source.measured_latency[0]))
                result.device = source.device_name or result.device
                if source._stream is not None:
                    result.reported_latency_s.append(float(sum(source._stream.latency)))
            else:
                problems = source.status()
                result.failures.append("; ".join(p.text for p in problems.values()) or "timed out")
        finally:
            source.close()
    return result


_KEY = re.compile(r"^(\s*latency_samples:\s*)(-?\d+)(.*)$", re.MULTILINE)


def write_latency(path: str | Path, samples: int, node: str = "audio_io_node") -> None:
    """Set ``latency_samples`` in a node YAML (``node: ros__parameters:``), keeping comments and layout."""
    path = Path(path)
    text = path.read_text() if path.exists() else f"{node}:\n  ros__parameters:\n"
    if _KEY.search(text):
        text = _KEY.sub(lambda m: f"{m.group(1)}{int(samples)}{m.group(3)}", text, count=1)
    else:
        match = re.search(r"^(\s*)ros__parameters:\s*$", text, re.MULTILINE)
        if match is None:
            raise ValueError(f"{path}: no 'ros__parameters:' section to put latency_samples in")
        indent = match.group(1) + "  "
        text = text[:match.end()] + f"\n{indent}latency_samples: {int(samples)}" + text[match.end():]
    path.write_text(text)
