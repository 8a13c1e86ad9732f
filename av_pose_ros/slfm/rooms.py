"""Reverberant rooms with a fixed sound source and a head that turns in place.

A configuration is one shoebox room (pyroomacoustics image-source model), one source position and one head position;
the head is rendered at several yaws (views). The source does not move, so the sound direction in the head frame
changes by minus the head's turn between two views: the same rotation the head camera sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyroomacoustics as pra

from .binaural import complete_rir
from .constants import HEAD_RADIUS, SAMPLE_RATE, SPEED_OF_SOUND

# Reverberation levels used for training and evaluation (RT60 range in seconds).
RT60_LEVELS = {
    "low": (0.15, 0.35),
    "medium": (0.35, 0.55),
    "high": (0.55, 0.8),
}


@dataclass
class RoomConfig:
    dims: np.ndarray            # (3,) m
    rt60: float                 # s
    absorption: float           # energy absorption of every wall
    max_order: int
    source: np.ndarray          # (3,) m
    head: np.ndarray            # (3,) m, head centre
    base_yaw: float             # rad, head yaw of the reference view in the room frame
    images: np.ndarray = field(repr=False, default=None)  # (K, 3)
    gains: np.ndarray = field(repr=False, default=None)   # (K,)
    complete_until: float = 0.0  # s, until when the image-source set is complete

    def azimuth(self, yaw: float) -> float:
        """True source azimuth (rad, (-pi, pi], + left) in the head frame for head yaw ``yaw`` (room frame)."""
        v = self.source - self.head
        return float(np.angle(np.exp(1j * (np.arctan2(v[1], v[0]) - yaw))))


def fold_front(azimuth):
    """Fold an azimuth onto the front half [-pi/2, pi/2] (mirror about the interaural axis)."""
    a = np.angle(np.exp(1j * np.asarray(azimuth, dtype=float)))
    return np.where(a > np.pi / 2, np.pi - a, np.where(a < -np.pi / 2, -np.pi - a, a))


def sample_room(
    rng: np.random.Generator,
    rt60_range=(0.15, 0.8),
    distance_range=(1.0, 2.5),
    source_height_offset=0.15,
    max_order: int = 8,
) -> RoomConfig:
    """Random shoebox room, RT60 in ``rt60_range``, head and source at least 0.5 m from the walls, source
    ``distance_range`` from the head at about head height (+- ``source_height_offset`` m)."""
    for _ in range(200):
        dims = np.array([rng.uniform(3.5, 8.0), rng.uniform(3.0, 7.0), rng.uniform(2.5, 3.3)])
        rt60 = float(rng.uniform(*rt60_range))
        try:
            absorption, _ = pra.inverse_sabine(rt60, dims)
        except ValueError:
            continue
        if not 0.0 < absorption < 1.0:
            continue
        head = np.array([rng.uniform(0.6, dims[0] - 0.6), rng.uniform(0.6, dims[1] - 0.6), rng.uniform(1.1, 1.7)])
        ok = False
        for _ in range(50):
            d = rng.uniform(*distance_range)
            ang = rng.uniform(-np.pi, np.pi)
            z = head[2] + rng.uniform(-source_height_offset, source_height_offset)
            src = np.array([head[0] + d * np.cos(ang), head[1] + d * np.sin(ang), z])
            if np.all(src[:2] > 0.5) and np.all(src[:2] < dims[:2] - 0.5) and 0.3 < z < dims[2] - 0.3:
                ok = True
                break
        if not ok:
            continue
        cfg = RoomConfig(dims=dims, rt60=rt60, absorption=float(absorption), max_order=max_order,
                         source=src, head=head, base_yaw=float(rng.uniform(-np.pi, np.pi)))
        _image_sources(cfg)
        return cfg
    raise RuntimeError("could not sample a room configuration")


def _image_sources(cfg: RoomConfig) -> None:
    room = pra.ShoeBox(cfg.dims, fs=SAMPLE_RATE, materials=pra.Material(cfg.absorption), max_order=cfg.max_order,
                       air_absorption=False)
    room.add_source(cfg.source)
    room.add_microphone(cfg.head)
    room.image_source_model()
    src = room.sources[0]
    visible = np.asarray(room.visibility[0][0], dtype=bool)
    cfg.images = np.asarray(src.images, dtype=float).T[visible]
    cfg.gains = np.asarray(src.damping, dtype=float).mean(axis=0)[visible]
    cfg.complete_until = cfg.max_order * float(np.min(cfg.dims)) / SPEED_OF_SOUND


def render_view(cfg: RoomConfig, yaw: float, signal: np.ndarray, rng: np.random.Generator,
                snr_db: float | None = 35.0, fs: int = SAMPLE_RATE, head_radius: float = HEAD_RADIUS,
                head=None) -> np.ndarray:
    """Binaural recording (2, n) float32 of ``signal`` (mono, length n + RIR length) by a head turned to ``yaw``
    (room frame). The first RIR-length samples are dropped so the clip is in steady state. ``head``: a
    ``slfm.heads`` model instead of the spherical head of ``head_radius``."""
    direct = int(np.linalg.norm(cfg.source - cfg.head) / SPEED_OF_SOUND * fs)
    length = int(fs * min(max(0.6 * cfg.rt60, 0.15), 0.6)) + direct
    rir = complete_rir(cfg.images, cfg.gains, cfg.head, yaw, cfg.rt60, cfg.complete_until, length, rng, fs,
                       head_radius, head=head)
    n_out = signal.size - length
    if n_out <= 0:
        raise ValueError("source signal shorter than the room response")
    spec_n = 1 << int(np.ceil(np.log2(signal.size + length)))
    s = np.fft.rfft(signal, spec_n)
    out = np.fft.irfft(np.fft.rfft(rir, spec_n, axis=1) * s[None, :], spec_n, axis=1)[:, length:length + n_out]
    if snr_db is not None:
        p = np.mean(out**2) + 1e-20
        out = out + rng.standard_normal(out.shape) * np.sqrt(p / 10 ** (snr_db / 10))
    peak = np.max(np.abs(out)) + 1e-12
    return (out / peak * 0.5).astype(np.float32)
