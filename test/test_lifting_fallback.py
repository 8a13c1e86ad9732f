"""The vision-only fallback: a frame without a usable pose kernel is still posed, flagged, with a ray-aligned
covariance from the vision network's own errors; the lifter stage publishes it where a kernel never came."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from av_pose_ros.lifting.fallback import NO_AUDIO, FallbackCalibration, VisionFallback, fit
from av_pose_ros.lifting.features import LiftingInputError

REPO = Path(__file__).resolve().parent.parent
VISION = REPO / "models" / "lifter_vision.pt"


def test_covariance_is_long_along_the_camera_ray_and_narrow_across():
    cal = FallbackCalibration(within=np.full(17, 0.2), along_std_m=np.full(17, 0.4), across_std_m=np.full(17, 0.05))
    origin = np.array([0.0, 0.0, 1.0])
    joints = origin + np.array([3.0, 1.0, 0.5]) * np.linspace(0.8, 1.2, 17)[:, None]
    cov = cal.covariance(joints, origin)
    ray = (joints - origin) / np.linalg.norm(joints - origin, axis=1, keepdims=True)
    along = np.einsum("ja,jab,jb->j", ray, cov, ray)
    assert np.allclose(along, 0.4**2)
    side = np.cross(ray, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    assert np.allclose(np.einsum("ja,jab,jb->j", side, cov, side), 0.05**2)
    assert np.allclose(cov, np.transpose(cov, (0, 2, 1)))
    back = FallbackCalibration.from_dict(cal.as_dict())
    assert np.allclose(back.covariance(joints, origin), cov)


def test_fallback_refuses_an_audio_model_and_poses_from_keypoints_alone():
    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting.dataset import simulate_sample
    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import load_scenario

    with pytest.raises(ValueError, match="vision-only"):
        VisionFallback(Lifter.load(REPO / "models" / "lifter.pt"), FallbackCalibration.cautious())
    fallback = VisionFallback.load(VISION)
    s = simulate_sample(load_scenario("default"), Simulator(), "test", 5, 0, audio=False)
    args = s["keypoints"].astype(float), s["K"].astype(float), s["world_from_camera"].astype(float)
    joints, confidence, covariance = fallback.pose(*args)
    assert joints.shape == (17, 3) and np.all(np.isfinite(joints))
    assert confidence.shape == (17,) and np.all((0 <= confidence) & (confidence <= 1))
    assert covariance.shape == (17, 3, 3) and np.all(np.linalg.eigvalsh(covariance) > 0)
    torso = np.linalg.norm(joints[[5, 6, 11, 12]].mean(axis=0) - s["joints"][[5, 6, 11, 12]].mean(axis=0))
    assert torso < 1.5, f"the fallback put the torso {torso:.2f} m from the person"
    nobody = np.zeros((17, 3))
    with pytest.raises(LiftingInputError):
        fallback.pose(nobody, *args[1:])


def test_fit_measures_the_vision_models_own_errors(tmp_path):
    """The fit on two val frames: rates in [0, 1], spreads positive, along the ray wider than across (depth is what
    a single image cannot give); stored in the model file and read back by load."""
    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting.calibration import store_in_model

    cal = fit(Lifter.load(VISION), ["default"], 2, 0)
    assert cal.frames == 2 and np.all((0 <= cal.within) & (cal.within <= 1))
    assert np.all(cal.along_std_m > 0) and np.all(cal.across_std_m > 0)
    assert np.median(cal.along_std_m) > np.median(cal.across_std_m)
    model = tmp_path / "vision.pt"
    shutil.copy(VISION, model)
    store_in_model(model, "fallback", cal.as_dict())
    assert np.allclose(VisionFallback.load(model).calibration.along_std_m, cal.along_std_m)


def _handler(p_overrides: dict, fallback):
    from av_pose_ros.lifting import Lifter
    from av_pose_ros.pipeline.lifter import PARAMS, LifterHandler

    p = SimpleNamespace(**{**{q.name: q.default for q in PARAMS}, **p_overrides})
    frames = {"cam": np.eye(4)}
    return LifterHandler(p, lambda target, src, stamp, wait: frames[src], Lifter.load(REPO / "models" / "lifter.pt"),
                         fallback)


def _keypoints(stamp_ns: int):
    from av_pose_ros.lifting.dataset import simulate_sample
    from av_pose_ros.primitives.skeleton import COCO17_JOINTS
    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import load_scenario

    s = simulate_sample(load_scenario("default"), Simulator(), "test", 6, 0, audio=False)
    kp = SimpleNamespace(stamp_ns=stamp_ns, undistorted=True, keypoints=s["keypoints"][None].astype(float),
                         frame_id="cam", body_ids=["p0"], joint_names=list(COCO17_JOINTS))
    return kp, s["K"]


def test_lifter_stage_publishes_the_fallback_for_frames_no_kernel_reaches():
    """Keypoint frames keep coming, kernels never do: once `audio_wait_s` has passed, each is handed out without
    kernels and lifted as source vision_only, flagged no_audio; without a fallback nothing is handed out."""
    for fallback in (VisionFallback.load(VISION), None):
        handler = _handler({"audio_wait_s": 0.2}, fallback)
        kp0, K = _keypoints(10**9)
        handler.on_camera_info(K.reshape(-1).tolist(), now_ns=10**9)
        ready, report = handler.on_keypoints(kp0)
        assert ready == []
        kp1, _ = _keypoints(10**9 + 300_000_000)           # 0.3 s later: the first frame has waited long enough
        ready, report = handler.on_keypoints(kp1)
        assert "no_audio" in report.problems
        if fallback is None:
            assert ready == [] and "nothing published" in report.problems["no_audio"]
            continue
        assert [(kp.stamp_ns, kernels) for kp, kernels in ready] == [(10**9, None)]
        pose = handler.lift(*ready[0], now_ns=10**9)
        assert pose.source == "vision_only" and pose.flag_reasons == (NO_AUDIO,) and pose.flagged
        assert "no pose kernel" in pose.flag_message
        assert np.all(np.isfinite(pose.joints)) and np.all(pose.confidence <= 1)


def test_a_single_missing_window_while_kernels_flow_is_not_a_fallback():
    """Kernels every 0.1 s except one: the keypoint frame of the missing window pairs with nothing and is said
    (`no_audio`), but it is not posed from vision: the audio is there, the previous pose stands."""
    handler = _handler({"audio_wait_s": 0.2, "sync_slop_s": 0.03}, VisionFallback.load(VISION))
    kp, K = _keypoints(0)
    handler.on_camera_info(K.reshape(-1).tolist(), now_ns=10**9)
    kernel = SimpleNamespace(empty_room_subtracted=True)
    handed = []
    for k in range(1, 12):
        stamp = k * 100_000_000
        handed += handler.on_keypoints(SimpleNamespace(**{**vars(kp), "stamp_ns": stamp}))[0]
        if k != 5:
            handed += handler.on_kernels(SimpleNamespace(**vars(kernel), stamp_ns=stamp))[0]
    stamps = [frame.stamp_ns for frame, _ in handed]
    assert 500_000_000 not in stamps and all(kernels is not None for _, kernels in handed)
    assert len(stamps) >= 8


def test_eval_lifter_scores_a_frame_without_kernel_at_the_fallback(monkeypatch):
    """eval-lifter's CNN row is what lifter_node publishes: a frame whose kernel is missing gets the vision-only
    pose, flagged, and the summary says how many frames were published that way."""
    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting import dataset as ds
    from av_pose_ros.lifting.evaluate import evaluate

    real = ds.generate

    def first_frame_unheard(*args, **kwargs):
        data = dict(real(*args, **kwargs))
        data["kernels"] = data["kernels"].copy()
        data["kernels"][0] = 0.0
        return data

    monkeypatch.setattr(ds, "generate", first_frame_unheard)
    r = evaluate("default", 2, 0, workers=1, progress=False, lifter=Lifter.load(REPO / "models" / "lifter.pt"),
                 vision_lifter=Lifter.load(VISION))
    assert np.allclose(r["preds"]["cnn"][0], r["preds"]["vision_learned"][0]) and r["flagged"]["cnn"][0]
    assert not r["lifted"][0] and r["lifted"][1]
    cnn = r["summary"]["methods"]["cnn"]
    assert cnn["fallback_fraction"] == 0.5 and cnn["not_published_fraction"] == 0.0
    assert np.isfinite(cnn["mpjpe_fallback_mm"]) and np.isfinite(cnn["mpjpe_published_mm"])
    assert np.isfinite(r["summary"]["methods"]["vision_learned"]["wrist_published_mm"])
