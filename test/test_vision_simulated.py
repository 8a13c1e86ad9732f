"""Simulated detections: error statistics with a seeded generator, distortion round trip, swaps, edge cases."""

import numpy as np
import pytest

from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, apply_transform, make_transform
from av_pose_ros.primitives.skeleton import JOINT_INDEX, LEFT_RIGHT_SWAP
from av_pose_ros.vision.camera import CameraModel
from av_pose_ros.vision.simulated import DetectionNoise, simulate_detections

K = [[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]]
PINHOLE = CameraModel(640, 480, K, [])
LENS = CameraModel(640, 480, K, [-0.3, 0.1, 0.001, 0.001, -0.02])
WORLD_FROM_CAMERA = make_transform(translation=[0.0, 0.0, 1.2]) @ LINK_FROM_OPTICAL
CAMERA_FROM_WORLD = np.linalg.inv(WORLD_FROM_CAMERA)
# the wave-1 error model (Gaussian jitter, nothing else unless asked): the tests of single effects start from it
PLAIN = dict(tail_dof=0.0, swap_rate=0.0, outlier_rate=0.0, confidence_error_px=0.0, out_of_image_confidence=0.05,
             frame_miss_rate=0.0, scale_noise=0.0, occluded_noise_factor=1.0, occluded_miss_rate=0.0,
             occluded_confidence_factor=1.0)


def person(rng):
    """17 world points in a person-sized box 2.5-3.5 m in front of the camera (x forward, z up)."""
    return rng.uniform([2.5, -0.4, 0.1], [3.5, 0.4, 1.8], (17, 3))


def ideal_pixels(camera, joints):
    return camera.project_ideal(apply_transform(CAMERA_FROM_WORLD, joints))


def test_noise_std_and_miss_rate_match_the_parameters():
    rng = np.random.default_rng(42)
    noise = DetectionNoise(keypoint_noise_px=3.0, miss_rate=0.05, **PLAIN)
    residuals, missed = [], []
    for _ in range(2000):
        joints = person(rng)
        detections = simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, noise, rng)
        missed.append(detections[:, 2] == 0)
        residuals.append((detections[:, :2] - ideal_pixels(PINHOLE, joints))[~missed[-1]])
    residuals, missed = np.vstack(residuals), np.concatenate(missed)
    assert missed.mean() == pytest.approx(0.05, abs=0.005)
    np.testing.assert_allclose(residuals.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(residuals.std(axis=0), 3.0, rtol=0.03)


def test_noiseless_detections_are_undistorted_projections():
    rng = np.random.default_rng(1)
    joints = person(rng)
    exact = DetectionNoise(keypoint_noise_px=0.0, miss_rate=0.0, **PLAIN)
    detections = simulate_detections(joints, LENS, WORLD_FROM_CAMERA, exact, rng)
    np.testing.assert_allclose(detections[:, :2], ideal_pixels(LENS, joints), atol=1e-4)
    assert ((detections[:, 2] >= 0.6) & (detections[:, 2] <= 1.0)).all()


def test_swap_exchanges_left_and_right_labels():
    rng = np.random.default_rng(2)
    joints = person(rng)
    always = DetectionNoise(keypoint_noise_px=0.0, miss_rate=0.0, **{**PLAIN, "swap_rate": 1.0})
    detections = simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, always, rng)
    np.testing.assert_allclose(detections[:, :2], ideal_pixels(PINHOLE, joints)[list(LEFT_RIGHT_SWAP)], atol=1e-9)
    nose = JOINT_INDEX["nose"]
    np.testing.assert_allclose(detections[nose, :2], ideal_pixels(PINHOLE, joints)[nose], atol=1e-9)


def test_outliers_widen_the_error():
    rng = np.random.default_rng(3)
    noise = DetectionNoise(keypoint_noise_px=3.0, miss_rate=0.0, outlier_px=40.0, **{**PLAIN, "outlier_rate": 1.0})
    residuals = np.vstack([
        simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, noise, rng)[:, :2] - ideal_pixels(PINHOLE, joints)
        for joints in (person(rng) for _ in range(300))])
    np.testing.assert_allclose(residuals.std(axis=0), np.hypot(3.0, 40.0), rtol=0.08)


def test_out_of_image_and_behind_camera_joints():
    joints = np.tile([3.0, 0.0, 1.2], (17, 1))
    joints[0] = [3.0, 5.0, 1.2]  # far to the left: out of the image, in front of the camera
    joints[1] = [-3.0, 0.0, 1.2]  # behind the camera
    exact = DetectionNoise(keypoint_noise_px=0.0, miss_rate=0.0, **PLAIN)
    detections = simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, exact, np.random.default_rng(4))
    assert detections[0, 2] == 0.05 and detections[0, 0] < 0
    assert detections[1, 2] == 0.0 and np.isnan(detections[1, :2]).all()
    assert (detections[2:, 2] >= 0.6).all()


def test_seeded_generator_reproduces():
    joints = person(np.random.default_rng(5))
    noise = DetectionNoise(swap_rate=0.2, outlier_rate=0.1)
    first = simulate_detections(joints, LENS, WORLD_FROM_CAMERA, noise, np.random.default_rng(9))
    second = simulate_detections(joints, LENS, WORLD_FROM_CAMERA, noise, np.random.default_rng(9))
    np.testing.assert_array_equal(first, second)


def test_from_scenario_reads_the_camera_section():
    noise = DetectionNoise.from_scenario({"keypoint_noise_px": 2.0, "miss_rate": 0.1, "swap_rate": 0.02,
                                          "width": 640})
    assert (noise.keypoint_noise_px, noise.miss_rate, noise.swap_rate) == (2.0, 0.1, 0.02)
    assert noise.outlier_rate == DetectionNoise().outlier_rate          # missing keys keep their defaults
    with pytest.raises(ValueError, match="miss_rate"):
        DetectionNoise.from_scenario({"miss_rate": 1.5})
    with pytest.raises(ValueError, match="confidence_range"):
        DetectionNoise(confidence_range=(0.9, 0.5))


def test_detector_like_errors_heavy_tails_confidence_falls_with_error():
    rng = np.random.default_rng(11)
    noise = DetectionNoise(**{**PLAIN, "keypoint_noise_px": 3.0, "miss_rate": 0.0, "tail_dof": 4.0,
                              "outlier_rate": 0.05, "outlier_px": 40.0, "confidence_error_px": 15.0})
    err, conf = [], []
    for _ in range(400):
        joints = person(rng)
        d = simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, noise, rng)
        ok = d[:, 2] > 0
        err.append(np.linalg.norm(d[ok, :2] - ideal_pixels(PINHOLE, joints)[ok], axis=1))
        conf.append(d[ok, 2])
    err, conf = np.concatenate(err), np.concatenate(conf)
    # oracle: a 2D Gaussian of sigma 3 px puts exp(-8) = 0.03 % of joints beyond 12 px; the jitter alone (no
    # outliers) of a detector puts far more there, with the same standard deviation
    tails = DetectionNoise(**{**PLAIN, "keypoint_noise_px": 3.0, "miss_rate": 0.0, "tail_dof": 4.0})
    jitter = np.concatenate([simulate_detections(j, PINHOLE, WORLD_FROM_CAMERA, tails, rng)[:, :2]
                             - ideal_pixels(PINHOLE, j) for j in (person(rng) for _ in range(400))])
    jitter = jitter[np.isfinite(jitter).all(axis=1)]
    assert np.mean(np.linalg.norm(jitter, axis=1) > 12.0) > 10 * np.exp(-8)
    assert jitter.std() == pytest.approx(3.0, rel=0.25)
    # confidence is lower where the error is large (rank correlation), and large errors rarely look confident
    ranks = np.argsort(np.argsort(err)), np.argsort(np.argsort(conf))
    assert np.corrcoef(*ranks)[0, 1] < -0.2
    assert conf[err > 30].mean() < 0.5 * conf[err < 5].mean()


def test_truncated_bodies_lose_the_joints_outside_the_image_and_frames_are_sometimes_missed():
    rng = np.random.default_rng(12)
    joints = np.tile([1.0, 0.0, 1.2], (17, 1))
    joints[15:] = [1.0, 0.0, 0.1]          # ankles of a person 1 m away: below the image (v > 480)
    noise = DetectionNoise(keypoint_noise_px=0.0, miss_rate=0.0, frame_miss_rate=0.0, scale_noise=0.0)
    d = simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, noise, rng)
    v = ideal_pixels(PINHOLE, joints)[15:, 1]
    assert (v > 480).all() and (d[15:, 2] == 0).all() and np.isnan(d[15:, :2]).all()
    assert (d[:15, 2] > 0).all()
    frames = DetectionNoise(keypoint_noise_px=0.0, miss_rate=0.0, frame_miss_rate=0.3, occluded_miss_rate=0.0)
    empty = [np.all(simulate_detections(person(rng), PINHOLE, WORLD_FROM_CAMERA, frames, rng)[:, 2] == 0)
             for _ in range(400)]
    assert np.mean(empty) == pytest.approx(0.3, abs=0.07)


def test_far_side_of_a_turned_body_is_hidden_and_detected_worse():
    from av_pose_ros.sim.body import body_joints, place_in_world
    from av_pose_ros.vision.simulated import behind_torso

    # a standing person 3 m ahead, turned so that the left side faces away from the camera
    joints = place_in_world(body_joints(1.7, "standing"), (3.0, 0.0), -np.pi / 2)
    hidden = behind_torso(apply_transform(CAMERA_FROM_WORLD, joints))
    # oracle: the far (left) shoulder and hip lie straight behind the near ones, well within a torso's depth
    assert hidden[JOINT_INDEX["left_shoulder"]] and hidden[JOINT_INDEX["left_hip"]]
    assert not hidden[JOINT_INDEX["right_shoulder"]] and not hidden[JOINT_INDEX["right_hip"]]
    assert not hidden[JOINT_INDEX["nose"]] and not hidden[JOINT_INDEX["right_ear"]]
    assert hidden[JOINT_INDEX["left_ear"]]                         # behind the head
    facing = place_in_world(body_joints(1.7, "standing"), (3.0, 0.0), np.pi)        # square to the camera
    assert not behind_torso(apply_transform(CAMERA_FROM_WORLD, facing)).any()
    noise = DetectionNoise(**{**PLAIN, "keypoint_noise_px": 2.0, "miss_rate": 0.0, "occluded_noise_factor": 3.0,
                              "occluded_confidence_factor": 0.5})
    rng = np.random.default_rng(13)
    d = np.stack([simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, noise, rng) for _ in range(300)])
    err = np.linalg.norm(d[..., :2] - ideal_pixels(PINHOLE, joints), axis=-1)
    assert err[:, hidden].std() > 2 * err[:, ~hidden].std()
    assert d[:, hidden, 2].mean() < 0.6 * d[:, ~hidden, 2].mean()


def test_jitter_grows_with_the_person_in_the_image():
    rng = np.random.default_rng(14)
    noise = DetectionNoise(**{**PLAIN, "keypoint_noise_px": 1.0, "miss_rate": 0.0, "scale_noise": 0.02})
    spread = []
    for distance in (1.5, 4.5):
        joints = np.tile([distance, 0.0, 1.2], (17, 1)) + np.linspace(-0.8, 0.8, 17)[:, None] * [0, 0.3, 1]
        size = np.linalg.norm(np.ptp(ideal_pixels(PINHOLE, joints), axis=0))
        err = np.stack([simulate_detections(joints, PINHOLE, WORLD_FROM_CAMERA, noise, rng)[:, :2]
                        - ideal_pixels(PINHOLE, joints) for _ in range(200)])
        # oracle: per-axis std sqrt(1 + (0.02 size)^2)
        assert err.std() == pytest.approx(np.hypot(1.0, 0.02 * size), rel=0.1)
        spread.append(err.std())
    assert spread[0] > 2 * spread[1]
