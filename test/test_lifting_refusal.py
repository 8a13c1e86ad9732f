"""The refusal rule: the kernel window's reach, each check on evidence built from geometry, fitted thresholds."""

import math
from pathlib import Path

import numpy as np
from lifting_helpers import flag_moves

from av_pose_ros.lifting.features import BODY_HALF_DEPTH_M
from av_pose_ros.lifting.refusal import Evidence, RefusalRule, fit_rule, gather, judge, measurable_range_m
from av_pose_ros.primitives.geometry import apply_transform, invert_transform
from av_pose_ros.sim.body import body_joints, facing_yaw, place_in_world
from av_pose_ros.sim.rig import load_rig

FS, C = 48000, 343.0


def _evidence(**kw) -> Evidence:
    base = dict(keypoints=15, range_m=2.5, measurable_m=4.2, stature_m=1.7, tof_gap_m=0.1, ray_gap_m=0.05,
                spread_m=0.5)
    return Evidence(**{**base, **kw})


def test_measurable_range_is_half_the_window_for_a_colocated_pair():
    here = np.zeros((1, 3))
    r = measurable_range_m(np.zeros(3), np.array([1.0, 0, 0]), here, here, 1200, FS, C)
    assert abs(r - 1200 / FS * C / 2) < 0.011
    # a pair 1 m apart loses reach: the bistatic path to a point straight ahead is longer
    apart = measurable_range_m(np.zeros(3), np.array([1.0, 0, 0]), np.array([[0, 0.5, 0]]),
                               np.array([[0, -0.5, 0]]), 1200, FS, C)
    assert abs(apart - math.sqrt((1200 / FS * C / 2) ** 2 - 0.25)) < 0.011


def test_each_check_flags_only_its_own_failure():
    rule = RefusalRule(max_tof_gap_m=0.3, max_ray_gap_m=0.1, max_spread_m=0.7)
    assert not judge(_evidence(), rule).flagged
    cases = {"keypoints": dict(keypoints=2), "range": dict(range_m=4.1), "scale": dict(stature_m=0.3),
             "tof": dict(tof_gap_m=0.5), "rays": dict(ray_gap_m=0.2), "spread": dict(spread_m=0.9)}
    for reason, kw in cases.items():
        verdict = judge(_evidence(**kw), rule)
        assert verdict.flagged and verdict.reasons == (reason,), (reason, verdict.reasons)
        assert verdict.message()
    # a check that cannot be made (no vision range) fails nothing; inf thresholds disable a check
    assert not judge(_evidence(stature_m=float("nan")), rule).flagged
    assert not judge(_evidence(tof_gap_m=5.0), RefusalRule()).flagged


def test_rule_round_trips_through_plain_data():
    rule = RefusalRule(min_keypoints=5, max_tof_gap_m=0.25)
    back = RefusalRule.from_dict(rule.to_dict())
    assert back == rule and math.isinf(back.max_spread_m)
    assert RefusalRule.from_dict(None) == RefusalRule()


def test_fitted_thresholds_keep_the_good_frames_and_flag_the_outliers():
    rng = np.random.default_rng(0)
    good = [_evidence(tof_gap_m=abs(rng.normal(0, 0.1)), ray_gap_m=abs(rng.normal(0, 0.03)),
                      stature_m=rng.uniform(1.0, 2.0), spread_m=rng.uniform(0.4, 0.6)) for _ in range(400)]
    bad = [_evidence(tof_gap_m=1.0), _evidence(ray_gap_m=0.4), _evidence(stature_m=0.3)]
    rule = fit_rule(good + bad, np.r_[np.ones(400, bool), np.zeros(3, bool)], quantile=0.99)
    kept = np.mean([not judge(e, rule).flagged for e in good])
    assert 0.93 <= kept < 1.0, kept
    assert all(judge(e, rule).flagged for e in bad)
    assert 0.95 < rule.min_stature_m < 1.1 and 1.9 < rule.max_stature_m < 2.05


def test_evidence_of_a_person_seen_and_heard_in_the_same_place():
    """A 1.7 m person at 2.5 m whose coarse echo is at their torso implies a 1.7 m person; the same keypoints with
    the echo at 0.6 m (noise near the rig, what a person beyond the window leaves) imply an impossible one."""
    rig = load_rig("default")
    speakers, mics = rig.pair_positions("base_link")
    cam_xy = rig.base_from_camera_link[:2, 3]
    position = (2.5, 0.2)
    joints = place_in_world(body_joints(1.7, "standing"), position, facing_yaw(position, cam_xy))
    camera = rig.intrinsics.camera_model()
    uv = camera.project_ideal(apply_transform(invert_transform(rig.base_from_optical), joints))
    keypoints = np.column_stack([uv, np.ones(17)])
    origin = rig.base_from_optical[:3, 3]
    kernels = np.random.default_rng(1).uniform(0, 1, (len(speakers), 1200)).astype(np.float32)
    torso = 0.5 * (joints[5] + joints[12])
    central = (torso - origin) / np.linalg.norm(torso - origin)
    args = (keypoints, camera.K, rig.base_from_optical, kernels, speakers, mics, FS, C)
    spread = np.full(17, 0.5)
    for echo_m, expect in ((np.linalg.norm(torso - origin) - 0.1, False), (0.6, True)):
        ev = gather(*args, grid_centre=origin + (echo_m + BODY_HALF_DEPTH_M) * central, raw_joints=joints,
                    joints=joints, spread=spread)
        assert ev.keypoints == 17 and ev.ray_gap_m < 1e-6 and abs(ev.spread_m - 0.5) < 1e-9
        assert 4.0 < ev.measurable_m < 4.3
        verdict = judge(ev, RefusalRule())
        assert verdict.flagged == expect, (echo_m, ev)
        if expect:
            assert verdict.reasons == ("scale",) and ev.stature_m < 0.6
        else:
            assert abs(ev.stature_m - 1.7) < 0.25


def test_lifter_handler_publishes_a_flagged_frame_marked(tmp_path):
    """Through `LifterHandler.lift` (what lifter_node and reprocess run): a model whose stored rule cannot be met
    publishes the pose as "cnn_flagged" with the flagged confidence and covariance; a passable rule gives "cnn" and
    the calibrated figures."""
    import shutil
    from types import SimpleNamespace

    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting.calibration import write_calibration
    from av_pose_ros.lifting.dataset import simulate_sample
    from av_pose_ros.pipeline.lifter import PARAMS, LifterHandler
    from av_pose_ros.primitives.skeleton import COCO17_JOINTS
    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import load_scenario

    s = simulate_sample(load_scenario("default"), Simulator(), "test", 777, 0)
    frames = {"cam": s["world_from_camera"].astype(float)}
    for k, (spk, mic) in enumerate(zip(s["speakers"], s["mics"])):
        frames[f"spk{k}"], frames[f"mic{k}"] = np.eye(4), np.eye(4)
        frames[f"spk{k}"][:3, 3], frames[f"mic{k}"][:3, 3] = spk, mic
    kp = SimpleNamespace(stamp_ns=10**9, undistorted=True, keypoints=s["keypoints"][None].astype(float),
                         frame_id="cam", body_ids=["p0"], joint_names=list(COCO17_JOINTS))
    kernels = SimpleNamespace(stamp_ns=10**9, kernels=s["kernels"], sample_rate=int(s["fs"]),
                              speaker_frames=[f"spk{k}" for k in range(len(s["speakers"]))],
                              mic_frames=[f"mic{k}" for k in range(len(s["mics"]))], speed_of_sound=float(s["c"]))
    p = SimpleNamespace(**{q.name: q.default for q in PARAMS})
    for min_keypoints, source in ((99, "cnn_flagged"), (1, "cnn")):
        model = tmp_path / f"lifter{min_keypoints}.pt"
        shutil.copy(Path(__file__).resolve().parent.parent / "models" / "lifter.pt", model)
        rule = RefusalRule(min_keypoints=min_keypoints, range_margin_m=-99.0, min_stature_m=0.0,
                           max_stature_m=99.0)
        cal = flag_moves(0.88, 0.03, (0.05, 0.7), (0.01, 0.2))
        cal.refusal = rule.to_dict()
        write_calibration(model, cal, {})
        handler = LifterHandler(p, lambda target, src, stamp, wait: frames[src], Lifter.load(model))
        handler.on_camera_info(s["K"].reshape(-1).tolist(), now_ns=10**9)
        pose = handler.lift(kp, kernels, now_ns=10**9)
        assert pose.source == source and pose.flagged == (source == "cnn_flagged")
        std = np.sqrt(np.linalg.eigvalsh(pose.covariance[0]))
        if pose.flagged:
            assert pose.flag_reasons == ("keypoints",) and "usable keypoints" in pose.flag_message
            assert np.allclose(pose.confidence, 0.03) and np.allclose(std, [0.2, 0.2, 0.7])
        else:
            assert np.allclose(pose.confidence, 0.88) and np.allclose(std, [0.01, 0.01, 0.05])


def test_eval_lifter_applies_the_stored_rule_and_reports_calibration(tmp_path):
    """eval-lifter's CNN row uses the model's stored rule (here one no frame passes) and reports the calibration,
    the checks that fired and the beyond-range share."""
    import json
    import shutil

    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting.calibration import write_calibration
    from av_pose_ros.lifting.evaluate import evaluate

    model = tmp_path / "lifter.pt"
    shutil.copy(Path(__file__).resolve().parent.parent / "models" / "lifter.pt", model)
    cal = flag_moves(0.88, 0.03, (0.05, 0.7), (0.01, 0.2))
    cal.refusal = RefusalRule(min_keypoints=99).to_dict()
    write_calibration(model, cal, {})
    s = evaluate("default", 2, 0, workers=1, progress=False, lifter=Lifter.load(model), vision_model=None)["summary"]
    cnn = s["methods"]["cnn"]
    assert cnn["flagged_fraction"] == 1.0 and math.isnan(cnn["mpjpe_unflagged_mm"])
    assert cnn["failures"] == 2 and set(cnn["beyond_range"]) == {"frames", "flagged_fraction"}
    if "calibration" in cnn:         # some frame was lifted (then refused by the rule)
        assert cnn["refusal_reasons"]["keypoints"] >= 1
        cal = cnn["calibration"]
        assert 0 <= cal["brier"] <= 1 and 0 <= cal["coverage_1sigma"] <= cal["coverage_2sigma"] <= 1
        assert abs(cal["mean_confidence"] - 0.03) < 1e-6          # every frame flagged: the flagged confidence
    json.dumps(s)


def test_risk_model_flags_what_no_single_check_sees():
    """A ghost echo: every single check passes, but the echo is weak and a 1.7 m person would stand beyond the
    window; a risk model fitted on such frames flags it and keeps the frames like the good ones."""
    from av_pose_ros.lifting.refusal import fit_risk, risk_features

    rng = np.random.default_rng(3)
    good = [_evidence(echo=rng.uniform(0.5, 1.0), vision_range_m=rng.uniform(1.5, 3.5)) for _ in range(300)]
    ghost = [_evidence(range_m=3.9, echo=rng.uniform(0.05, 0.3), vision_range_m=rng.uniform(4.4, 5.5))
             for _ in range(100)]
    rule = RefusalRule()
    assert not any(judge(e, rule).flagged for e in ghost)
    rule.risk_coef = fit_risk(good + ghost, np.r_[np.zeros(300), np.ones(100)])
    rule.max_risk = 0.5
    assert len(rule.risk_coef) == len(risk_features(good[0]))
    assert np.mean([judge(e, rule).reasons == ("risk",) for e in ghost]) > 0.95
    assert np.mean([judge(e, rule).flagged for e in good]) < 0.05
    assert "p = " in judge(ghost[0], rule).message()
    assert RefusalRule.from_dict(rule.to_dict()) == rule
