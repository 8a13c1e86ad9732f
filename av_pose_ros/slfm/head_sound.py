"""A steady sound source heard by the simulated turning head, as a continuous binaural stream (no rclpy).

sim_node's head (`head_motion`) turns in place; with `head_sound` set, one source sits in a seeded reverberant
shoebox room at a fixed direction of the head's base frame, and the two ears of the spherical head
(`binaural.complete_rir`) hear it block by block at the head's yaw of that block. slfm_node then has what a robot's
binaural pair gives it: a stream whose interaural cues change as the head turns, from which it tells a source
behind the head from its mirror in front.

Blocks are rendered by overlap-save: each block convolves the source samples of the response's length before it
plus its own, so consecutive blocks at one yaw are exactly one long rendering cut in pieces; at a yaw change the
response switches from one block to the next, as a block-wise time-varying filter does. Responses are cached per
quantised yaw. The source signal is a seeded loop of music-like or noise-like sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .binaural import complete_rir
from .constants import HEAD_RADIUS, SAMPLE_RATE, SPEED_OF_SOUND
from .rooms import RoomConfig, sample_room
from .sources import music_like, noise_like
from .tracking_eval import place_source

KINDS = ("noise", "music")


@dataclass(frozen=True, kw_only=True)
class HeadSoundConfig:
    kind: str = "noise"                   # noise | music
    azimuth_rad: float = np.deg2rad(145.0)  # source direction in the head's base frame (+ left), REP-103
    rt60_range: tuple[float, float] = (0.3, 0.5)
    distance_range: tuple[float, float] = (1.0, 2.5)
    snr_db: float | None = 30.0           # sensor noise against the source's mean level at the ears; None: none
    loop_s: float = 20.0                  # length of the source signal loop
    response_s: float = 0.4               # length of the room response (beyond it the tail is below the noise)
    yaw_step_rad: float = np.deg2rad(0.25)  # yaw quantisation of the response cache


class HeadSoundScene:
    """`render(start_sample, n, yaw)` -> (2, n) float32 at `SAMPLE_RATE`: the ears at head yaw `yaw` (rad, in the
    head's base frame) over source samples start_sample .. start_sample + n."""

    def __init__(self, seed: int, config: HeadSoundConfig = HeadSoundConfig()):
        if config.kind not in KINDS:
            raise ValueError(f"head sound kind {config.kind!r}: one of {KINDS}")
        self.config = config
        self.fs = SAMPLE_RATE
        rng = np.random.default_rng([int(seed), 4421])
        self.room = self._room(rng)
        make = music_like if config.kind == "music" else noise_like
        self.signal = make(int(config.loop_s * self.fs), rng)
        self.length = int(config.response_s * self.fs) + self.direct_samples()
        self._responses: dict[int, np.ndarray] = {}
        self._seed = int(seed)
        self.noise_rng = np.random.default_rng([int(seed), 4422])
        level = np.sqrt(np.mean(self._clean(0, int(self.fs), 0.0) ** 2))
        self.gain = 0.1 / max(level, 1e-9)     # the source at about -20 dBFS at the ears
        self.noise_std = 0.0 if config.snr_db is None else 0.1 * 10 ** (-config.snr_db / 20)

    def _room(self, rng: np.random.Generator) -> RoomConfig:
        c = self.config
        for _ in range(100):
            room = sample_room(rng, rt60_range=c.rt60_range, distance_range=c.distance_range)
            if place_source(room, c.azimuth_rad, rng, c.distance_range):
                return room
        raise RuntimeError("no room fits the head sound source")

    def direct_samples(self) -> int:
        """Samples from the source to the head centre (the direct sound's delay, rounded up)."""
        return int(np.linalg.norm(self.room.source - self.room.head) / SPEED_OF_SOUND * self.fs) + 1

    def azimuth(self, yaw: float) -> float:
        """The source's true azimuth in the head frame (rad, (-pi, pi], + left) at head yaw `yaw`."""
        return self.room.azimuth(self.room.base_yaw + yaw)

    def response(self, yaw: float) -> np.ndarray:
        """(2, length) binaural room response at head yaw `yaw` (cached per yaw step; its diffuse tail is seeded
        by the step, so a yaw always sounds the same)."""
        key = int(round(yaw / self.config.yaw_step_rad))
        rir = self._responses.get(key)
        if rir is None:
            room = self.room
            rng = np.random.default_rng([self._seed, 4423, key & 0xFFFFFFFF])
            rir = complete_rir(room.images, room.gains, room.head, room.base_yaw + key * self.config.yaw_step_rad,
                               room.rt60, room.complete_until, self.length, rng, self.fs, HEAD_RADIUS)
            if len(self._responses) >= 512:
                self._responses.clear()
            self._responses[key] = rir
        return rir

    def _source(self, start: int, n: int) -> np.ndarray:
        return self.signal[np.arange(start, start + n) % self.signal.size]

    def _clean(self, start_sample: int, n: int, yaw: float) -> np.ndarray:
        rir = self.response(yaw)
        x = self._source(start_sample - (self.length - 1), n + self.length - 1)
        size = 1 << int(np.ceil(np.log2(x.size + self.length)))
        y = np.fft.irfft(np.fft.rfft(rir, size, axis=1) * np.fft.rfft(x, size)[None, :], size, axis=1)
        return y[:, self.length - 1:self.length - 1 + n]

    def render(self, start_sample: int, n: int, yaw: float) -> np.ndarray:
        out = self._clean(int(start_sample), int(n), float(yaw)) * self.gain
        if self.noise_std > 0:
            out = out + self.noise_rng.standard_normal(out.shape) * self.noise_std
        return np.clip(out, -1.0, 1.0).astype(np.float32)
