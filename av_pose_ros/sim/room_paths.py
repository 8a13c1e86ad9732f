"""Geometric image sources of a shoebox room, and the body's shadow on them.

pyroomacoustics gives the empty room as a summed impulse response. To let a person change that response (a
torso between the rig and a wall blocks the wall's echo at high frequencies and lets low ones bend round it) the
individual paths are needed: here every image source of every speaker is enumerated up to a path length, and its
unfolded straight line to each mic is folded back into the room as the polyline the sound really travels. A
person's capsules are then tested against those segments. A segment passing a capsule is treated as a wave
passing a strip as wide as the capsule (Fresnel diffraction at both edges, Babinet's principle), per frequency:

    T(f) = 1 - (1 + j) / 2 * integral_u1^u2 exp(-j pi t^2 / 2) dt,   u = x * sqrt(2 (d1 + d2) / (lambda d1 d2))

with x the signed distances of the strip's edges from the line (-r - d and r - d for a capsule of radius r whose
axis lies d from the line) and d1, d2 the unfolded distances to the source and to the mic. Low frequencies bend
round a torso, high ones are shadowed (the far-wall echo behind a person 2.5 m away, through the torso and back,
keeps about half its amplitude at 1-3 kHz and a fifth at 12-18 kHz); lines just outside a limb see the edge's
ripple. Successive crossings (out to a wall and back through the
person) multiply. The change to the room response is sum over blocked paths of a (T(f) - 1) e^{-j w tau}, which the
empty-room capture does not contain: the residual that empty-room subtraction leaves in a real room.

Amplitudes follow pyroomacoustics' image model (1 / (4 pi r) per path, sqrt(1 - absorption) per wall bounce),
so the enumerated paths reproduce its response (checked in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft

from .room import Room

SHADOW_MAX_PATH_M = 11.0     # paths longer than this arrive after every kernel tap (1200 taps = 8.6 m) + margin
_COARSE_BINS = 96            # Fresnel transmissions are smooth in f: evaluated on this grid, then interpolated
_CLEAR_U = 3.0               # a strip whose near edge is this many Fresnel units from the line changes < 5 %


@dataclass(frozen=True, eq=False)
class ImagePaths:
    """Room paths of every (speaker, mic) combination up to a length, folded into the room (corner frame)."""

    combo: np.ndarray          # (P,) speaker * n_mics + mic
    length_m: np.ndarray       # (P,) unfolded path length
    amplitude: np.ndarray      # (P,) 1 / (4 pi r) * beta ** order
    order: np.ndarray          # (P,) number of wall reflections
    seg_a: np.ndarray          # (P, N, 3) segment starts (real room coordinates); padded segments have a == b
    seg_b: np.ndarray          # (P, N, 3) segment ends
    seg_t0: np.ndarray         # (P, N) fraction of the unfolded path at each segment start
    seg_t1: np.ndarray         # (P, N) ... and end


def mirror_in_walls(points: np.ndarray, size_m) -> np.ndarray:
    """(6, N, 3) mirror images of room-frame ``points`` in the walls x=0, x=Lx, y=0, y=Ly, floor, ceiling."""
    points = np.asarray(points, float).reshape(-1, 3)
    out = np.repeat(points[None], 6, axis=0)
    for axis in range(3):
        out[2 * axis, :, axis] = -points[:, axis]
        out[2 * axis + 1, :, axis] = 2 * size_m[axis] - points[:, axis]
    return out


def _fold(x: np.ndarray, cell: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Unfolded coordinates in image cell ``cell`` (integer per axis) back into the room."""
    local = x - cell * size
    return np.where(cell % 2 == 0, local, size - local)


def image_paths(room: Room, speakers_room: np.ndarray, mics_room: np.ndarray,
                max_path_m: float = SHADOW_MAX_PATH_M) -> ImagePaths:
    """Every image-source path (order <= room.max_order, length <= ``max_path_m``), direct paths included."""
    size = np.asarray(room.size_m, float)
    speakers_room = np.asarray(speakers_room, float).reshape(-1, 3)
    mics_room = np.asarray(mics_room, float).reshape(-1, 3)
    beta = np.sqrt(1.0 - room.absorption)
    q_max = np.ceil(max_path_m / size).astype(int) + 1
    grids = np.meshgrid(*[np.arange(-q, q + 1) for q in q_max], indexing="ij")
    q = np.stack([g.ravel() for g in grids], axis=1)                                 # (Q, 3) image cells
    order = np.abs(q).sum(axis=1)
    q, order = q[order <= room.max_order], order[order <= room.max_order]
    images = q[None] * size + np.where(q % 2 == 0, speakers_room[:, None], size - speakers_room[:, None])
    # (S, Q, 3) image positions; pair every image with every mic
    n_s, n_m = len(speakers_room), len(mics_room)
    src = np.broadcast_to(images[:, None], (n_s, n_m) + images.shape[1:])           # (S, M, Q, 3)
    dst = np.broadcast_to(mics_room[None, :, None], src.shape)
    length = np.linalg.norm(dst - src, axis=-1)
    keep = length <= max_path_m
    s_idx, m_idx, q_idx = np.nonzero(keep)
    src, dst, length = src[keep], dst[keep], length[keep]
    cells, orders = q[q_idx], order[q_idx]
    n_max = int(orders.max()) if len(orders) else 0
    # parameters t in (0, 1) where the unfolded line crosses a wall plane between the image's cell and cell 0
    crossings = np.ones((len(src), max(n_max, 1)))
    col = np.zeros(len(src), int)
    for axis in range(3):
        for j in range(1, int(np.abs(cells[:, axis]).max(initial=0)) + 1):
            for sign in (1, -1):
                has = sign * cells[:, axis] >= j
                plane = (j if sign > 0 else 1 - j) * size[axis]   # q>0: planes L..qL; q<0: planes 0..(q+1)L
                d = dst[has, axis] - src[has, axis]
                crossings[has, col[has]] = (plane - src[has, axis]) / d
                col[has] += 1
    t = np.concatenate([np.zeros((len(src), 1)), np.sort(crossings, axis=1), np.ones((len(src), 1))], axis=1)
    t0, t1 = t[:, :-1], t[:, 1:]
    a = src[:, None] + t0[..., None] * (dst - src)[:, None]
    b = src[:, None] + t1[..., None] * (dst - src)[:, None]
    cell = np.floor((0.5 * (a + b)) / size).astype(int)
    return ImagePaths(combo=s_idx * n_m + m_idx, length_m=length,
                      amplitude=beta ** orders / (4 * np.pi * np.maximum(length, 1e-9)), order=orders,
                      seg_a=_fold(a, cell, size), seg_b=_fold(b, cell, size), seg_t0=t0, seg_t1=t1)


def segment_distance(p0, p1, q0, q1) -> tuple[np.ndarray, np.ndarray]:
    """Closest distance between segments p0-p1 and q0-q1 (broadcast, (..., 3)) and its parameter along p."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = np.einsum("...i,...i", d1, d1), np.einsum("...i,...i", d2, d2)
    b, c, f = np.einsum("...i,...i", d1, d2), np.einsum("...i,...i", d1, r), np.einsum("...i,...i", d2, r)
    denom = a * e - b * b
    safe_a, safe_e = np.maximum(a, 1e-12), np.maximum(e, 1e-12)
    s = np.where(denom > 1e-12, np.clip((b * f - c * e) / np.maximum(denom, 1e-12), 0, 1), 0.0)
    tt = (b * s + f) / safe_e
    s = np.where(tt < 0, np.clip(-c / safe_a, 0, 1), np.where(tt > 1, np.clip((b - c) / safe_a, 0, 1), s))
    tt = np.clip(tt, 0, 1)
    point_q = e <= 1e-12                                      # q is a point (a ball)
    s = np.where(point_q, np.clip(-c / safe_a, 0, 1), s)
    tt = np.where(point_q, 0.0, tt)
    closest = p0 + s[..., None] * d1 - (q0 + tt[..., None] * d2)
    return np.linalg.norm(closest, axis=-1), s


def strip_transmission(near_u: np.ndarray, far_u: np.ndarray) -> np.ndarray:
    """Complex field behind a strip spanning Fresnel coordinates [near_u, far_u] (signed, the line at 0)."""
    from scipy.special import fresnel

    s2, c2 = fresnel(far_u)
    s1, c1 = fresnel(near_u)
    return 1 - 0.5 * (1 + 1j) * ((c2 - c1) - 1j * (s2 - s1))


def blocked_paths(paths: ImagePaths, capsules_room: np.ndarray, c: float, max_f_hz: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segments that the body (capsules, room frame) can diffract at up to ``max_f_hz``.

    Returns (path index, capsule radius r (m), line-to-axis distance d (m), d1 (m), d2 (m)), one row per
    (path, segment) hit, the capsule with the deepest penetration r - d chosen per segment (the union of capsules
    seen as one obstacle).
    """
    ca, cb, cr = capsules_room[:, :3], capsules_room[:, 3:6], capsules_room[:, 6]
    ends = np.concatenate([ca, cb])
    centre = 0.5 * (ends.min(0) + ends.max(0))
    extent = np.linalg.norm(ends - centre, axis=1).max() + cr.max()
    # Fresnel zone radius at the highest frequency bounds how far outside an edge a line can still lose energy
    lam = c / max_f_hz
    reach = _CLEAR_U * np.sqrt(lam * paths.length_m.max(initial=1.0) / 8) + 1e-3
    seg_a, seg_b = paths.seg_a, paths.seg_b
    dist_c, _ = segment_distance(seg_a, seg_b, centre[None, None], centre[None, None])
    near = (dist_c < extent + reach) & (np.linalg.norm(seg_b - seg_a, axis=-1) > 1e-9)
    p_idx, n_idx = np.nonzero(near)
    if not len(p_idx):
        empty = np.zeros(0)
        return p_idx, empty, empty, empty, empty
    a, b = seg_a[p_idx, n_idx][:, None], seg_b[p_idx, n_idx][:, None]
    d, s = segment_distance(a, b, ca[None], cb[None])                                 # (H, C)
    depth = cr[None] - d
    best = depth.argmax(axis=1)
    rows = np.arange(len(best))
    h, radius, dist = depth[rows, best], cr[best], d[rows, best]
    s = s[rows, best]
    t0, t1 = paths.seg_t0[p_idx, n_idx], paths.seg_t1[p_idx, n_idx]
    total = paths.length_m[p_idx]
    d1 = np.maximum((t0 + s * (t1 - t0)) * total, 1e-3)
    d2 = np.maximum(total - d1, 1e-3)
    # keep what can matter: the strip's near edge within a few Fresnel units at max_f_hz
    u_near = -h * np.sqrt(2 * (d1 + d2) / (lam * d1 * d2))
    keep = u_near < _CLEAR_U
    return p_idx[keep], radius[keep], dist[keep], d1[keep], d2[keep]


def shadow_response(paths: ImagePaths, capsules_room: np.ndarray, n_combos: int, fs: int, c: float,
                    length: int) -> np.ndarray | None:
    """(n_combos, length) change of the room response the body makes (None when it blocks nothing)."""
    p_idx, radius, dist, d1, d2 = blocked_paths(paths, capsules_room, c, fs / 2)
    if not len(p_idx):
        return None
    n_fft = int(length) + 256
    f = np.fft.rfftfreq(n_fft, 1 / fs)
    coarse = np.linspace(0.0, fs / 2, _COARSE_BINS + 1)
    scale = np.sqrt(2 * (d1 + d2)[:, None] * (coarse / c)[None] / (d1 * d2)[:, None])    # Fresnel units per m
    per_segment = strip_transmission((-radius - dist)[:, None] * scale, (radius - dist)[:, None] * scale)
    order = np.argsort(p_idx, kind="stable")
    hit, first = np.unique(p_idx[order], return_index=True)
    transmission = np.multiply.reduceat(per_segment[order], first, axis=0)            # crossings multiply
    x = f / coarse[1]
    i0 = np.minimum(x.astype(int), _COARSE_BINS - 1)
    w = x - i0
    transmission = transmission[:, i0] * (1 - w) + transmission[:, i0 + 1] * w
    delay = paths.length_m[hit] / c
    spectra = paths.amplitude[hit, None] * (transmission - 1) * np.exp(-2j * np.pi * f[None] * delay[:, None])
    one_hot = np.zeros((n_combos, len(hit)))
    one_hot[paths.combo[hit], np.arange(len(hit))] = 1.0
    out = one_hot @ spectra
    taper = np.clip((0.97 * fs / 2 - f) / (0.07 * fs / 2), 0, 1)                       # no ringing at Nyquist
    return sp_fft.irfft(out * taper, n_fft)[:, :length]
