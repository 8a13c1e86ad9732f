"""Spatial encoding of pose kernels on voxel grids: every voxel reads each pair's kernel at its own delay.

A peak at delay t on pair (s, m) means a reflector somewhere on the ellipsoid |x - s| + |x - m| = c t; reading
the kernel at every voxel's delay paints that ellipsoid shell into the grid. One shell is ambiguous; where the
shells of several pairs meet is the reflector, so the pairs are fused by a product (or sum) for a non-learned
localiser, or max-pooled after per-pair features inside the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _delays_samples(speakers: np.ndarray, mics: np.ndarray, points: np.ndarray, fs: float, c: float) -> np.ndarray:
    speakers = np.asarray(speakers, dtype=float).reshape(-1, 3)
    mics = np.asarray(mics, dtype=float).reshape(-1, 3)
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    if speakers.shape != mics.shape:
        raise ValueError(f"speakers {speakers.shape} and mics {mics.shape} must be one row per pair")
    path = np.stack([np.linalg.norm(points - s, axis=1) + np.linalg.norm(points - m, axis=1)
                     for s, m in zip(speakers, mics)])
    return path * (fs / c)


def spatial_encoding(kernels: np.ndarray, speakers: np.ndarray, mics: np.ndarray, points: np.ndarray, fs: float,
                     speed_of_sound: float) -> np.ndarray:
    """(pairs, V) float32: kernel of each pair linearly interpolated at every point's delay (|x-s|+|x-m|)/c.

    ``kernels`` (pairs, taps) with tap 0 at emission; ``speakers``/``mics`` (pairs, 3) and ``points`` (V, 3) in one
    frame, metres. Points whose delay falls outside the kernel read 0. For repeated frames use ``DelayTable``.
    """
    return DelayTable(points, speakers, mics, fs, speed_of_sound, np.shape(kernels)[-1]).encode(kernels)


class DelayTable:
    """Per-(grid, rig, fs, c) precomputed delay indices and weights: encoding a frame is two gathers.

    ``voxel_size_m``: when set, each kernel is first smoothed by a Gaussian of half a voxel (in path length). Body
    echoes are about a centimetre thick in path while voxels are several centimetres wide, so without it a shell
    can fall between voxel centres and vanish from the grid. A Gaussian rather than a box or max filter keeps a
    single maximum per echo, so a product of pairs peaks at the voxel that best fits all ellipsoids (least squares)
    instead of on a plateau.
    """

    def __init__(self, points: np.ndarray, speakers: np.ndarray, mics: np.ndarray, fs: float, c: float, taps: int,
                 voxel_size_m: float | None = None):
        self.taps = int(taps)
        self.n_pairs = np.asarray(speakers).reshape(-1, 3).shape[0]
        self.n_points = np.asarray(points).reshape(-1, 3).shape[0]
        d = _delays_samples(speakers, mics, points, fs, c)
        base = np.floor(d)
        frac = d - base
        valid = (base >= 0) & (base < self.taps - 1)
        stride = self.taps + 2  # two zero columns after every kernel row catch out-of-range points
        rows = (np.arange(self.n_pairs) * stride)[:, None]
        self.index = np.where(valid, rows + base, rows + self.taps).astype(np.intp)
        self.weight = np.where(valid, frac, 0.0).astype(np.float32)
        self._padded = np.zeros((self.n_pairs, stride), dtype=np.float32)
        self.smoothing_taps = 0.5 * voxel_size_m * fs / c if voxel_size_m else 0.0

    def encode(self, kernels: np.ndarray) -> np.ndarray:
        """(pairs, V) float32 encoding of (pairs, taps) kernels."""
        kernels = np.asarray(kernels, dtype=np.float32)
        if kernels.shape != (self.n_pairs, self.taps):
            raise ValueError(f"kernels {kernels.shape} do not match the table ({self.n_pairs}, {self.taps})")
        if self.smoothing_taps > 0:
            kernels = gaussian_filter1d(kernels, self.smoothing_taps, axis=1, mode="constant", truncate=3.0)
        self._padded[:, : self.taps] = kernels
        flat = self._padded.ravel()
        lower = flat[self.index]
        return lower + self.weight * (flat[self.index + 1] - lower)


@dataclass(frozen=True)
class Grid:
    """Regular voxel grid: centres ``origin + spacing * (i, j, k)``, C order (x slowest), in ``frame``."""

    origin: tuple[float, float, float]
    spacing_m: float
    shape: tuple[int, int, int]
    frame: str = "base_link"

    def points(self) -> np.ndarray:
        """(V, 3) voxel centres."""
        axes = [self.origin[i] + self.spacing_m * np.arange(self.shape[i]) for i in range(3)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)

    def point(self, flat_index: int) -> np.ndarray:
        return np.asarray(self.origin) + self.spacing_m * np.array(np.unravel_index(flat_index, self.shape))

    def voxel_of(self, point: np.ndarray) -> np.ndarray:
        """(3,) integer voxel coordinates nearest to ``point`` (may lie outside the grid)."""
        return np.round((np.asarray(point, float) - self.origin) / self.spacing_m).astype(int)


def room_grid(x_m=(0.5, 5.0), y_m=(-2.5, 2.5), z_m=(0.0, 2.2), spacing_m: float = 0.1,
              frame: str = "base_link") -> Grid:
    """Coarse grid over the box in front of the robot where a person can stand (locates the person)."""
    lo = np.array([x_m[0], y_m[0], z_m[0]], float)
    hi = np.array([x_m[1], y_m[1], z_m[1]], float)
    shape = tuple(int(n) for n in np.floor((hi - lo) / spacing_m) + 1)
    return Grid(tuple(lo), float(spacing_m), shape, frame)


def person_grid(centre, size_m: float = 2.0, n: int = 32, frame: str = "base_link") -> Grid:
    """Fine cube of ``n``^3 voxels and side ``size_m`` centred on a person (where the joints are resolved)."""
    spacing = size_m / n
    origin = np.asarray(centre, float) - spacing * (n - 1) / 2
    return Grid(tuple(origin), spacing, (n, n, n), frame)


def fuse_pairs(encodings: np.ndarray, method: str = "product") -> np.ndarray:
    """(V,) fusion of (pairs, V) encodings, each pair normalised to its maximum first.

    ``product`` keeps only where every pair's shell passes (sharp, but one missing echo erases the reflector);
    ``sum`` tolerates a missing pair at the price of ghost shells. The product is taken as a geometric mean so
    that its scale does not depend on the pair count.
    """
    enc = np.asarray(encodings, dtype=np.float64)
    peak = enc.max(axis=1, keepdims=True)
    norm = np.divide(enc, peak, out=np.zeros_like(enc), where=peak > 0)
    if method == "product":
        return np.exp(np.mean(np.log(np.maximum(norm, 1e-12)), axis=0)).astype(np.float32)
    if method == "sum":
        return norm.mean(axis=0).astype(np.float32)
    raise ValueError(f"unknown fusion {method!r} (product or sum)")


def localise(encodings: np.ndarray, grid: Grid, method: str = "product") -> np.ndarray:
    """(3,) centre of the voxel where the fused pairs are strongest: a non-learned reflector estimate."""
    return grid.point(int(np.argmax(fuse_pairs(encodings, method))))


def point_cloud(points: np.ndarray, fused: np.ndarray, min_fraction: float = 0.25):
    """(xyz (K, 3) float32, intensity (K,) float32) of the voxels above ``min_fraction`` of the peak (for RViz)."""
    fused = np.asarray(fused, dtype=np.float32).ravel()
    peak = float(fused.max()) if fused.size else 0.0
    keep = fused >= min_fraction * peak if peak > 0 else np.zeros(fused.shape, bool)
    return np.asarray(points, dtype=np.float32)[keep], fused[keep]
