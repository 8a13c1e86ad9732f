"""Which interaural delay means which direction, for this head: learned from the head's own turns, no labels.

The azimuth model measures an interaural delay; turning it into an angle needs the head's delay-vs-direction
curve. The default is the spherical-head (Woodworth) curve of the training head, but a real head is not that
sphere: its low-frequency delays are longer, its ears sit behind and below the centre, and the curve saturates
differently towards the side. Read through the wrong curve, every lateral source is placed a few degrees off.

SLfM's point is that a turning head teaches itself: a fixed source heard at turns ``delta_v`` (known from the
camera) has head-frame direction ``psi - delta_v`` in view ``v``, so the delays of one recording at several turns
must all be explained by one unknown direction ``psi``. ``fit_head_calibration`` alternates (1) the best
full-circle ``psi`` of every recording under the current curves (grid search; front and back both tried) and
(2) the monotone curves delay = f(lateral angle) (piecewise linear, non-negative slopes, Huber-weighted least
squares) that best predict the measured delays from the directions. The curve is fitted in that direction, delay
from angle, because the noise is in the measured delay: regressing the angle on a noisy delay would shrink the
curve a little more every round. The turns fix the angular scale: a curve stretched or squashed cannot make the
views agree.

A real head is not front/back symmetric either (the ears sit behind the centre, the face and the back of the head
differ): a source 20 deg behind the left ear gives a shorter delay than one 20 deg in front of it (MIT KEMAR:
176 vs 217 us). So a source behind gets its own curve; the per-window readout stays front-folded (``lateral``),
and ``apparent_lateral`` tells the tracker where a source in any direction will be read.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from .binaural import woodworth_itd
from .constants import HEAD_RADIUS

_GRID = np.deg2rad(np.arange(-180.0, 180.0, 0.5))


def _fold(az):
    """Lateral angle (front-folded azimuth, [-pi/2, pi/2]) of a direction anywhere on the circle."""
    return np.arcsin(np.clip(np.sin(az), -1.0, 1.0))


@dataclass(frozen=True)
class HeadCalibration:
    """Interaural delay (s, + = left ear first) of a source at each lateral angle ``laterals_rad`` (0 .. pi/2):
    ``delays_s`` in front, ``back_delays_s`` behind (empty for a symmetric head); both increasing, linear between
    the knots, odd in the angle."""

    laterals_rad: tuple
    delays_s: tuple
    back_delays_s: tuple = ()
    head: str = ""
    recordings: int = 0
    residual_us: float = 0.0
    azimuth_model: str = ""   # sha256 (first 16 hex) of the azimuth model whose delays were fitted; "" = any

    @classmethod
    def woodworth(cls, head_radius: float = HEAD_RADIUS, knots: int = 12) -> HeadCalibration:
        lateral = np.linspace(0.0, math.pi / 2, knots)
        return cls(tuple(lateral.tolist()), tuple(woodworth_itd(lateral, head_radius).tolist()), head="spherical")

    def lateral(self, delay_s) -> np.ndarray:
        """The per-window reading: front-folded azimuth of a delay (as if the source were in front)."""
        return _odd_interp(delay_s, self.delays_s, self.laterals_rad)

    def delay(self, direction_rad) -> np.ndarray:
        """Delay (s) of a source at ``direction_rad`` (head frame, full circle)."""
        direction = np.angle(np.exp(1j * np.asarray(direction_rad, dtype=float)))
        folded = _fold(direction)
        front = _odd_interp(folded, self.laterals_rad, self.delays_s)
        if not self.back_delays_s:
            return front
        return np.where(np.abs(direction) > math.pi / 2, _odd_interp(folded, self.laterals_rad, self.back_delays_s),
                        front)

    def apparent_lateral(self, direction_rad) -> np.ndarray:
        """What ``lateral`` reads for a source at ``direction_rad`` (head frame, full circle): its folded angle in
        front; behind, the front reading of the delay the back curve gives."""
        if not self.back_delays_s:
            return _fold(np.asarray(direction_rad, dtype=float))
        return self.lateral(self.delay(direction_rad))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> HeadCalibration:
        try:
            raw = json.loads(Path(path).read_text())
            cal = cls(tuple(float(x) for x in raw["laterals_rad"]), tuple(float(x) for x in raw["delays_s"]),
                      tuple(float(x) for x in raw.get("back_delays_s", ())), str(raw.get("head", "")),
                      int(raw.get("recordings", 0)), float(raw.get("residual_us", 0.0)),
                      str(raw.get("azimuth_model", "")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a head calibration file ({e}); make one with "
                             "`av-pose calibrate-head`") from None
        lat = np.asarray(cal.laterals_rad)
        curves = [np.asarray(cal.delays_s)] + ([np.asarray(cal.back_delays_s)] if cal.back_delays_s else [])
        if lat.size < 2 or not np.all(np.isfinite(np.concatenate([lat, *curves]))) or np.any(np.diff(lat) <= 0) \
                or lat[-1] > 1.58 or any(c.size != lat.size or np.any(np.diff(c) <= 0) for c in curves):
            raise ValueError(f"{path}: the lateral and delay tables must be finite, increasing, of equal length >= 2")
        return cal

    def fits_model(self, model_path) -> bool:
        """Whether this calibration was fitted on the delays of the azimuth model file at ``model_path``."""
        return not self.azimuth_model or self.azimuth_model == model_digest(model_path)


def model_digest(path) -> str:
    """First 16 hex digits of a file's sha256: which azimuth model a calibration belongs to."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _odd_interp(x, xp, fp) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.interp(np.abs(x), xp, fp)


def _ramps(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Design matrix of a piecewise-linear function with value 0 at 0: column k rises from knot k to knot k+1."""
    lo, hi = knots[:-1], knots[1:]
    return np.clip((x[:, None] - lo[None, :]) / (hi - lo)[None, :], 0.0, 1.0)


def best_directions(delays: np.ndarray, turns: np.ndarray, calibration: HeadCalibration,
                    scale_s: float = 40e-6) -> np.ndarray:
    """(N,) full-circle direction in view 0's head frame that best explains each recording's (N, V) delays at
    turns (N, V) (rad, + left), robustly (Huber of ``scale_s``)."""
    pred = calibration.delay(_GRID[None, None, :] - turns[:, :, None])               # (N, V, G)
    r = np.abs(pred - delays[:, :, None])
    cost = np.where(r < scale_s, 0.5 * r**2, scale_s * (r - 0.5 * scale_s)).sum(1)
    return _GRID[np.argmin(cost, axis=1)]


def _monotone_fit(lateral, delay, knots, scale, current, smoothness: float = 0.01) -> np.ndarray:
    """Huber-weighted increasing least squares of ``delay`` on the lateral angle -> delays at the knots, with a
    penalty on changes of slope (``smoothness`` per view) so that sparse knots follow their neighbours."""
    resid = current - delay
    w = np.sqrt(np.where(np.abs(resid) < scale, 1.0, scale / np.maximum(np.abs(resid), 1e-12)))
    n = knots.size - 1
    unit = scale / math.radians(1.0)           # slopes in delay per degree are of order scale / 1 deg
    bend = (np.eye(n, k=1) - np.eye(n))[:-1] * math.sqrt(smoothness * lateral.size) * unit
    a = np.vstack([_ramps(lateral, knots) * w[:, None], bend / unit])
    slopes, _ = nnls(a, np.concatenate([delay * w, np.zeros(n - 1)]))
    return np.concatenate([[0.0], np.cumsum(np.maximum(slopes, 1e-9))])


def fit_head_calibration(delays_s, turns_rad, *, knots: int = 12, iterations: int = 20, huber_us: float = 40.0,
                         symmetric: bool = False, min_back_views: int = 100, head: str = "") -> HeadCalibration:
    """Fit the lateral angle -> delay curves from recordings of fixed sources at known head turns.

    delays_s: (N, V) measured interaural delays (s) of N recordings, each at V head yaws; turns_rad: (N, V) the head's
    yaw of each view relative to the recording's first view (rad, + left; from the camera or TF). No directions.
    Sources behind get a curve of their own (a real head is not front/back symmetric) unless ``symmetric`` (a head
    known to be, like the simulator's sphere, gains nothing from it but noise) or fewer than ``min_back_views``
    views hear their source from behind. Which of the two to use is not decided from the recordings: the median
    residual moves by less than its own noise between them (measured on the sphere and on MIT KEMAR)."""
    delays, turns = np.asarray(delays_s, float), np.asarray(turns_rad, float)
    if delays.shape != turns.shape or delays.ndim != 2 or delays.shape[1] < 2:
        raise ValueError(f"need (N, V >= 2) delays and turns of the same shape, got {delays.shape}, {turns.shape}")
    ok = np.all(np.isfinite(delays), axis=1) & (np.ptp(turns, axis=1) > math.radians(5.0))
    delays, turns = delays[ok], turns[ok]
    if delays.shape[0] < 20:
        raise ValueError(f"only {delays.shape[0]} recordings with a turn of more than 5 deg; need at least 20")
    fit = _Alternation(delays, turns, np.linspace(0.0, math.pi / 2, knots), huber_us * 1e-6, iterations, head)
    one_curve = fit.run(min_back_views=None)
    if symmetric or fit.back_views(one_curve) < min_back_views:
        return one_curve
    return fit.run(min_back_views=min_back_views)


@dataclass
class _Alternation:
    """Directions given the curves, curves given the directions; scored by the median residual (us)."""

    delays: np.ndarray
    turns: np.ndarray
    knots: np.ndarray
    scale: float
    iterations: int
    head: str

    def view_directions(self, cal: HeadCalibration) -> np.ndarray:
        psi = best_directions(self.delays, self.turns, cal, self.scale)
        return np.angle(np.exp(1j * (psi[:, None] - self.turns)))

    def back_views(self, cal: HeadCalibration) -> int:
        return int(np.sum(np.abs(self.view_directions(cal)) > math.pi / 2))

    def run(self, min_back_views: int | None) -> HeadCalibration:
        cal = HeadCalibration.woodworth(knots=self.knots.size)
        for _ in range(self.iterations):
            view_dir = self.view_directions(cal).ravel()
            behind = np.abs(view_dir) > math.pi / 2
            folded = _fold(view_dir)
            lateral, delay = np.abs(folded), np.sign(folded) * self.delays.ravel()  # mirrored to + angles
            current = np.abs(cal.delay(view_dir))
            two = min_back_views is not None and behind.sum() >= min_back_views
            sides = [~behind, behind] if two else [np.ones_like(behind)]
            curves = [_monotone_fit(lateral[m], delay[m], self.knots, self.scale, current[m]) for m in sides]
            cal = HeadCalibration(tuple(self.knots.tolist()), tuple(curves[0].tolist()),
                                  tuple(curves[1].tolist()) if two else (), head=self.head)
        resid = self.delays - cal.delay(self.view_directions(cal))
        return HeadCalibration(cal.laterals_rad, cal.delays_s, cal.back_delays_s, head=self.head,
                               recordings=int(self.delays.shape[0]), residual_us=float(np.median(np.abs(resid)) * 1e6))


__all__ = ["HeadCalibration", "fit_head_calibration", "best_directions"]
