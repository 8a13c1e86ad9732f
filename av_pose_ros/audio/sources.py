"""One settings object for all backends and the factory the node (and any other program) uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from .duplex import DuplexConfig, DuplexSource
from .probe_setup import ProbeSettings
from .sim_source import SimConfig, SimSource
from .wav_source import FileConfig, WavSource
from .window import AudioSource

BACKENDS = ("device", "sim", "file")


@dataclass
class AudioIOSettings:
    backend: str = "device"
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    device: DuplexConfig = field(default_factory=DuplexConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    file: FileConfig = field(default_factory=FileConfig)


def make_source(settings: AudioIOSettings) -> AudioSource:
    """The backend ``settings.backend`` names, configured (not started). Raises ValueError for bad settings."""
    if settings.backend == "device":
        return DuplexSource(settings.device, settings.probe)
    if settings.backend == "sim":
        return SimSource(settings.sim, settings.probe)
    if settings.backend == "file":
        return WavSource(settings.file, settings.probe)
    raise ValueError(f"backend {settings.backend!r} is not one of {list(BACKENDS)}")
