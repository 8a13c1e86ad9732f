"""Spherical-head binaural room impulse responses.

Two ears sit at +-90 deg on a rigid sphere of radius ``a``. For every sound path (the direct path and each image
source of a shoebox room) the model gives each ear

* a delay from the spherical-head path length (Woodworth): an ear that sees the source directly is reached
  ``a*cos(theta)`` earlier than the head centre, an ear in the head's shadow ``a*(theta - pi/2)`` later, where
  ``theta`` is the angle between the source direction and the ear's axis; in the horizontal plane this gives the
  classic ITD ``(a/c) * (phi + sin(phi))``;
* a frequency-dependent level (head shadow) from a one-pole/one-zero filter whose high-frequency gain goes from
  +6 dB (ear facing the source) to about -20 dB (ear turned away), unity at low frequencies (Brown & Duda's
  spherical-head model).

The filter splits as ``alpha + (1 - alpha) * lowpass``, so each ear's response is two sparse impulse trains (with
fractional delays) of which one goes through a single first-order low-pass: cheap enough for thousands of image
sources. A late diffuse tail (exponential decay at the room's RT60, frequency-dependent interaural coherence)
continues the image-source response where it stops being complete.

Frames (REP-103): head x forward, y left, z up; azimuth 0 straight ahead, positive to the left.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .constants import HEAD_RADIUS, SAMPLE_RATE, SPEED_OF_SOUND

_ALPHA_MIN = 0.1
_THETA_MIN = np.deg2rad(150.0)
_SINC_HALF = 16  # fractional-delay kernel half length in samples


def woodworth_itd(azimuth, head_radius: float = HEAD_RADIUS, c: float = SPEED_OF_SOUND):
    """Interaural time difference (s), right-ear arrival minus left-ear arrival, for a far source in the horizontal
    plane at ``azimuth`` (rad, + left). Positive when the source is on the left (left ear first)."""
    az = np.asarray(azimuth, dtype=float)
    lateral = np.arcsin(np.clip(np.sin(az), -1.0, 1.0))  # fold front/back: the sphere cannot tell them apart
    return head_radius / c * (lateral + np.sin(lateral))


def azimuth_from_itd(itd, head_radius: float = HEAD_RADIUS, c: float = SPEED_OF_SOUND):
    """Inverse of :func:`woodworth_itd` on the front half: ITD (s) -> azimuth in [-pi/2, pi/2] (rad, + left)."""
    grid = np.linspace(-np.pi / 2, np.pi / 2, 4001)
    table = woodworth_itd(grid, head_radius, c)
    itd = np.clip(np.asarray(itd, dtype=float), table[0], table[-1])
    return np.interp(itd, table, grid)


def ear_path_offsets(directions: np.ndarray, ear_axes: np.ndarray, head_radius: float = HEAD_RADIUS):
    """Extra path length (m) to each ear relative to the head centre and the incidence angle on that ear.

    directions: (K, 3) unit vectors from the head centre towards the sources; ear_axes: (E, 3) unit vectors from the
    head centre out through each ear. Returns (offsets (E, K), incidence (E, K) in rad, 0 = source on the ear's axis).
    """
    cos_inc = np.clip(ear_axes @ directions.T, -1.0, 1.0)
    inc = np.arccos(cos_inc)
    lit = inc <= np.pi / 2
    offsets = np.where(lit, -head_radius * cos_inc, head_radius * (inc - np.pi / 2))
    return offsets, inc


def head_shadow_alpha(incidence):
    """High-frequency gain of the spherical-head shadow filter for an incidence angle (rad, 0 = facing the ear)."""
    inc = np.asarray(incidence, dtype=float)
    return (1.0 + _ALPHA_MIN / 2) + (1.0 - _ALPHA_MIN / 2) * np.cos(inc / _THETA_MIN * np.pi)


def _shadow_lowpass(fs: int, head_radius: float, c: float):
    beta = 2.0 * c / head_radius  # rad/s; the filter is (1 + j alpha w / beta) / (1 + j w / beta)
    return signal.bilinear([1.0], [1.0 / beta, 1.0], fs)


def _add_impulses(out: np.ndarray, times_samples: np.ndarray, amplitudes: np.ndarray) -> None:
    """Accumulate band-limited impulses (Hann-windowed sinc) at fractional sample positions."""
    keep = (times_samples >= _SINC_HALF) & (times_samples < out.size - _SINC_HALF - 1)
    t = times_samples[keep]
    a = amplitudes[keep]
    if t.size == 0:
        return
    base = np.floor(t).astype(np.int64)
    offs = np.arange(-_SINC_HALF + 1, _SINC_HALF + 1)
    idx = base[:, None] + offs[None, :]
    x = idx - t[:, None]
    win = 0.5 * (1.0 + np.cos(np.pi * x / _SINC_HALF))
    np.add.at(out, idx.ravel(), (a[:, None] * np.sinc(x) * win).ravel())


def binaural_rir(
    image_positions: np.ndarray,
    image_gains: np.ndarray,
    head_center: np.ndarray,
    head_yaw: float,
    length: int,
    fs: int = SAMPLE_RATE,
    head_radius: float = HEAD_RADIUS,
    c: float = SPEED_OF_SOUND,
) -> np.ndarray:
    """(2, length) impulse responses (row 0 left ear) of a head at ``head_center`` turned by ``head_yaw`` (rad,
    about +z, REP-103) for point sources ``image_positions`` (K, 3) with broadband gains ``image_gains`` (K,) (wall
    reflection products; spherical spreading 1/(4 pi d) is applied here)."""
    vec = np.asarray(image_positions, dtype=float) - np.asarray(head_center, dtype=float)[None, :]
    dist = np.maximum(np.linalg.norm(vec, axis=1), 1e-3)
    directions = vec / dist[:, None]
    left = np.array([-np.sin(head_yaw), np.cos(head_yaw), 0.0])
    ear_axes = np.stack([left, -left])
    offsets, inc = ear_path_offsets(directions, ear_axes, head_radius)
    alpha = head_shadow_alpha(inc)
    gain = np.asarray(image_gains, dtype=float) / (4.0 * np.pi * dist)
    b, a = _shadow_lowpass(fs, head_radius, c)
    out = np.zeros((2, length))
    for ear in range(2):
        times = (dist + offsets[ear]) / c * fs
        direct = np.zeros(length)
        shadowed = np.zeros(length)
        _add_impulses(direct, times, gain * alpha[ear])
        _add_impulses(shadowed, times, gain * (1.0 - alpha[ear]))
        out[ear] = direct + signal.lfilter(b, a, shadowed)
    return out


def diffuse_tail(
    length: int,
    rt60: float,
    rng: np.random.Generator,
    fs: int = SAMPLE_RATE,
    head_radius: float = HEAD_RADIUS,
    c: float = SPEED_OF_SOUND,
) -> np.ndarray:
    """(2, length) unit-level exponentially decaying diffuse noise whose interaural coherence falls with frequency
    like a diffuse field between two points ``2*a`` apart; amplitude envelope exp(-6.91 t / rt60)."""
    n = int(length)
    spec1 = np.fft.rfft(rng.standard_normal(n))
    spec2 = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    coherence = np.sinc(2.0 * freqs * 2.0 * head_radius / c)  # np.sinc(x) = sin(pi x)/(pi x)
    right = coherence * spec1 + np.sqrt(np.clip(1.0 - coherence**2, 0.0, 1.0)) * spec2
    tail = np.stack([np.fft.irfft(spec1, n), np.fft.irfft(right, n)])
    env = np.exp(-6.91 * np.arange(n) / fs / max(rt60, 1e-3))
    return tail * env[None, :]


def complete_rir(
    image_positions: np.ndarray,
    image_gains: np.ndarray,
    head_center: np.ndarray,
    head_yaw: float,
    rt60: float,
    complete_until: float,
    length: int,
    rng: np.random.Generator,
    fs: int = SAMPLE_RATE,
    head_radius: float = HEAD_RADIUS,
    c: float = SPEED_OF_SOUND,
    head=None,
) -> np.ndarray:
    """Image-source response up to ``complete_until`` seconds, continued by a level-matched diffuse tail.
    ``head`` (``slfm.heads``: anything with ``rir`` and ``radius``) replaces the spherical head of ``head_radius``."""
    if head is None:
        early = binaural_rir(image_positions, image_gains, head_center, head_yaw, length, fs, head_radius, c)
    else:
        early = head.rir(image_positions, image_gains, head_center, head_yaw, length, fs, c)
        head_radius = head.radius
    cut = int(complete_until * fs)
    if cut >= length - 1 or rt60 <= 0:
        return early
    win = max(int(0.02 * fs), 8)
    lo = max(cut - win, 0)
    level = np.sqrt(np.mean(early[:, lo:cut] ** 2) + 1e-20)
    fade = min(int(0.005 * fs), cut)
    ramp = np.ones(length)
    ramp[cut:] = 0.0
    if fade > 0:
        ramp[cut - fade:cut] = np.linspace(1.0, 0.0, fade)
    tail = diffuse_tail(length - (cut - fade), rt60, rng, fs, head_radius, c)
    # the tail starts at the level of the image-source response just before the cut (window centre)
    decay_to_centre = np.exp(-6.91 * (cut - fade - (lo + cut) / 2) / fs / max(rt60, 1e-3))
    scale = level / max(np.sqrt(np.mean(tail[:, : max(win, 1)] ** 2)), 1e-20) * decay_to_centre
    out = early * ramp[None, :]
    tail_ramp = 1.0 - ramp[cut - fade:]
    out[:, cut - fade:] += scale * tail * tail_ramp[None, :]
    return out
