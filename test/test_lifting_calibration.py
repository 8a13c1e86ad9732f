"""Calibration: the logistic confidence tracks the chance of a joint being right, the ray-aligned covariance covers
the errors as a 3-D Gaussian would, and the fit travels in the model file to where the node reads it."""

import math

import numpy as np
from lifting_helpers import flag_moves

from av_pose_ros.lifting.calibration import (
    BASE_FEATURES,
    FEATURES,
    R1,
    R2,
    Calibration,
    calibration_of,
    fit,
    fit_logistic,
    mahalanobis,
    ray_axes,
    score,
    write_calibration,
)
from av_pose_ros.lifting.refusal import Evidence, RefusalRule, rule_of


def test_r1_and_r2_hold_68_and_95_percent_of_a_3d_gaussian():
    z = np.random.default_rng(0).normal(size=(200000, 3))
    d = np.linalg.norm(z, axis=1)
    assert abs(np.mean(d <= R1) - 0.683) < 0.005 and abs(np.mean(d <= R2) - 0.954) < 0.005


def test_logistic_fit_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(20000), rng.normal(size=20000)])
    y = (rng.uniform(size=20000) < 1 / (1 + np.exp(-(0.5 - 2.0 * x[:, 1])))).astype(float)
    w = fit_logistic(x, y)
    assert abs(w[0] - 0.5) < 0.1 and abs(w[1] + 2.0) < 0.15


def _synthetic_runs(rng, frames=300):
    """Joints whose depth error grows with the heatmap spread (std 0.2 x spread along the ray, 2 cm across)."""
    ev = Evidence(keypoints=15, range_m=2.5, measurable_m=4.2, stature_m=1.7, tof_gap_m=0.1, ray_gap_m=0.05,
                  spread_m=0.5)
    run = {"evidence": [], "x": [], "axes": [], "err": [], "distance": [], "num": frames}
    for _ in range(frames):
        spread = rng.uniform(0.2, 1.0, 17)
        x = np.zeros((17, len(BASE_FEATURES)))
        x[:, 0], x[:, 1] = 1.0, np.log(spread)
        joints = rng.normal([2.5, 0, 1], 0.3, (17, 3))
        axes = ray_axes(joints, np.zeros(3))
        local = np.column_stack([rng.normal(0, 0.2 * spread), rng.normal(0, 0.02, (17, 2))])
        run["evidence"].append(ev)
        run["x"].append(x)
        run["axes"].append(axes)
        run["err"].append(np.einsum("jab,jb->ja", axes, local))
        run["distance"].append(2.5)
    return {"synthetic": run}


def test_fitted_confidence_and_covariance_mean_what_they_say_on_fresh_frames():
    rng = np.random.default_rng(2)
    cal, flagged, _ = fit(_synthetic_runs(rng), base=RefusalRule())
    assert not flagged.any()
    fresh = _synthetic_runs(rng)["synthetic"]
    s = score(cal, np.stack(fresh["x"]), np.stack(fresh["axes"]), np.stack(fresh["err"]), np.zeros(300, bool))
    print(s)
    assert s["brier"] < 0.9 * s["brier_base_rate"]      # the best possible here (the true P(hit)) gives 0.85
    assert abs(s["mean_confidence"] - s["hit_rate"]) < 0.04
    assert 0.64 < s["coverage_1sigma"] < 0.73 and 0.92 < s["coverage_2sigma"] < 0.98
    # the covariance is long along the ray and grows with the spread, as the errors do
    x = np.zeros((2, len(BASE_FEATURES)))
    x[:, 0], x[:, 1] = 1.0, np.log([0.3, 0.9])
    axes = ray_axes(np.array([[2.0, 0, 1], [2.0, 0, 1]]), np.zeros(3))
    _, cov = cal.apply(x, axes, False)
    ray = axes[0][:, 0]
    along = np.sqrt([ray @ c @ ray for c in cov])
    assert 2.0 < along[1] / along[0] < 4.5
    assert np.all(np.linalg.eigvalsh(cov[0]) > 0)


def test_the_flag_is_an_input_of_both_models():
    cal = flag_moves(0.9, 0.04, (0.05, 0.9), (0.01, 0.2))
    axes = ray_axes(np.array([[3.0, 0, 1.0]] * 17), np.zeros(3))
    x = np.zeros((17, len(BASE_FEATURES)))
    x[:, 0] = 1.0
    for flagged, conf_expected, along, across in ((True, 0.04, 0.9, 0.2), (False, 0.9, 0.05, 0.01)):
        conf, cov = cal.apply(x, axes, flagged)
        assert np.allclose(conf, conf_expected)
        ray = axes[0][:, 0]
        assert abs(math.sqrt(ray @ cov[0] @ ray) - along) < 1e-9
        assert abs(np.linalg.eigvalsh(cov[0])[0] - across**2) < 1e-9
        assert abs(mahalanobis(along * ray[None], cov[:1])[0] - 1.0) < 1e-9


def test_calibration_travels_in_the_model_file(tmp_path):
    from av_pose_ros.lifting.lifter import Lifter
    from av_pose_ros.lifting.model import LifterNet, NetConfig
    from av_pose_ros.lifting.train import save_model

    path = tmp_path / "lifter.pt"
    save_model(path, LifterNet(NetConfig(width=4, grid_n=8)), {"val_mpjpe_mm": 1.0, "calibration_source": "chirp"}, {})
    assert calibration_of(Lifter.load(path).info) is None and rule_of(Lifter.load(path).info) == RefusalRule()
    rule = RefusalRule(max_tof_gap_m=0.3, max_ray_gap_m=0.08)
    cal = Calibration(0.1, [0.1] * len(FEATURES), [0.2] * len(FEATURES), [0.3] * len(FEATURES), rule.to_dict())
    write_calibration(path, cal, {"note": "test"})
    info = Lifter.load(path).info
    assert Calibration.from_dict(calibration_of(info)) == cal
    assert rule_of(info) == rule
    assert info["metrics"]["val_mpjpe_mm"] == 1.0
    assert "calibration_source" not in info["metrics"]     # a copied calibration's mark goes with it


def test_range_target_reads_only_families_with_people_beyond_the_window():
    from av_pose_ros.lifting.calibration import meets_range_target

    near = {"beyond_range_frames": 0, "beyond_range_flagged": float("nan"), "mpjpe_unflagged_mm": 500.0,
            "beyond_range_unflagged_mm": float("nan")}
    assert meets_range_target({"default": near})
    far = {"beyond_range_frames": 40, "beyond_range_flagged": 0.85, "mpjpe_unflagged_mm": 90.0,
           "beyond_range_unflagged_mm": 150.0}
    assert not meets_range_target({"default": near, "far": far})    # a good family does not excuse its far frames
    assert meets_range_target({"far": {**far, "beyond_range_flagged": 0.92}})
    assert meets_range_target({"far": {**far, "beyond_range_unflagged_mm": 90.0}})
