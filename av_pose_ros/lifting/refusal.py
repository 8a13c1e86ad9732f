"""The lifter's "outside what I can measure" rule: one verdict per frame, used by `eval-lifter` and lifter_node.

A confident wrong pose is worse for a manipulator than an honest "I cannot tell": the rule looks at evidence the
lifter already has (nothing here costs more than a couple of milliseconds) and flags the frame when any of it lies
outside what the lifter can measure:

* ``keypoints``: fewer usable 2D keypoints than ``min_keypoints`` (too little to place the body; missing
  keypoints at close range are normal, so the bar is low).
* ``range``: the coarse reflector (the strongest body echo) lies within ``range_margin_m`` of the farthest range
  the kernel window covers (``measurable_range_m``: the round trip of every pair must fit in the taps). A person
  beyond the window leaves no echo to find; the locator then picks noise or a ghost, often at its window's ends.
* ``scale``: audio and vision disagree on the person's size. The echo's range and the 2D box imply a stature
  (``1.7 m x coarse range / vision-only range``, the vision-only baseline assuming 1.7 m); a human is between
  ``stature_m`` bounds. An echo from the wrong place (a beyond-range person, a ghost) implies an impossible person.
* ``tof``: the CNN's joint depths disagree with the time-of-flight baseline's (median over joints) by more than
  ``max_tof_gap_m``: the network and the raw kernels tell different stories.
* ``rays``: the network's joints (before ray snapping) sit far from their keypoint rays (median over joints above
  ``max_ray_gap_m``): the network did not find the person the camera sees.
* ``spread``: the network's heatmaps are wider than ``max_spread_m`` on average (it is unsure).
* ``risk``: the checks above look at one number each; a person beyond the window whose echo is replaced by a
  ghost inside it can pass every one (a smaller person nearer). ``risk`` is a logistic model of all the evidence
  together, plus the echo's strength where the locator put it (a ghost is weaker than a body) and the range a
  1.7 m person would stand at, fitted on ``val`` to the frames the lifter gets wrong; the frame is flagged when
  that probability exceeds ``max_risk``.

Thresholds are decided on the ``val`` stream only (``python -m av_pose_ros.lifting.calibration``, which stores
them in the model file next to the confidence calibration); ``RefusalRule()`` (no calibration) applies only the
physical checks (keypoints, range, a generous stature band).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .features import (
    BODY_HALF_DEPTH_M,
    LiftingInputError,
    box_centre_ray,
    closest_on_rays,
    keypoint_rays,
    valid_keypoints,
)

ASSUMED_STATURE_M = 1.7      # the vision-only baseline's person (baselines.ASSUMED_STATURE_M)
CHECKS = ("keypoints", "range", "scale", "tof", "rays", "spread", "risk")
ECHO_HALF_WINDOW_M = 0.1     # the echo is read within a coarse voxel's range of where the locator put it


@dataclass
class RefusalRule:
    """Thresholds of the rule (module docstring). ``inf`` disables a check."""

    min_keypoints: int = 3          # what the lifter needs; at close range 3 (shoulder, elbow, wrist) is normal
    range_margin_m: float = 0.15
    min_stature_m: float = 0.6
    max_stature_m: float = 2.8
    max_tof_gap_m: float = float("inf")
    max_ray_gap_m: float = float("inf")
    max_spread_m: float = float("inf")
    risk_coef: list = field(default_factory=list)   # logistic coefficients over risk_features (empty: no check)
    max_risk: float = float("inf")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> RefusalRule:
        d = d or {}
        default = cls()
        return cls(**{f.name: type(getattr(default, f.name))(d[f.name]) for f in fields(cls) if f.name in d})


@dataclass
class Evidence:
    """What the rule looks at for one frame (metres unless said)."""

    keypoints: int                  # usable 2D keypoints
    range_m: float                  # camera -> coarse reflector (the strongest body echo)
    measurable_m: float             # farthest reflector range the kernel window covers along the body's ray
    stature_m: float                # stature implied by the echo's range and the 2D box (NaN: no vision range)
    tof_gap_m: float                # median |CNN depth - time-of-flight depth| over the keypoint joints
    ray_gap_m: float                # median distance of the network's joints from their keypoint rays
    spread_m: float                 # mean heatmap spread
    vision_range_m: float = float("nan")  # where a 1.7 m person with these keypoints would stand
    echo: float = float("nan")      # geometric mean over pairs of the normalised kernel at the coarse echo


@dataclass
class Verdict:
    flagged: bool
    reasons: tuple[str, ...]        # the failed checks (CHECKS), empty when not flagged
    evidence: Evidence
    risk: float = float("nan")      # the risk model's probability that the lift is wrong (NaN: no model)

    def message(self) -> str:
        e = self.evidence
        detail = {"keypoints": f"{e.keypoints} usable keypoints",
                  "range": f"echo at {e.range_m:.2f} m, window covers {e.measurable_m:.2f} m",
                  "scale": f"audio range implies a {e.stature_m:.2f} m person",
                  "tof": f"CNN and time-of-flight depths differ by {e.tof_gap_m:.2f} m",
                  "rays": f"joints {e.ray_gap_m:.2f} m from their keypoint rays",
                  "spread": f"heatmap spread {e.spread_m:.2f} m",
                  "risk": f"evidence together says wrong with p = {self.risk:.2f}"}
        return "; ".join(detail[r] for r in self.reasons)


def measurable_range_m(origin, direction, speakers, mics, taps: int, fs: float, c: float) -> float:
    """Farthest distance along ``direction`` from ``origin`` whose round trip (speaker -> point -> mic) fits in
    ``taps`` samples for every pair (the pose kernel holds nothing beyond it)."""
    reach = taps / float(fs) * float(c)
    r = np.arange(0.0, 12.0, 0.01)
    points = np.asarray(origin, float) + r[:, None] * np.asarray(direction, float)
    path = (np.linalg.norm(points[:, None] - np.asarray(speakers, float)[None], axis=-1)
            + np.linalg.norm(points[:, None] - np.asarray(mics, float)[None], axis=-1)).max(axis=1)
    inside = np.flatnonzero(path <= reach)
    return float(r[inside[-1]]) if len(inside) else 0.0


def _vision_range(keypoints, K, world_from_camera, origin, central) -> float:
    from .baselines import vision_only

    try:
        joints = vision_only(keypoints, K, world_from_camera)
    except LiftingInputError:
        return float("nan")
    return float(np.dot(joints.mean(axis=0) - origin, central))


def gather(keypoints, K, world_from_camera, kernels, speakers, mics, fs: float, c: float, *, grid_centre,
           raw_joints, joints, spread) -> Evidence:
    """The evidence of one lifted frame: its inputs (as given to ``Lifter.predict``), the fine grid's centre (the
    coarse locator put it ``BODY_HALF_DEPTH_M`` behind the echo on the box-centre ray), the network's joints before
    (``raw_joints``) and after ray snapping (``joints``) and its per-joint heatmap spreads (m)."""
    from .baselines import tof

    keypoints = np.asarray(keypoints, float)
    K, world_from_camera = np.asarray(K, float), np.asarray(world_from_camera, float)
    kernels = np.asarray(kernels, np.float32)
    origin, central, _, _ = box_centre_ray(keypoints, K, world_from_camera)
    range_m = float(np.linalg.norm(np.asarray(grid_centre, float) - origin)) - BODY_HALF_DEPTH_M
    measurable = measurable_range_m(origin, central, speakers, mics, kernels.shape[-1], fs, c)
    vision = _vision_range(keypoints, K, world_from_camera, origin, central)
    stature = ASSUMED_STATURE_M * range_m / vision if vision > 0.05 else float("nan")
    ok = valid_keypoints(keypoints)
    _, dirs = keypoint_rays(keypoints, K, world_from_camera)
    raw = np.asarray(raw_joints, float)
    ray_gap = float(np.median(np.linalg.norm(closest_on_rays(raw[ok], origin, dirs[ok]) - raw[ok], axis=1)))
    tj = tof(keypoints, K, world_from_camera, kernels, speakers, mics, fs, speed_of_sound=c,
             coarse_range_m=range_m)
    depth = np.linalg.norm(np.asarray(joints, float)[ok] - origin, axis=1)
    tof_gap = float(np.median(np.abs(depth - np.linalg.norm(tj[ok] - origin, axis=1))))
    return Evidence(keypoints=int(ok.sum()), range_m=range_m, measurable_m=measurable, stature_m=float(stature),
                    tof_gap_m=tof_gap, ray_gap_m=ray_gap, spread_m=float(np.mean(spread)), vision_range_m=vision,
                    echo=echo_strength(origin + range_m * central, kernels, speakers, mics, fs, c))


def echo_strength(point, kernels, speakers, mics, fs: float, c: float) -> float:
    """Geometric mean over pairs of the largest normalised kernel value within ``ECHO_HALF_WINDOW_M`` of the
    round-trip delay of ``point`` (1: every pair's strongest echo is there; small: the pairs do not agree)."""
    from .features import normalise_kernels

    k = normalise_kernels(kernels)
    point = np.asarray(point, float)
    delay = (np.linalg.norm(point - np.asarray(speakers, float), axis=1)
             + np.linalg.norm(point - np.asarray(mics, float), axis=1)) / c * fs
    half = max(1, int(round(2 * ECHO_HALF_WINDOW_M / c * fs)))
    peaks = [float(k[q, max(0, int(d) - half):max(0, int(d) + half + 1)].max(initial=0.0)) for q, d in
             enumerate(delay)]
    return float(np.exp(np.mean(np.log(np.maximum(peaks, 1e-4)))))


def risk_features(e: Evidence) -> np.ndarray:
    """Inputs of the risk model (a check that cannot be made gives a neutral value)."""
    stature = e.stature_m if np.isfinite(e.stature_m) and e.stature_m > 0 else ASSUMED_STATURE_M
    vision = e.vision_range_m if np.isfinite(e.vision_range_m) else e.range_m
    measurable = max(e.measurable_m, 0.5)
    echo = e.echo if np.isfinite(e.echo) else 0.5
    return np.array([1.0, np.log(stature), e.range_m / measurable, vision / measurable, np.log(e.tof_gap_m + 0.01),
                     np.log(e.ray_gap_m + 0.005), e.spread_m, np.log(echo + 0.01), e.keypoints / 17.0])


def risk_of(e: Evidence, rule: RefusalRule) -> float:
    if not rule.risk_coef:
        return float("nan")
    z = float(np.clip(risk_features(e) @ np.asarray(rule.risk_coef, float), -30, 30))
    return 1.0 / (1.0 + np.exp(-z))


def judge(evidence: Evidence, rule: RefusalRule) -> Verdict:
    """Flag the frame when any check fails (NaN evidence fails nothing: a check that cannot be made is skipped)."""
    e = evidence
    failed = {"keypoints": e.keypoints < rule.min_keypoints,
              "range": e.range_m > e.measurable_m - rule.range_margin_m,
              "scale": not rule.min_stature_m <= e.stature_m <= rule.max_stature_m if np.isfinite(e.stature_m)
              else False,
              "tof": e.tof_gap_m > rule.max_tof_gap_m,
              "rays": e.ray_gap_m > rule.max_ray_gap_m,
              "spread": e.spread_m > rule.max_spread_m}
    risk = risk_of(e, rule)
    failed["risk"] = bool(risk > rule.max_risk)
    reasons = tuple(name for name in CHECKS if failed[name])
    return Verdict(flagged=bool(reasons), reasons=reasons, evidence=e, risk=risk)


def fit_rule(evidence: list[Evidence], good: np.ndarray, quantile: float = 0.99,
             base: RefusalRule | None = None) -> RefusalRule:
    """Thresholds that keep ``quantile`` of the ``good`` frames (those the lifter gets right) inside each check:
    the rule then flags what lies outside the envelope where the lifter is right. The physical checks (keypoints,
    range margin) keep ``base``'s values."""
    base = base or RefusalRule()
    good = np.asarray(good, bool)
    if good.sum() < 10:
        raise ValueError(f"only {int(good.sum())} good frames to fit the refusal thresholds on (need 10)")

    def col(name):
        return np.array([getattr(e, name) for e, g in zip(evidence, good) if g], float)

    st = col("stature_m")
    st = st[np.isfinite(st)]
    lo, hi = (1 - quantile) / 2, 1 - (1 - quantile) / 2      # the stature band is two-sided
    return RefusalRule(min_keypoints=base.min_keypoints, range_margin_m=base.range_margin_m,
                       min_stature_m=float(np.quantile(st, lo)) if len(st) else base.min_stature_m,
                       max_stature_m=float(np.quantile(st, hi)) if len(st) else base.max_stature_m,
                       max_tof_gap_m=float(np.quantile(col("tof_gap_m"), quantile)),
                       max_ray_gap_m=float(np.quantile(col("ray_gap_m"), quantile)),
                       max_spread_m=float(np.quantile(col("spread_m"), quantile)))


def rule_of(info: dict | None) -> RefusalRule:
    """The rule stored in a model's metadata (``Lifter.info``: ``metrics.calibration.refusal``), else the
    physical default."""
    from .calibration import calibration_of

    cal = calibration_of(info)
    return RefusalRule.from_dict(cal.get("refusal")) if cal else RefusalRule()


def fit_risk(evidence: list[Evidence], wrong: np.ndarray) -> list[float]:
    """Coefficients of the risk model: P(the lift is wrong | evidence), logistic (``calibration.fit_logistic``)."""
    from .calibration import fit_logistic

    x = np.stack([risk_features(e) for e in evidence])
    return fit_logistic(x, np.asarray(wrong, float)).tolist()


__all__ = ["CHECKS", "Evidence", "RefusalRule", "Verdict", "echo_strength", "fit_risk", "fit_rule", "gather",
           "judge", "measurable_range_m", "risk_features", "rule_of"]
