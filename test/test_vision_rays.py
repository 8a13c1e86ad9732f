"""Ray encoding against an oracle: a known camera and a known 3D point, exact Gaussian values, the zero regions."""

import numpy as np
import pytest

from av_pose_ros.primitives.geometry import (
    LINK_FROM_OPTICAL,
    apply_transform,
    make_transform,
    rot_z,
)
from av_pose_ros.vision.camera import CameraModel
from av_pose_ros.vision.rays import MIN_CONFIDENCE, ray_encoding

CAMERA = CameraModel(640, 480, [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]], [])
# camera_link 1.2 m above the world origin, turned 20 degrees left; the encoding takes the optical frame.
WORLD_FROM_CAMERA = make_transform(rot_z(np.radians(20)), [0.0, 0.0, 1.2]) @ LINK_FROM_OPTICAL
CAMERA_FROM_WORLD = np.linalg.inv(WORLD_FROM_CAMERA)
WRIST_WORLD = np.array([2.5, 1.1, 1.0])
SIGMA = 6.0


def world_points_at(uv, depth):
    """World points that the camera sees at ideal pixels ``uv`` and optical depth ``depth``."""
    return apply_transform(WORLD_FROM_CAMERA, CAMERA.backproject(uv, depth))


def wrist_keypoint(confidence):
    u, v = CAMERA.project_ideal(apply_transform(CAMERA_FROM_WORLD, WRIST_WORLD))[0]
    return np.array([[u, v, confidence]])


@pytest.mark.parametrize("confidence", [1.0, 0.4])
def test_encoding_is_the_confidence_on_the_ray_and_gaussian_off_it(confidence):
    keypoint = wrist_keypoint(confidence)
    centre = keypoint[0, :2]
    origin = WORLD_FROM_CAMERA[:3, 3]
    on_ray = origin + np.linspace(0.2, 3.0, 8)[:, None] * (WRIST_WORLD - origin)
    offsets = np.array([[4.0, 0.0], [0.0, -7.0], [9.0, 12.0]])
    off_ray = world_points_at(centre + offsets, 2.0)
    encoding = ray_encoding(keypoint, CAMERA.K, WORLD_FROM_CAMERA, np.vstack([on_ray, off_ray]), SIGMA,
                            image_size=(640, 480))
    assert encoding.shape == (1, 11) and encoding.dtype == np.float32
    np.testing.assert_allclose(encoding[0, :8], confidence, rtol=1e-5)
    # sigma_j^2 = sigma^2 / c: value = c * exp(-c d^2 / (2 sigma^2)).
    d2 = (offsets**2).sum(axis=1)
    np.testing.assert_allclose(encoding[0, 8:], confidence * np.exp(-confidence * d2 / (2 * SIGMA**2)), rtol=1e-4)
    assert encoding[0].argmax() < 8


def test_lower_confidence_gives_a_wider_lower_ridge():
    keypoints = np.vstack([wrist_keypoint(1.0), wrist_keypoint(0.3)])
    points = world_points_at(keypoints[0, :2] + [[0.0, 0.0], [10.0, 0.0]], 2.0)
    encoding = ray_encoding(keypoints, CAMERA.K, WORLD_FROM_CAMERA, points, SIGMA)
    peak, shoulder = encoding[:, 0], encoding[:, 1]
    assert peak[1] < peak[0]
    assert shoulder[1] / peak[1] > shoulder[0] / peak[0]


def test_zero_behind_camera_and_outside_image():
    keypoint = np.array([[630.0, 240.0, 1.0]])  # near the right edge
    origin = WORLD_FROM_CAMERA[:3, 3]
    in_front = world_points_at([[630.0, 240.0]], 2.0)[0]
    behind = origin - (in_front - origin)  # projects onto the keypoint too if z is not checked
    just_outside = world_points_at([[641.0, 240.0]], 2.0)[0]  # 11 px away: exp(-121/72) would be 0.19
    points = np.vstack([in_front, behind, just_outside, origin])
    encoding = ray_encoding(keypoint, CAMERA.K, WORLD_FROM_CAMERA, points, SIGMA, image_size=(640, 480))
    np.testing.assert_allclose(encoding[0], [1.0, 0.0, 0.0, 0.0], atol=1e-6)
    wider = ray_encoding(keypoint, CAMERA.K, WORLD_FROM_CAMERA, points, SIGMA, image_size=(700, 480))
    assert wider[0, 2] == pytest.approx(np.exp(-121 / 72), rel=1e-4)
    # Default image size (2 cx, 2 cy) = (640, 480) here.
    np.testing.assert_array_equal(ray_encoding(keypoint, CAMERA.K, WORLD_FROM_CAMERA, points, SIGMA), encoding)


@pytest.mark.parametrize("missing", [[320.0, 240.0, 0.0], [320.0, 240.0, np.nan], [np.nan, 240.0, 0.9]])
def test_missing_joints_encode_to_zero(missing):
    keypoints = np.vstack([wrist_keypoint(0.8), missing])
    points = world_points_at([[320.0, 240.0], keypoints[0, :2]], 2.0)
    encoding = ray_encoding(keypoints, CAMERA.K, WORLD_FROM_CAMERA, points, SIGMA)
    assert encoding[0, 1] == pytest.approx(0.8, rel=1e-5)
    assert not encoding[1].any()


def naive_encoding(keypoints, K, world_from_camera, points, sigma, width, height):
    """Per-voxel, per-joint reference written straight from the definition in the module docstring."""
    camera_from_world = np.linalg.inv(world_from_camera)
    out = np.zeros((len(keypoints), len(points)))
    for i, point in enumerate(points):
        x, y, z = camera_from_world[:3, :3] @ point + camera_from_world[:3, 3]
        if z <= 1e-3:
            continue
        u, v = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        if not (0 <= u < width and 0 <= v < height):
            continue
        for j, (ku, kv, c) in enumerate(keypoints):
            if np.isfinite(c) and c > 0:
                var = sigma[j] ** 2 / max(c, MIN_CONFIDENCE)
                out[j, i] = c * np.exp(-((u - ku) ** 2 + (v - kv) ** 2) / (2 * var))
    return out


def test_matches_naive_reference_on_random_grid():
    rng = np.random.default_rng(3)
    keypoints = np.column_stack([rng.uniform(0, 640, 17), rng.uniform(0, 480, 17), rng.uniform(0, 1, 17)])
    keypoints[[2, 9], 2] = [0.0, 0.01]
    sigma = rng.uniform(3, 30, 17)
    points = rng.uniform([-1, -3, -1], [6, 3, 3], (400, 3))
    encoding = ray_encoding(keypoints, CAMERA.K, WORLD_FROM_CAMERA, points, sigma, image_size=(640, 480))
    reference = naive_encoding(keypoints, CAMERA.K, WORLD_FROM_CAMERA, points, sigma, 640, 480)
    assert (reference > 0.1).sum() > 10, "the random grid should hit some ridges"
    np.testing.assert_allclose(encoding, reference, rtol=1e-4, atol=1e-6)
