"""Calibrated per-joint confidence and position covariance, and the refusal thresholds, fitted on ``val`` only.

What consumers read (handover_node: ``min_reach_confidence``, ``max_position_std_m``, its Kalman filter):

* **confidence** = the probability that the joint is within ``radius_m`` (0.1 m) of the truth. A logistic model
  (Platt scaling with a few inputs) of per-joint evidence the lifter has anyway: the heatmap spread, whether the
  joint has a keypoint (and its detector confidence), its distance from its keypoint ray before snapping, its
  depth, its kind (head, arm, leg), the echo's range and the frame's CNN/time-of-flight disagreement
  (``refusal.Evidence``).
* **covariance** (m^2, in the pose's frame): a Gaussian elongated along the camera ray through the joint (depth is
  what sound measures, and what it gets wrong) and round across it (the keypoint fixes direction). Both standard
  deviations are log-linear in the same inputs (least squares on log |error| per axis), then one scale makes the
  *1-sigma coverage* on ``val`` what a 3-D Gaussian gives: the share of joints whose Mahalanobis distance is at
  most ``R1 = 1.88`` (sqrt of the 68.3 % quantile of chi-square with 3 degrees of freedom) is 68.3 %. The
  *2-sigma coverage* is the share within ``R2 = 2.83`` (95.4 %). These are the definitions every report uses.
* **flagged frames** (``refusal``): the verdict (flag and the risk model's log-odds) is among the inputs of both
  models, fitted on every ``val`` frame, flagged or not: a flagged frame's confidence and covariance are what
  flagged frames like it turned out to be (low, wide), still calibrated.

The command fits everything on ``val`` samples, writes it into the model file (``metrics.calibration``, read
back by ``calibration_of``) and draws a reliability diagram::

    python -m av_pose_ros.lifting.calibration --model models/lifter.pt --num 200 --plot models/lifter_reliability.png

The fit holds for one way of running the network (``lifter.Inference``: re-centring passes, mirror averaging,
placing stages), so it is stored beside it (``metrics.inference``); ``--recentre-passes``, ``--mirror-average`` and
``--placing-stages`` change both at once.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import closest_on_rays, keypoint_rays, valid_keypoints
from .refusal import RefusalRule, Verdict, fit_risk, fit_rule, gather, judge

R1 = math.sqrt(3.5267)     # chi2(3) quantile 0.683
R2 = math.sqrt(8.0249)     # chi2(3) quantile 0.954
BASE_FEATURES = ("bias", "log_spread", "has_keypoint", "keypoint_confidence", "log_depth", "log_ray_gap",
                 "log_tof_gap", "head", "arm", "leg", "log_range")
JOINT_GROUPS = ((0, 1, 2, 3, 4), (7, 8, 9, 10), (13, 14, 15, 16))   # COCO-17 head, elbows + wrists, knees + ankles
FEATURES = (*BASE_FEATURES, "flagged", "risk_logit")     # the refusal verdict's two, added by ``with_verdict``
DEFAULT_FAMILIES = ("default", "far", "close")


# -- per-joint inputs and the models ------------------------------------------------------------------------------
def joint_features(keypoints, K, world_from_camera, raw_joints, joints, spread, evidence) -> np.ndarray:
    """(17, len(BASE_FEATURES)) inputs of the confidence and covariance models for one frame (``with_verdict``
    adds the refusal verdict's)."""
    keypoints = np.asarray(keypoints, float)
    origin, dirs = keypoint_rays(keypoints, np.asarray(K, float), np.asarray(world_from_camera, float))
    has = valid_keypoints(keypoints)
    gap = np.zeros(17)
    raw = np.asarray(raw_joints, float)
    if has.any():
        gap[has] = np.linalg.norm(closest_on_rays(raw[has], origin, dirs[has]) - raw[has], axis=1)
    depth = np.linalg.norm(np.asarray(joints, float) - origin, axis=1)
    group = np.zeros((17, len(JOINT_GROUPS)))
    for k, idx in enumerate(JOINT_GROUPS):
        group[list(idx), k] = 1.0
    return np.column_stack([np.ones(17), np.log(np.maximum(spread, 1e-3)), has.astype(float),
                            np.where(has, np.nan_to_num(keypoints[:, 2]), 0.0), np.log(np.maximum(depth, 0.1)),
                            np.where(has, np.log(gap + 0.01), 0.0),
                            np.full(17, np.log(np.nan_to_num(evidence.tof_gap_m, nan=0.0) + 0.01)), group,
                            np.full(17, np.log(max(float(np.nan_to_num(evidence.range_m, nan=1.0)), 0.3)))])


def with_verdict(x: np.ndarray, flagged: bool, risk: float = float("nan")) -> np.ndarray:
    """``x`` (J, len(BASE_FEATURES)) plus the flag and the risk model's log-odds (0 without a risk model)."""
    r = float(np.clip(risk, 1e-3, 1 - 1e-3)) if np.isfinite(risk) else 0.5
    extra = np.tile([float(flagged), math.log(r / (1 - r))], (len(x), 1))
    return np.column_stack([x, extra])


def ray_axes(joints, origin) -> np.ndarray:
    """(17, 3, 3) rotations whose first column is the camera ray through each joint (then two across it)."""
    u = np.asarray(joints, float) - np.asarray(origin, float)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    helper = np.where(np.abs(u[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.stack([u, v, np.cross(u, v)], axis=2)


@dataclass
class Calibration:
    """Fitted models (coefficients over ``FEATURES``) and the refusal rule (``RefusalRule.to_dict``); ``as_dict``
    is what the model file stores."""

    radius_m: float
    confidence_coef: list[float]
    log_std_along_coef: list[float]
    log_std_across_coef: list[float]
    refusal: dict

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def apply(self, x: np.ndarray, axes: np.ndarray, flagged: bool,
              risk: float = float("nan")) -> tuple[np.ndarray, np.ndarray]:
        """(confidence (J,), covariance (J, 3, 3) m^2) from base features ``x`` (J, len(BASE_FEATURES)), the ray
        ``axes`` and the refusal verdict (flag, risk) of one frame."""
        x = with_verdict(x, flagged, risk)
        conf = 1.0 / (1.0 + np.exp(-np.clip(x @ np.asarray(self.confidence_coef), -30, 30)))
        along = np.exp(np.clip(x @ np.asarray(self.log_std_along_coef), -8, 2))
        across = np.exp(np.clip(x @ np.asarray(self.log_std_across_coef), -8, 2))
        var = np.stack([along**2, across**2, across**2], axis=1)
        return conf, np.einsum("jab,jb,jcb->jac", axes, var, axes)


def calibration_of(info: dict | None) -> dict | None:
    """The calibration dict stored in a lifter's metadata (``Lifter.info`` or a model file's metadata)."""
    if not info:
        return None
    cal = (info.get("metrics") or {}).get("calibration") or info.get("calibration")
    return cal if isinstance(cal, dict) and "confidence_coef" in cal else None


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Coefficients of P(y=1) = sigmoid(x @ w), Newton's method with a small ridge (bias not penalised; it keeps
    inputs that never vary, e.g. no joint without a keypoint, from diverging)."""
    w = np.zeros(x.shape[1])
    pen = np.full(x.shape[1], float(ridge))
    pen[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + pen * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(pen + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def mahalanobis(err: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(N,) Mahalanobis distances of (N, 3) errors under (N, 3, 3) covariances."""
    return np.sqrt(np.einsum("na,na->n", err, np.linalg.solve(cov, err[..., None])[..., 0]))


def brier(p: np.ndarray, hit: np.ndarray) -> tuple[float, float]:
    """(Brier score of ``p``, Brier score of always saying the base rate) against the 0/1 outcomes ``hit``."""
    hit = np.asarray(hit, float)
    return float(np.mean((p - hit) ** 2)), float(np.mean((hit.mean() - hit) ** 2))


# -- per frame (node and evaluation) ----------------------------------------------------------------------------
@dataclass
class Assessed:
    """One frame through the lifter, the refusal rule and the calibration."""

    joints: np.ndarray          # (17, 3) snapped joints
    raw_joints: np.ndarray      # (17, 3) before snapping
    confidence: np.ndarray      # (17,) calibrated (P(error < radius)); the network's own when uncalibrated
    covariance: np.ndarray | None   # (17, 3, 3) m^2 (None when the model carries no calibration)
    verdict: Verdict
    features: np.ndarray        # (17, len(BASE_FEATURES))
    axes: np.ndarray            # (17, 3, 3)


def assess_outputs(lifter, args: tuple, c: float, lift) -> Assessed:
    """Refusal verdict, calibrated confidence and covariance of a frame the lifter already ran on (``args`` as
    given to ``Lifter.predict``, ``lift`` its ``Lifter.lift``)."""
    from .refusal import rule_of

    raw_joints, joints, network_confidence = lift.raw, lift.joints, lift.confidence
    spread = spread_of(lifter, network_confidence)
    evidence = gather(*args, c, grid_centre=lift.coarse_grid.centre, raw_joints=raw_joints, joints=joints,
                      spread=spread)
    verdict = judge(evidence, rule_of(lifter.info))
    x = joint_features(args[0], args[1], args[2], raw_joints, joints, spread, evidence)
    axes = ray_axes(joints, np.asarray(args[2], float)[:3, 3])
    cal = calibration_of(lifter.info)
    if cal is None:
        conf = np.asarray(network_confidence, float)
        if verdict.flagged:
            conf = np.minimum(conf, 0.05)
        return Assessed(joints, raw_joints, conf, None, verdict, x, axes)
    conf, cov = Calibration.from_dict(cal).apply(x, axes, verdict.flagged, verdict.risk)
    return Assessed(joints, raw_joints, conf, cov, verdict, x, axes)


def assess(lifter, keypoints, K, world_from_camera, kernels, speakers, mics, fs, *,
           speed_of_sound: float = 343.0) -> Assessed:
    """``Lifter.predict`` plus the refusal rule and the calibration (what lifter_node publishes).
    Raises ``LiftingInputError`` for unusable inputs."""
    args = (keypoints, K, world_from_camera, kernels, speakers, mics, fs)
    lift = lifter.lift(*args, speed_of_sound=speed_of_sound)
    return assess_outputs(lifter, args, float(speed_of_sound), lift)


def spread_of(lifter, network_confidence) -> np.ndarray:
    """Heatmap spreads (m) back from the network's confidence exp(-spread / confidence_scale_m)."""
    return -lifter.config.confidence_scale_m * np.log(np.clip(np.asarray(network_confidence, float), 1e-12, 1.0))


# -- fitting -------------------------------------------------------------------------------------------------------
def collect(lifter, family: str, num: int, seed: int, workers: int | None = None) -> dict:
    """Every frame of ``num`` val samples of ``family`` through the lifter: evidence, features, errors."""
    from . import dataset as ds
    from .evaluate import family_path
    from .features import LiftingInputError

    data = ds.generate(family_path(family), "val", seed, num, workers=workers, progress=False)
    out = {"evidence": [], "x": [], "axes": [], "err": [], "conf": [], "distance": [], "frame": []}
    for i in range(num):
        s = ds.sample_at(data, i)
        args = (s["keypoints"].astype(float), s["K"].astype(float), s["world_from_camera"].astype(float),
                s["kernels"], s["speakers"].astype(float), s["mics"].astype(float), float(s["fs"]))
        c = float(s["c"])
        if not np.any(s["kernels"]):
            continue
        try:
            lift = lifter.lift(*args, speed_of_sound=c)
        except LiftingInputError:
            continue
        assessed = assess_outputs(lifter, args, c, lift)     # its evidence, features and axes; not its verdict
        out["evidence"].append(assessed.verdict.evidence)
        out["x"].append(assessed.features)
        out["axes"].append(assessed.axes)
        out["err"].append(lift.joints - s["joints"].astype(float))
        out["conf"].append(lift.confidence)
        out["distance"].append(float(s["distance"]))
        out["frame"].append(i)
    out["num"] = num
    return out


def fit(runs: dict[str, dict], radius_m: float = 0.1, quantile: float = 0.99, good_mm: float = 100.0,
        base: RefusalRule | None = None, max_risk: float = float("inf"),
        wrong_mm: float = 250.0) -> tuple[Calibration, np.ndarray, np.ndarray]:
    """Fit the refusal rule (its envelope on the frames the lifter gets right, MPJPE <= ``good_mm``; its risk
    model on the frames it gets badly wrong, MPJPE > ``wrong_mm``, flagging above ``max_risk``), then the
    calibration on every frame, the verdict (flag, risk) among its inputs. Returns it, the flags and the risks."""
    evidence = [e for r in runs.values() for e in r["evidence"]]
    err = np.concatenate([np.stack(r["err"]) for r in runs.values() if r["err"]])          # (F, 17, 3)
    x = np.concatenate([np.stack(r["x"]) for r in runs.values() if r["x"]])
    axes = np.concatenate([np.stack(r["axes"]) for r in runs.values() if r["axes"]])
    norm = np.linalg.norm(err, axis=-1)
    good = norm.mean(axis=1) <= good_mm / 1000
    wrong = norm.mean(axis=1) > wrong_mm / 1000
    if good.sum() < 10:     # a model that is rarely right: take its better half as the envelope
        good = norm.mean(axis=1) <= np.median(norm.mean(axis=1))
    rule = fit_rule(evidence, good, quantile, base)
    if np.isfinite(max_risk) and 0 < wrong.sum() < len(wrong):
        rule.risk_coef, rule.max_risk = fit_risk(evidence, wrong), float(max_risk)
    verdicts = [judge(e, rule) for e in evidence]
    flagged = np.array([v.flagged for v in verdicts])
    risk = np.array([v.risk for v in verdicts])
    xk = np.concatenate([with_verdict(xi, f, r) for xi, f, r in zip(x, flagged, risk)])
    ek, ak = err.reshape(-1, 3), axes.reshape(-1, 3, 3)
    hit = (np.linalg.norm(ek, axis=1) < radius_m).astype(float)
    conf_coef = fit_logistic(xk, hit)
    local = np.einsum("nab,na->nb", ak, ek)                 # error in (along, across, across) of each joint
    along = np.linalg.lstsq(xk, np.log(np.abs(local[:, 0]) + 1e-3), rcond=None)[0]
    across = np.linalg.lstsq(xk, np.log(np.linalg.norm(local[:, 1:], axis=1) / math.sqrt(2) + 1e-3), rcond=None)[0]
    cal = Calibration(radius_m, conf_coef.tolist(), along.tolist(), across.tolist(), rule.to_dict())
    _, cov = score_inputs(cal, x, axes, flagged, risk)
    scale = float(np.quantile(mahalanobis(ek, cov), 0.683) / R1)   # one factor for both axes: coverage 68.3 %
    along[0] += math.log(scale)
    across[0] += math.log(scale)
    cal.log_std_along_coef, cal.log_std_across_coef = along.tolist(), across.tolist()
    return cal, flagged, risk


def score_inputs(cal: Calibration, x, axes, flagged, risk) -> tuple[np.ndarray, np.ndarray]:
    """(confidence (F*17,), covariance (F*17, 3, 3)) of frames' base features, ray axes, flags and risks."""
    conf, cov = zip(*(cal.apply(xi, ai, bool(f), r) for xi, ai, f, r in zip(x, axes, flagged, risk)))
    return np.concatenate(conf), np.concatenate(cov)


def score(cal: Calibration, x, axes, err, flagged, risk=None) -> dict:
    """Brier (and the base rate's), 1- and 2-sigma coverage (module docstring) over every joint of the frames."""
    conf, cov = score_inputs(cal, x, axes, flagged, np.full(len(x), np.nan) if risk is None else risk)
    e = np.asarray(err).reshape(-1, 3)
    hit = np.linalg.norm(e, axis=1) < cal.radius_m
    b, base = brier(conf, hit)
    d = mahalanobis(e, cov)
    return {"brier": b, "brier_base_rate": base, "hit_rate": float(hit.mean()), "mean_confidence":
            float(conf.mean()), "coverage_1sigma": float(np.mean(d <= R1)), "coverage_2sigma": float(np.mean(d <= R2)),
            "joints": int(len(e))}


def reliability_plot(conf: np.ndarray, hit: np.ndarray, path: str, title: str) -> None:
    """Reliability diagram: observed share of joints within the radius per confidence bin, with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(conf, edges) - 1, 0, 9)
    centres, observed, counts = [], [], []
    for b in range(10):
        sel = idx == b
        if sel.any():
            centres.append(conf[sel].mean())
            observed.append(hit[sel].mean())
            counts.append(int(sel.sum()))
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(5.5, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax.plot(centres, observed, "o-", color="tab:blue", label="lifter")
    ax.set_ylabel("observed share of joints within radius")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    bx.bar(edges[:-1] + 0.05, np.bincount(idx, minlength=10), width=0.09, color="tab:gray")
    bx.set_yscale("log")
    bx.set_xlabel("calibrated confidence")
    bx.set_ylabel("joints")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_calibration(model: str | Path, cal: Calibration, report: dict) -> None:
    """Store the calibration in the model file's metadata (a copied calibration's ``calibration_source`` mark is
    dropped)."""
    store_in_model(model, "calibration", {**cal.as_dict(), "report": report}, drop=("calibration_source",))


def store_in_model(model: str | Path, key: str, entry: dict, drop: tuple[str, ...] = ()) -> None:
    """``entry`` under ``key`` of the model file's metadata (legacy lifter files: ``metrics``; files of
    ``primitives.model_files``: ``metadata``), the keys in ``drop`` removed, written atomically."""
    import torch

    payload = torch.load(model, map_location="cpu", weights_only=True)
    if "metadata" in payload and isinstance(payload["metadata"], dict):
        meta = payload["metadata"]
    else:
        meta = payload.setdefault("metrics", {})
    meta[key] = entry
    for name in drop:
        meta.pop(name, None)
    tmp = Path(str(model) + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, model)


def family_report(run: dict, flagged: np.ndarray, max_range_m: float = 4.2) -> dict:
    norm = np.linalg.norm(np.stack(run["err"]), axis=-1) if run["err"] else np.zeros((0, 17))
    keep = ~flagged
    dist = np.asarray(run["distance"])
    beyond = dist > max_range_m
    refused = run["num"] - len(run["err"])
    return {"frames": run["num"], "not_lifted": int(refused),
            "flagged_fraction": float((flagged.sum() + refused) / max(run["num"], 1)),
            "mpjpe_mm": float(1000 * norm.mean()) if len(norm) else float("nan"),
            "mpjpe_unflagged_mm": float(1000 * norm[keep].mean()) if keep.any() else float("nan"),
            "beyond_range_frames": int(beyond.sum()),
            "beyond_range_flagged": float(flagged[beyond].mean()) if beyond.any() else float("nan"),
            "beyond_range_unflagged_mm": float(1000 * norm[beyond & keep].mean()) if (beyond & keep).any()
            else float("nan")}


QUANTILES = (0.999, 0.995, 0.99, 0.98, 0.95)
# (envelope quantile, risk threshold) candidates, fewest flags first
CANDIDATES = ((0.999, float("inf")), (0.995, float("inf")), (0.995, 0.9), (0.995, 0.8), (0.995, 0.7),
              (0.995, 0.6), (0.995, 0.5), (0.99, 0.5), (0.99, 0.4), (0.98, 0.4), (0.98, 0.3), (0.95, 0.3))


def _reports(runs: dict, flagged: np.ndarray) -> dict:
    out, start = {}, 0
    for name, run in runs.items():
        n = len(run["err"])
        out[name] = family_report(run, flagged[start:start + n])
        start += n
    return out


def meets_range_target(families: dict) -> bool:
    """The issue's range target on these (val) figures: wherever people stand beyond the window, >= 90 % of those
    frames are flagged or those of them left unflagged are within 100 mm (MPJPE): nobody out of range is published
    as a confident, wrong pose."""
    rows = [r for r in families.values() if r["beyond_range_frames"]]
    return all(r["beyond_range_flagged"] >= 0.9 or r["beyond_range_unflagged_mm"] <= 100 for r in rows)


def choose_quantile(runs: dict, radius_m: float, quantile="auto", max_risk="auto"):
    """(quantile, calibration, flags, per-family report): given settings, or with "auto" the first of
    ``CANDIDATES`` (fewest frames flagged first) that meets ``meets_range_target`` on val (else the last). Prints
    the trade-off table either way."""
    chosen = None
    if quantile == "auto":
        candidates = CANDIDATES if max_risk == "auto" else [(q, float(max_risk)) for q in QUANTILES]
    else:
        candidates = ([(float(quantile), t) for t in (float("inf"), 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)]
                      if max_risk == "auto" else [(float(quantile), float(max_risk))])
    for q, t in candidates:
        cal, flagged, risk = fit(runs, radius_m, q, max_risk=t)
        families = _reports(runs, flagged)
        print(f"  quantile {q}, max risk {t}: " + "; ".join(
            f"{n} flagged {r['flagged_fraction']:.2f}, unflagged {r['mpjpe_unflagged_mm']:.0f} mm"
            + (f", beyond range flagged {r['beyond_range_flagged']:.2f} (unflagged "
               f"{r['beyond_range_unflagged_mm']:.0f} mm)" if r["beyond_range_frames"] else "")
            for n, r in families.items()))
        if chosen is None and (quantile != "auto" or meets_range_target(families)):
            chosen = (q, cal, flagged, risk, families)
    return chosen or (q, cal, flagged, risk, families)


def main(argv=None) -> int:
    from .lifter import Lifter, add_inference_arguments, inference_from_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/lifter.pt")
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES),
                        help="evaluation families whose val samples are used (default: default far close)")
    parser.add_argument("--num", type=int, default=200, help="val samples per family (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius-m", type=float, default=0.1, help="a joint counts as right within this (m)")
    parser.add_argument("--quantile", default="auto",
                        help="share of the right frames each refusal check keeps, or 'auto' (default): the largest of "
                             f"{QUANTILES} meeting the issue's range target on val (beyond-range frames >= 90 %% "
                             "flagged, or those left unflagged within 100 mm MPJPE)")
    parser.add_argument("--max-risk", default="auto",
                        help="flag when the risk model's P(wrong) exceeds this ('inf': no risk check), or 'auto' "
                             "(default: chosen with --quantile, see CANDIDATES)")
    parser.add_argument("--workers", type=int, default=1, help="simulation processes for missing val samples")
    parser.add_argument("--plot", default="models/lifter_reliability.png", help="reliability diagram PNG")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the model file")
    add_inference_arguments(parser)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    lifter = Lifter.load(args.model, threads=1)
    lifter.inference = inference_from_arguments(lifter, args)
    print(f"inference: {lifter.inference}")
    runs = {f: collect(lifter, f, args.num, args.seed, args.workers) for f in args.families}
    quantile, cal, flagged, risk, families = choose_quantile(runs, args.radius_m, args.quantile, args.max_risk)
    report = {"families": families}
    x = np.concatenate([np.stack(r["x"]) for r in runs.values()])
    axes = np.concatenate([np.stack(r["axes"]) for r in runs.values()])
    err = np.concatenate([np.stack(r["err"]) for r in runs.values()])
    report["val"] = score(cal, x, axes, err, flagged, risk)
    keep = ~flagged
    report["val_unflagged"] = score(cal, x[keep], axes[keep], err[keep], flagged[keep], risk[keep])
    report.update(num=args.num, seed=args.seed, quantile=quantile, split="val")
    print(f"refusal rule (val, quantile {quantile}): {cal.refusal}")
    for name, r in report["families"].items():
        print(f"  {name:10s} flagged {r['flagged_fraction']:.2f}  MPJPE {r['mpjpe_mm']:.1f} -> unflagged "
              f"{r['mpjpe_unflagged_mm']:.1f} mm; beyond range {r['beyond_range_frames']} frames, flagged "
              f"{r['beyond_range_flagged']:.2f}")
    for key in ("val", "val_unflagged"):
        v = report[key]
        print(f"  {key}: Brier {v['brier']:.4f} (base rate {v['brier_base_rate']:.4f}); mean confidence "
              f"{v['mean_confidence']:.3f} vs hit rate {v['hit_rate']:.3f}; coverage 1-sigma "
              f"{v['coverage_1sigma']:.3f}, 2-sigma {v['coverage_2sigma']:.3f} ({v['joints']} joints)")
    conf = score_inputs(cal, x, axes, flagged, risk)[0]
    hit = np.linalg.norm(err.reshape(-1, 3), axis=1) < args.radius_m
    if args.plot:
        reliability_plot(conf, hit.astype(float), args.plot,
                         f"lifter confidence on val ({', '.join(args.families)}; {args.num} samples each)\n"
                         f"Brier {report['val']['brier']:.3f} vs base rate {report['val']['brier_base_rate']:.3f}")
        print(f"reliability diagram written to {args.plot}")
    if not args.dry_run:
        store_in_model(args.model, "inference", lifter.inference.as_dict())
        write_calibration(args.model, cal, report)
        print(f"calibration and inference written into {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
