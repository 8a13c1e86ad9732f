"""SLfM evaluation: the learned models beside the classical baselines, on held-out data, in one run.

* Rotation: pairs of views of the held-out real photographs (never used in training), relative yaw uniform in
  +-``max_yaw_deg``, evaluated at one or more image sizes; the SLfM rotation model vs SIFT + RANSAC homography.
* Azimuth: held-out rooms and voices at each reverberation level, sources within +-90 deg of the front; the SLfM
  audio model (read through the spherical-head curve, and through the shipped head calibration learned from the
  training head's turns) vs GCC-PHAT with the same spherical-head ITD model.
* Measured head (when Debian's libmysofa1 is installed): the same clips heard by the MIT KEMAR head
  (``slfm.head_eval``).
Errors in degrees: mean absolute error (MAE) and median; "chance" is the error of always answering 0.
"""

from __future__ import annotations

import time

import numpy as np

from .baselines import feature_yaw, gcc_phat_azimuth
from .data import eval_audio_set
from .estimators import AzimuthEstimator, RotationEstimator, model_path
from .images import load_real_photos, sample_pair
from .rooms import RT60_LEVELS, fold_front


def _stats(err_rad) -> dict:
    e = np.rad2deg(np.abs(np.asarray(err_rad, dtype=float)))
    if e.size == 0:
        return {"mae_deg": None, "median_deg": None, "p90_deg": None, "n": 0}
    return {"mae_deg": float(e.mean()), "median_deg": float(np.median(e)), "p90_deg": float(np.percentile(e, 90)),
            "n": int(e.size)}


def rotation_pairs(num: int, seed: int, width: int, height: int, max_yaw_deg: float = 30.0):
    """Held-out real-photo pairs at one image size; the same seed gives the same geometry at every size."""
    photos = load_real_photos("eval")
    rng = np.random.default_rng([seed, 31337])
    yaws = np.deg2rad(rng.uniform(-max_yaw_deg, max_yaw_deg, size=num))
    pairs = []
    for i, y in enumerate(yaws):
        prng = np.random.default_rng([seed, i, 7])
        src = photos[int(prng.integers(0, len(photos)))]
        pairs.append(sample_pair(src, float(y), prng, width, height))
    return pairs, yaws


def evaluate_rotation(estimator: RotationEstimator, num: int, seed: int, sizes=((128, 96), (320, 240)),
                      feature_method: str = "sift", wide=None) -> dict:
    """``wide``: a `rotation_wide.WideRotationEstimator` measured on the same pairs (None: skipped)."""
    out = {}
    for w, h in sizes:
        pairs, yaws = rotation_pairs(num, seed, w, h)
        t = time.perf_counter()
        pred = estimator.estimate_batch([p[0] for p in pairs], [p[1] for p in pairs])
        t_model = (time.perf_counter() - t) / max(num, 1)
        extra = {}
        if wide is not None:
            t = time.perf_counter()
            pw = wide.estimate_batch([p[0] for p in pairs], [p[1] for p in pairs], 60.0)
            extra = {"wide": _stats(pw - yaws), "wide_seconds_per_pair": (time.perf_counter() - t) / max(num, 1)}
        base, ok = [], []
        t = time.perf_counter()
        for a, b in pairs:
            y, good = feature_yaw(a, b, method=feature_method)
            base.append(y)
            ok.append(good)
        t_base = (time.perf_counter() - t) / max(num, 1)
        base = np.asarray(base)
        ok = np.asarray(ok)
        out[f"{w}x{h}"] = {
            "model": _stats(pred - yaws),
            feature_method: {**_stats(base - yaws), "failure_rate": float(1.0 - ok.mean()),
                             "on_success": _stats((base - yaws)[ok])},
            "chance": _stats(yaws),
            "seconds_per_pair": {"model_batched": t_model, feature_method: t_base},
            **extra,
        }
    return out


def evaluate_azimuth(estimator: AzimuthEstimator, num: int, seed: int, levels=None, cache_dir=None,
                     calibrations: dict | None = None, head=None) -> dict:
    """Front-folded azimuth errors per reverberation level and pooled: ``model`` (as ``estimator`` reads),
    ``model_<name>`` through each of ``calibrations`` (name -> HeadCalibration), ``gcc_phat``, ``chance``; the same
    clips for every method, heard by ``head`` (``slfm.heads``; default the spherical training head)."""
    out, pooled = {}, {}
    for level in list(levels or RT60_LEVELS):
        clips, az, rt60, kinds = eval_audio_set(num, seed, level, cache_dir=cache_dir, head=head)
        true, clips, kinds = fold_front(az), list(clips), np.asarray(kinds)
        errors = {"model": estimator.estimate_batch(clips, 16000) - true,
                  "gcc_phat": np.array([gcc_phat_azimuth(c) for c in clips]) - true}
        if calibrations:
            delays = estimator.delay_batch(clips, 16000)
            errors.update({f"model_{name}": cal.lateral(delays) - true for name, cal in calibrations.items()})
        errors["chance"] = true
        entry = {"rt60_range_s": list(RT60_LEVELS[level]), "mean_rt60_s": float(rt60.mean()),
                 **{k: _stats(v) for k, v in errors.items()}, "by_source": {}}
        for k in ("speech", "music", "noise"):
            m = kinds == k
            if m.any():
                entry["by_source"][k] = {name: _stats(errors[name][m]) for name in ("model", "gcc_phat")}
        out[level] = entry
        for k, v in errors.items():
            pooled.setdefault(k, []).append(v)
    out["all"] = {k: _stats(np.concatenate(v)) for k, v in pooled.items()}
    return out


def evaluate_slfm(num: int = 100, seed: int = 0, rotation_model: str | None = None, azimuth_model: str | None = None,
                  sizes=((128, 96), (320, 240)), levels=None, cache_dir: str | None = "data_cache/slfm",
                  feature_method: str = "sift", wide_model: str | None = None, head_calibration: str | None = None,
                  measured_head_recordings: int = 300, progress: bool = False) -> dict:
    """Every table of ``eval-slfm``; ``measured_head_recordings`` = 0 skips the measured head."""
    import os

    from .head_calibration import HeadCalibration
    from .head_eval import evaluate_measured_head
    from .heads import KEMAR_SOFA, MeasuredHead
    from .rotation_wide import WideRotationEstimator

    rot = RotationEstimator.load(rotation_model or model_path("slfm_rotation.pt"), device="cpu")
    azm = AzimuthEstimator.load(azimuth_model or model_path("slfm_azimuth.pt"), device="cpu", calibration=None)
    wide_path = wide_model or model_path("slfm_rotation_wide.pt")
    wide = WideRotationEstimator.load(wide_path) if (wide_model or os.path.exists(wide_path)) else None
    cal_path = head_calibration or model_path("slfm_head_calibration.json")
    shipped = HeadCalibration.load(cal_path) if os.path.exists(cal_path) else None
    t0 = time.time()
    result = {
        "num": num, "seed": seed,
        "rotation": evaluate_rotation(rot, num, seed, sizes, feature_method, wide),
        "azimuth": evaluate_azimuth(azm, num, seed, levels, cache_dir, {"calibrated": shipped} if shipped else None),
    }
    if measured_head_recordings > 0 and KEMAR_SOFA.exists():
        result["measured_head"] = evaluate_measured_head(
            azm, MeasuredHead.from_sofa(KEMAR_SOFA), num, seed, shipped=shipped,
            recordings=measured_head_recordings, levels=levels, cache_dir=cache_dir, progress=progress)
    result["seconds"] = time.time() - t0
    return result


def format_report(res: dict) -> str:
    lines = [f"SLfM evaluation (num={res['num']}, seed={res['seed']})", "",
             "Rotation on held-out real photos (deg):",
             f"  {'size':<9} {'model MAE':>9} {'model med':>9} {'wide MAE':>9} {'wide med':>9} {'feat MAE':>9} "
             f"{'feat med':>9} {'feat fail':>9} {'chance':>7}"]
    for size, r in res["rotation"].items():
        feat = [k for k in r if k not in ("model", "chance", "seconds_per_pair", "wide", "wide_seconds_per_pair")][0]
        wide = (f"{r['wide']['mae_deg']:9.3f} {r['wide']['median_deg']:9.3f}" if "wide" in r else f"{'-':>9} {'-':>9}")
        lines.append(f"  {size:<9} {r['model']['mae_deg']:9.2f} {r['model']['median_deg']:9.2f} {wide} "
                     f"{r[feat]['mae_deg']:9.3f} {r[feat]['median_deg']:9.3f} {100 * r[feat]['failure_rate']:8.1f}% "
                     f"{r['chance']['mae_deg']:7.2f}")
    lines += ["", "Azimuth, sources within +-90 deg of the front (deg; 'calibrated' = through the shipped head "
              "calibration):",
              f"  {'level':<8} {'RT60 s':>11} {'model MAE':>9} {'model med':>9} {'calib MAE':>9} {'calib med':>9} "
              f"{'GCC MAE':>8} {'GCC med':>8} {'chance':>7}"]
    for level, r in res["azimuth"].items():
        rt = "" if level == "all" else f"{r['rt60_range_s'][0]:.2f}-{r['rt60_range_s'][1]:.2f}"
        cal = r.get("model_calibrated")
        cal = f"{cal['mae_deg']:9.2f} {cal['median_deg']:9.2f}" if cal else f"{'-':>9} {'-':>9}"
        lines.append(f"  {level:<8} {rt:>11} {r['model']['mae_deg']:9.2f} {r['model']['median_deg']:9.2f} {cal} "
                     f"{r['gcc_phat']['mae_deg']:8.2f} {r['gcc_phat']['median_deg']:8.2f} "
                     f"{r['chance']['mae_deg']:7.2f}")
    if "measured_head" in res:
        from .head_eval import format_measured_head

        lines += ["", format_measured_head(res["measured_head"])]
    return "\n".join(lines)
