"""Full-circle sound direction from a turning head: a Bayesian filter over the source's direction in a fixed frame.

A spherical head without pinnae hears only the lateral angle of a source (its interaural delay): a source at 30 deg
behind the left ear sounds like one at 30 deg in front of it. When the head turns, the two move apart in the head
frame: a fixed source in front drifts towards the side opposite to the turn, its mirror behind the head drifts
the other way. So one lateral measurement per audio window, read against the head's yaw in a fixed frame at that
window, tells front from back after a few windows with the head turning.

`SourceTracker` keeps a posterior over the source's azimuth in the fixed frame on a grid of hypotheses:

* prediction: a random walk (a wrapped Gaussian per update, for a source that moves or a head that is not exactly
  where its yaw says) plus a small chance that the source jumped anywhere (a new speaker);
* update: each hypothesis predicts the lateral angle ``asin(sin(theta - head_yaw))`` (or, for a head calibrated
  front and back, ``HeadCalibration.apparent_lateral``: a real head reads a source behind it a few degrees off its
  mirror); the likelihood of the measurement is a Gaussian around it, mixed with a uniform floor for the
  per-window estimator's gross errors (reflections, the wrong side).

Without head motion a hypothesis and its mirror always predict the same measurement, so their posterior mass stays
equal: the front/back confidence (posterior mass of the hemisphere the answer is in, leaving out directions within
``side_band_deg`` of the interaural axis, where a source and its mirror nearly coincide) stays near 0.5 and the
answer is given in front, like the per-window model's. Angles follow REP-103: radians, 0 straight ahead, + to the left.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .baselines import gcc_phat_azimuth
from .errors import SlfmError, SlfmInputError

LateralEstimator = Callable[[np.ndarray, int], float]


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """Filter settings; the defaults were chosen on the dev scenarios of `slfm.tracking_eval` (models/slfm.md)."""

    n_hypotheses: int = 360                  # grid over the full circle (1 deg at 360)
    measurement_std_deg: float = 5.0         # per-window lateral error of the good estimates
    outlier_fraction: float = 0.2            # share of windows whose estimate is a gross error
    drift_std_deg: float = 1.5               # random-walk step of the source direction per update
    jump_probability: float = 0.01           # per update: the source may be anywhere (a new speaker)
    resolved_threshold: float = 0.9          # front/back confidence at which `resolved` turns true
    tie_margin: float = 0.02                 # back mass must exceed front mass by 2x this to answer behind
    side_band_deg: float = 10.0              # directions this close to the interaural axis weigh for neither side
    evidence_weight: float = 1.0             # exponent on each window's likelihood: hop / window when windows
                                             # overlap, so that every sample counts about once

    def __post_init__(self):
        checks = {"n_hypotheses": self.n_hypotheses >= 36, "measurement_std_deg": self.measurement_std_deg > 0,
                  "outlier_fraction": 0.0 <= self.outlier_fraction < 1.0, "drift_std_deg": self.drift_std_deg >= 0,
                  "jump_probability": 0.0 <= self.jump_probability < 1.0,
                  "resolved_threshold": 0.5 <= self.resolved_threshold <= 1.0,
                  "tie_margin": 0.0 <= self.tie_margin < 0.5, "side_band_deg": 0.0 <= self.side_band_deg < 45.0,
                  "evidence_weight": 0.0 < self.evidence_weight <= 1.0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"TrackerConfig: out of range: {', '.join(bad)}")


@dataclass(frozen=True)
class TrackerState:
    """What the tracker believes after an update (angles in rad)."""

    azimuth: float                 # head frame, (-pi, pi], full circle
    world_azimuth: float           # the same direction in the fixed frame the head yaw is measured in
    lateral: float                 # the window's own (front-folded) measurement, [-pi/2, pi/2]
    front_probability: float       # posterior mass in front of the head (|azimuth| < pi/2), of the mass that is
                                   # more than side_band_deg off the interaural axis (0.5 when there is none)
    front_back_confidence: float   # that mass for the hemisphere `azimuth` is in: 0.5 = unresolved, 1 = sure; 1 on
                                   # the interaural axis itself, where front and back are the same direction
    resolved: bool                 # front_back_confidence >= the config's resolved_threshold
    updates: int                   # measurements since the last reset


def wrap_angle(a):
    """Angle(s) wrapped to (-pi, pi]."""
    w = np.mod(np.asarray(a, dtype=float) + np.pi, 2 * np.pi) - np.pi
    w = np.where(w == -np.pi, np.pi, w)
    return float(w) if np.ndim(w) == 0 else w


def _gcc_lateral(binaural: np.ndarray, fs: int) -> float:
    x = np.asarray(binaural, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 2 or x.shape[1] < 64 or not np.all(np.isfinite(x)):
        raise SlfmInputError(f"binaural audio must be finite with shape (2, n >= 64); got {x.shape}")
    return gcc_phat_azimuth(x, int(fs))


def default_estimator():
    """The shipped azimuth model (read through the shipped head calibration), or GCC-PHAT when the model file is
    missing or bad."""
    from .estimators import AzimuthEstimator, model_path

    try:
        return AzimuthEstimator.load(model_path("slfm_azimuth.pt"), device="cpu")
    except (SlfmError, OSError, ValueError):
        return "gcc_phat"


class SourceTracker:
    """Full-circle azimuth of one sound source from front-folded per-window estimates and the head's yaw.

    ``estimator``: "auto" (the shipped azimuth model, GCC-PHAT without it), "gcc_phat", an `AzimuthEstimator`, or
    any callable ``(binaural (2, n), fs) -> lateral angle (rad)``. ``head_calibration``: the head's
    `HeadCalibration` (default: the estimator's own, if it has one), for where a source behind is read.
    """

    def __init__(self, estimator="auto", config: TrackerConfig | None = None, *, head_calibration=None):
        self.config = config or TrackerConfig()
        if estimator == "auto":
            estimator = default_estimator()
        self.estimator, self.estimator_name = self._resolve(estimator)
        self.head_calibration = head_calibration or getattr(estimator, "calibration", None)
        n = self.config.n_hypotheses
        self.grid = wrap_angle(np.arange(n) * (2 * np.pi / n))
        self._kernel = self._drift_kernel()
        self.reset()

    @staticmethod
    def _resolve(estimator) -> tuple[LateralEstimator, str]:
        if estimator in (None, "gcc_phat"):
            return _gcc_lateral, "gcc_phat"
        if hasattr(estimator, "estimate"):
            return estimator.estimate, str(getattr(estimator, "path", type(estimator).__name__))
        if callable(estimator):
            return estimator, getattr(estimator, "__name__", "callable")
        raise ValueError(f"estimator must be 'auto', 'gcc_phat', an AzimuthEstimator or a callable; got {estimator!r}")

    def _drift_kernel(self) -> np.ndarray:
        """FFT of the wrapped-Gaussian random-walk step on the grid (circular convolution)."""
        n = self.config.n_hypotheses
        step = 2 * np.pi / n
        offsets = wrap_angle(np.arange(n) * step)
        sigma = math.radians(self.config.drift_std_deg)
        if sigma < 0.25 * step:
            k = (np.arange(n) == 0).astype(float)
        else:
            k = np.exp(-0.5 * (offsets / sigma) ** 2)
        return np.fft.rfft(k / k.sum())

    def reset(self) -> None:
        """Forget the source: every direction equally likely."""
        n = self.config.n_hypotheses
        self.posterior = np.full(n, 1.0 / n)
        self.state: TrackerState | None = None
        self.updates = 0

    # ------------------------------------------------------------------------------------------------ filtering
    def update(self, binaural: np.ndarray, fs: int, head_yaw_rad: float = 0.0) -> float:
        """One audio window (2, n), row 0 = left ear, and the head's yaw (rad, + left) in the fixed frame during it.
        Returns the full-circle azimuth in the head frame (rad, (-pi, pi], + left); `state` has the confidence."""
        lateral = float(self.estimator(binaural, fs))
        return self.update_lateral(lateral, head_yaw_rad)

    def update_lateral(self, lateral_rad: float, head_yaw_rad: float = 0.0) -> float:
        """Same as `update` with the window's front-folded azimuth already estimated (rad, [-pi/2, pi/2])."""
        lateral, yaw = float(lateral_rad), float(head_yaw_rad)
        if not (math.isfinite(lateral) and math.isfinite(yaw)):
            raise SlfmInputError(f"lateral angle and head yaw must be finite, got {lateral_rad!r}, {head_yaw_rad!r}")
        lateral = float(np.clip(lateral, -np.pi / 2, np.pi / 2))
        prior = self._predict(self.posterior) if self.updates else self.posterior
        post = prior * self._likelihood(lateral, yaw)
        self.posterior = post / post.sum()
        self.updates += 1
        self.state = self._summarise(lateral, yaw)
        return self.state.azimuth

    def _predict(self, p: np.ndarray) -> np.ndarray:
        n = p.size
        moved = np.fft.irfft(np.fft.rfft(p) * self._kernel, n)
        moved = np.clip(moved, 0.0, None)
        jump = self.config.jump_probability
        return (1.0 - jump) * moved / moved.sum() + jump / n

    def _likelihood(self, lateral: float, yaw: float) -> np.ndarray:
        """p(measurement | direction): Gaussian in the lateral angle plus a uniform floor over [-pi/2, pi/2]."""
        cfg = self.config
        if self.head_calibration is not None:
            predicted = self.head_calibration.apparent_lateral(self.grid - yaw)
        else:
            predicted = np.arcsin(np.clip(np.sin(self.grid - yaw), -1.0, 1.0))
        sigma = math.radians(cfg.measurement_std_deg)
        good = np.exp(-0.5 * ((lateral - predicted) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        like = (1.0 - cfg.outlier_fraction) * good + cfg.outlier_fraction / math.pi
        return like if cfg.evidence_weight == 1.0 else like ** cfg.evidence_weight

    def _summarise(self, lateral: float, yaw: float) -> TrackerState:
        head = wrap_angle(self.grid - yaw)
        # front/back is weighed away from the interaural axis: within side_band_deg of it a source and its mirror
        # are the same direction within twice that, so that mass counts for neither side
        off_axis = np.abs(np.abs(head) - np.pi / 2) > math.radians(self.config.side_band_deg)
        front = float(self.posterior[off_axis & (np.abs(head) < np.pi / 2)].sum())
        back = float(self.posterior[off_axis & (np.abs(head) > np.pi / 2)].sum())
        weighed = front + back
        front_mass = front / weighed if weighed > 0.05 else 0.5
        in_front = front_mass >= 0.5 - self.config.tie_margin  # a tie (head never turned) is answered in front
        # the lateral angle is what the measurements pin down: its posterior mean near the mode (the uniform floor
        # would pull a plain mean towards 0), put in the chosen hemisphere
        folded = np.arcsin(np.clip(np.sin(head), -1.0, 1.0))
        mode = folded[int(np.argmax(self.posterior))]
        near = np.abs(folded - mode) <= 3.0 * math.radians(self.config.measurement_std_deg)
        lat = float(np.sum(self.posterior[near] * folded[near]) / self.posterior[near].sum())
        azimuth = lat if in_front else wrap_angle(np.pi - lat)
        confidence = front_mass if in_front else 1.0 - front_mass
        if weighed <= 0.05:  # the source is on the interaural axis: front and back are the same direction
            confidence = 1.0
        return TrackerState(azimuth=float(azimuth), world_azimuth=wrap_angle(azimuth + yaw), lateral=lateral,
                            front_probability=front_mass, front_back_confidence=float(confidence),
                            resolved=bool(confidence >= self.config.resolved_threshold), updates=self.updates)

    @property
    def front_back_confidence(self) -> float:
        """Posterior mass of the hemisphere of the latest answer (0.5 before any update)."""
        return 0.5 if self.state is None else self.state.front_back_confidence

    @property
    def resolved(self) -> bool:
        return self.state is not None and self.state.resolved


__all__ = ["SourceTracker", "TrackerConfig", "TrackerState", "default_estimator", "wrap_angle"]
