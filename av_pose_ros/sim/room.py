"""Empty-room impulse responses of a shoebox room (pyroomacoustics image-source method), cached per room.

This is the static multipath that the pose kernel subtracts: the same room, rig placement and air temperature
always give the same responses, so they are computed once and reused for every capture in that room.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyroomacoustics as pra

# pyroomacoustics starts every RIR half a fractional-delay filter late; tap 0 here is the emission instant.
_PRA_DELAY = pra.constants.get("frac_delay_length") // 2
# pyroomacoustics scales a path of length r by 1 / r; the free-field Green's function (and the body echo model in
# render.py) is 1 / (4 pi r).
_PRA_TO_GREEN = 1.0 / (4.0 * np.pi)


@dataclass(frozen=True)
class Room:
    """A concrete shoebox room: size (m), energy absorption of every wall, image-source order."""

    size_m: tuple[float, float, float]
    absorption: float
    max_order: int


def shoebox_rirs(room: Room, speakers_room: np.ndarray, mics_room: np.ndarray, fs: int, c: float) -> np.ndarray:
    """(speakers, mics, L) float32 responses (1 / (4 pi r) per path), tap 0 at emission; room corner frame."""
    speakers_room = np.asarray(speakers_room, float).reshape(-1, 3)
    mics_room = np.asarray(mics_room, float).reshape(-1, 3)
    size = np.asarray(room.size_m, float)
    for name, pts in (("speaker", speakers_room), ("mic", mics_room)):
        if np.any(pts <= 0) or np.any(pts >= size):
            raise ValueError(f"a {name} lies outside the {size.tolist()} m room")
    shoebox = pra.ShoeBox(size, fs=fs, materials=pra.Material(float(room.absorption)), max_order=int(room.max_order))
    shoebox.set_sound_speed(c)
    for s in speakers_room:
        shoebox.add_source(s)
    shoebox.add_microphone_array(mics_room.T)
    shoebox.compute_rir()
    length = max(len(r) for per_mic in shoebox.rir for r in per_mic) - _PRA_DELAY
    out = np.zeros((len(speakers_room), len(mics_room), length), dtype=np.float32)
    for m, per_mic in enumerate(shoebox.rir):
        for s, r in enumerate(per_mic):
            out[s, m, : len(r) - _PRA_DELAY] = r[_PRA_DELAY:] * _PRA_TO_GREEN
    return out


class RirCache:
    """Least-recently-used cache of ``shoebox_rirs`` keyed by room, positions, fs and c."""

    def __init__(self, max_rooms: int = 16):
        self.max_rooms = max_rooms
        self._store: OrderedDict = OrderedDict()

    def get(self, room: Room, speakers_room: np.ndarray, mics_room: np.ndarray, fs: int, c: float) -> np.ndarray:
        key = (room, np.round(speakers_room, 6).tobytes(), np.round(mics_room, 6).tobytes(), int(fs), round(c, 6))
        if key in self._store:
            self._store.move_to_end(key)
            return self._store[key]
        rirs = shoebox_rirs(room, speakers_room, mics_room, fs, c)
        self._store[key] = rirs
        if len(self._store) > self.max_rooms:
            self._store.popitem(last=False)
        return rirs
