"""Heads: what turns the sound paths of a room into the two ear signals.

The SLfM data is made with a rigid sphere (``binaural.binaural_rir``). A robot's head is not a sphere, and a model
that learned one sphere's delays and levels can be wrong on a real head. ``MeasuredHead`` renders the same room
paths through a measured head-related impulse response set in the AES69 SOFA format, so that the azimuth model and
the tracker are judged on a head nobody designed for them: the MIT KEMAR dummy-head set that Debian's
``libmysofa1`` package installs (``KEMAR_SOFA``; 710 directions, elevations -40 to 90 deg, 44.1 kHz; resampled
here). Each path is heard through the response measured nearest its direction (in the head frame), with its exact
fractional delay and spreading, summed in the frequency domain.

Frames (REP-103): head x forward, y left, z up; SOFA's spherical source positions (azimuth counter-clockwise from
the front, elevation up) are the same convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal

from .binaural import binaural_rir
from .constants import HEAD_RADIUS, SAMPLE_RATE, SPEED_OF_SOUND

KEMAR_SOFA = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
_CHUNK = 128  # paths per frequency-domain block (memory: chunk x bins complex)


@dataclass(frozen=True)
class SphericalHead:
    """The rigid-sphere model the training data uses (Woodworth delays, Brown-Duda shadow)."""

    radius: float = HEAD_RADIUS
    name: str = "spherical"

    def rir(self, image_positions, image_gains, head_center, head_yaw: float, length: int,
            fs: int = SAMPLE_RATE, c: float = SPEED_OF_SOUND) -> np.ndarray:
        return binaural_rir(image_positions, image_gains, head_center, head_yaw, length, fs, self.radius, c)


@dataclass
class MeasuredHead:
    """A measured HRIR set: ``directions`` (D, 3) unit vectors in the head frame, ``hrirs`` (D, 2, T) (row 0 the left
    ear) at ``fs``, with the delay common to every direction removed (the ear-to-ear delays are kept)."""

    directions: np.ndarray
    hrirs: np.ndarray
    fs: int
    radius: float
    name: str
    _spectra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_sofa(cls, path=KEMAR_SOFA, fs: int = SAMPLE_RATE) -> MeasuredHead:
        """Load a SimpleFreeFieldHRIR SOFA file (needs h5py) and resample it to ``fs``."""
        import h5py

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no HRIR set at {path}; on Debian: apt-get install -y libmysofa1")
        with h5py.File(path, "r") as f:
            ir = np.asarray(f["Data.IR"], dtype=float)                  # (M, R, N)
            src_fs = int(round(float(np.asarray(f["Data.SamplingRate"]).ravel()[0])))
            pos = np.asarray(f["SourcePosition"], dtype=float)          # (M, 3) az deg, el deg, r m
            ears = np.asarray(f["ReceiverPosition"], dtype=float).reshape(-1, 3)
        if ir.ndim != 3 or ir.shape[1] != 2:
            raise ValueError(f"{path}: expected two receivers in Data.IR, got shape {ir.shape}")
        if ears[0, 1] < ears[1, 1]:  # make row 0 the left ear (+y)
            ir = ir[:, ::-1]
        ratio = Fraction(fs, src_fs).limit_denominator(1000)
        ir = signal.resample_poly(ir, ratio.numerator, ratio.denominator, axis=2)
        onset = int(np.argmax(np.max(np.abs(ir), axis=(0, 1)) > 0.1 * np.max(np.abs(ir))))
        ir = ir[:, :, max(onset - 8, 0):]                               # common delay off, pre-ringing kept
        az, el = np.deg2rad(pos[:, 0]), np.deg2rad(pos[:, 1])
        directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
        scale = 1.0 / np.sqrt(np.mean(np.sum(ir**2, axis=2)))
        radius = float(np.linalg.norm(ears[0] - ears[1]) / 2) or HEAD_RADIUS
        return cls(directions=directions, hrirs=ir * scale, fs=fs, radius=radius, name=path.stem)

    def _spectrum(self, nfft: int) -> np.ndarray:
        if nfft not in self._spectra:
            self._spectra[nfft] = np.fft.rfft(self.hrirs, nfft, axis=2).astype(np.complex64)
        return self._spectra[nfft]

    def rir(self, image_positions, image_gains, head_center, head_yaw: float, length: int,
            fs: int = SAMPLE_RATE, c: float = SPEED_OF_SOUND) -> np.ndarray:
        """(2, length) responses of the head at ``head_center`` turned by ``head_yaw`` for point sources
        ``image_positions`` (K, 3) with broadband gains (K,): same contract as ``SphericalHead.rir``."""
        if fs != self.fs:
            raise ValueError(f"{self.name} was resampled to {self.fs} Hz, asked for {fs} Hz")
        vec = np.asarray(image_positions, dtype=float) - np.asarray(head_center, dtype=float)[None, :]
        dist = np.maximum(np.linalg.norm(vec, axis=1), 1e-3)
        cy, sy = np.cos(head_yaw), np.sin(head_yaw)
        local = np.stack([cy * vec[:, 0] + sy * vec[:, 1], -sy * vec[:, 0] + cy * vec[:, 1], vec[:, 2]], axis=1)
        nearest = np.argmax((local / dist[:, None]) @ self.directions.T, axis=1)
        delay = dist / c * fs
        gain = np.asarray(image_gains, dtype=float) / (4.0 * np.pi * dist)
        keep = delay < length
        nfft = 1 << int(np.ceil(np.log2(length + self.hrirs.shape[2])))
        spectra = self._spectrum(nfft)
        omega = 2.0 * np.pi * np.arange(nfft // 2 + 1) / nfft
        total = np.zeros((2, nfft // 2 + 1), np.complex128)
        idx, delay, gain = nearest[keep], delay[keep], gain[keep]
        for lo in range(0, idx.size, _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            phase = (gain[sl, None] * np.exp(-1j * omega[None, :] * delay[sl, None])).astype(np.complex64)
            total += np.einsum("kf,kef->ef", phase, spectra[idx[sl]])
        return np.fft.irfft(total, nfft, axis=1)[:, :length]


def head_model(name: str):
    """``spherical`` (the training head) or ``kemar`` (the measured MIT KEMAR set from libmysofa1)."""
    if name == "spherical":
        return SphericalHead()
    if name == "kemar":
        return MeasuredHead.from_sofa(KEMAR_SOFA)
    raise ValueError(f"unknown head {name!r}: spherical or kemar")


__all__ = ["SphericalHead", "MeasuredHead", "head_model", "KEMAR_SOFA"]
