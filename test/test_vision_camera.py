"""Camera model: closed-form projection values, OpenCV round trips, rays in other frames, CameraInfo parsing."""

import numpy as np
import pytest

from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, make_transform, rot_z
from av_pose_ros.vision.camera import CameraModel

K = np.array([[600.0, 0.0, 320.0], [0.0, 580.0, 240.0], [0.0, 0.0, 1.0]])
LENSES = {
    "plumb_bob": [-0.28, 0.09, 0.001, -0.0015, -0.01],
    "rational_polynomial": [0.3, -0.1, 0.001, 0.002, 0.01, 0.6, -0.05, 0.02],
    "equidistant": [0.05, -0.02, 0.004, -0.001],
}


def points_in_view(camera, count=200, seed=0):
    """Optical-frame points whose ideal projections fill the image."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform([0, 0], [camera.width, camera.height], (count, 2))
    return camera.backproject(uv, rng.uniform(0.5, 6.0, count))


@pytest.mark.parametrize("model", sorted(LENSES))
def test_project_undistort_backproject_round_trip(model):
    camera = CameraModel(640, 480, K, LENSES[model], model)
    points = points_in_view(camera)
    raw = camera.project(points)
    assert not np.allclose(raw, camera.project_ideal(points), atol=1.0), "the lens should distort"
    ideal = camera.undistort_points(raw)
    np.testing.assert_allclose(ideal, camera.project_ideal(points), atol=1e-4)
    np.testing.assert_allclose(camera.backproject(ideal, points[:, 2]), points, atol=1e-6)
    np.testing.assert_allclose(camera.distort_points(ideal), raw, atol=1e-4)


def test_plumb_bob_radial_term_matches_closed_form():
    camera = CameraModel(640, 480, K, [0.1, 0, 0, 0, 0], "plumb_bob")
    # x/z = 0.1, y/z = 0: r^2 = 0.01, radial factor 1 + 0.1 * 0.01.
    uv = camera.project([[0.2, 0.0, 2.0]])
    np.testing.assert_allclose(uv, [[320.0 + 600.0 * 0.1 * 1.001, 240.0]], atol=1e-9)


def test_equidistant_maps_angle_linearly():
    camera = CameraModel(640, 480, K, [0.05, 0, 0, 0], "equidistant")
    theta = np.arctan(0.5)
    uv = camera.project([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(uv, [[320.0, 240.0 + 580.0 * theta * (1 + 0.05 * theta**2)]], atol=1e-9)


def test_zero_distortion_projection_is_ideal_and_behind_is_nan():
    camera = CameraModel(640, 480, K, [], "plumb_bob")
    points = np.array([[0.3, -0.2, 2.0], [0.1, 0.1, -1.0], [0.0, 0.0, 0.0]])
    raw = camera.project(points)
    np.testing.assert_allclose(raw[0], [320 + 600 * 0.15, 240 - 580 * 0.1])
    np.testing.assert_allclose(raw, camera.project_ideal(points))
    assert np.isnan(raw[1:]).all()
    assert np.isnan(camera.undistort_points([[np.nan, 1.0]])).all()


def test_rays_are_unit_and_follow_the_frame_transform():
    camera = CameraModel(640, 480, K, [], "plumb_bob")
    uv = np.array([[320.0, 240.0], [920.0, 240.0]])  # the principal point, and 45 degrees to the right
    rays = camera.rays(uv)
    np.testing.assert_allclose(rays, [[0, 0, 1], [np.sqrt(0.5), 0, np.sqrt(0.5)]], atol=1e-12)
    # camera_link 1.2 m up, turned 90 degrees left in the world: optical z (forward) becomes world +y.
    world_from_optical = make_transform(rot_z(np.pi / 2), [0.5, 0.0, 1.2]) @ LINK_FROM_OPTICAL
    origin, directions = camera.rays_in_frame(uv, world_from_optical)
    np.testing.assert_allclose(origin, [0.5, 0.0, 1.2])
    np.testing.assert_allclose(directions, [[0, 1, 0], [np.sqrt(0.5), np.sqrt(0.5), 0]], atol=1e-12)


def test_from_camera_info_fields():
    camera = CameraModel.from_camera_info_fields(
        640, 480, "plumb_bob", LENSES["plumb_bob"], K.ravel().tolist(), np.eye(3).ravel().tolist(), [0.0] * 12)
    np.testing.assert_array_equal(camera.K, K)
    np.testing.assert_array_equal(camera.R, np.eye(3))
    assert camera.P is None and camera.D.shape == (5,) and (camera.width, camera.height) == (640, 480)
    assert CameraModel.from_camera_info_fields(640, 480, "equidistant", [0] * 4, K.ravel()).is_fisheye


@pytest.mark.parametrize("kwargs, message", [
    ({"k": [0.0] * 9}, "not calibrated"),
    ({"k": [600.0] * 8}, "9 values"),
    ({"k": [600, 0, 320, 0, -580, 240, 0, 0, 1]}, "fx, fy > 0"),
    ({"k": [600, 0, 320, 0, 580, 240, 0, 1, 1]}, "last row"),
    ({"distortion_model": "kannala"}, "unknown distortion model"),
    ({"d": [0.1, 0.0, 0.0]}, "needs 5"),
    ({"distortion_model": "equidistant"}, "needs 4"),
    ({"d": [np.nan, 0, 0, 0, 0]}, "finite"),
    ({"p": [1.0] * 9}, "needs 12"),
    ({"width": 0}, "positive"),
])
def test_camera_info_errors(kwargs, message):
    fields = {"width": 640, "height": 480, "distortion_model": "plumb_bob", "d": [0.0] * 5, "k": K.ravel(),
              "r": None, "p": None}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        CameraModel.from_camera_info_fields(**fields)
