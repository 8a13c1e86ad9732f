"""3D-room views for head-camera rotation: pure rotations match the exact homography K R K^-1 (and SIFT reads the
known turn), the distortion model round-trips, a step without a turn changes the view."""

import cv2
import numpy as np
import pytest

from av_pose_ros.slfm.baselines import feature_yaw
from av_pose_ros.slfm.images import ImageBank, load_real_photos
from av_pose_ros.slfm.scenes3d import Lens, camera_rotation, pixel_rays, render, sample_room3d


@pytest.fixture(scope="module")
def room():
    bank = ImageBank(load_real_photos("train"), n_procedural=3, seed=0, p_real=0.5)
    return sample_room3d(np.random.default_rng(3), bank, n_boxes=(3, 3))


def _centre(room):
    return np.array([room.dims[0] / 2, room.dims[1] / 2, 1.4])


def test_pure_rotation_is_the_homography(room):
    lens = Lens(width=160, height=120, hfov_deg=80.0)
    yaw = np.radians(15.0)
    ra, rb = camera_rotation(0.3), camera_rotation(0.3 + yaw)
    a = render(room, lens, _centre(room), ra).astype(np.float32)
    b = render(room, lens, _centre(room), rb).astype(np.float32)
    h = lens.K @ rb.T @ ra @ np.linalg.inv(lens.K)  # pixel of a -> pixel of b
    warped = cv2.warpPerspective(a, h, (lens.width, lens.height))
    valid = cv2.warpPerspective(np.ones_like(a[..., 0]), h, (lens.width, lens.height)) > 0.99
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    err = np.abs(warped - b)[valid].mean()
    shuffled = np.abs(a - b).mean()
    assert valid.mean() > 0.5 and err < 0.25 * shuffled, (err, shuffled)
    got, ok = feature_yaw(a.astype(np.uint8), b.astype(np.uint8), fov_deg=lens.hfov_deg)
    assert ok and abs(np.degrees(got) - 15.0) < 0.5


def test_distortion_rays_round_trip():
    lens = Lens(width=64, height=48, hfov_deg=90.0, k1=-0.05, k2=0.01)
    rays = pixel_rays(lens)
    x, y = rays[..., 0] / rays[..., 2], rays[..., 1] / rays[..., 2]
    r2 = x * x + y * y
    factor = 1 + lens.k1 * r2 + lens.k2 * r2 * r2
    u = lens.K[0, 0] * x * factor + lens.K[0, 2]
    v = lens.K[1, 1] * y * factor + lens.K[1, 2]
    uu, vv = np.meshgrid(np.arange(64), np.arange(48))
    np.testing.assert_allclose(u, uu, atol=1e-3)
    np.testing.assert_allclose(v, vv, atol=1e-3)
    assert np.all(np.isfinite(rays)) and not np.allclose(rays, pixel_rays(Lens(width=64, height=48, hfov_deg=90)))


def test_translation_changes_the_view_without_turning(room):
    """A 10 cm sideways step in front of a box (about 1.2 m away): the views differ though the camera did not
    turn (the homography pairs of slfm.images never have this)."""
    lens = Lens(width=160, height=120, hfov_deg=80.0)
    lo, hi = room.boxes[0]
    target = (lo + hi) / 2
    target[2] = 0.5 * hi[2]
    eye = target + np.array([-1.2, 0.0, 0.0])
    eye[2] = max(eye[2], 0.6)
    eye[:2] = np.clip(eye[:2], 0.3, room.dims[:2] - 0.3)
    yaw = float(np.arctan2(*(target - eye)[[1, 0]]))
    r = camera_rotation(yaw)
    a = render(room, lens, eye, r).astype(np.float32)
    left = eye + r @ np.array([-0.1, 0.0, 0.0])  # 10 cm to the camera's left (optical -x)
    b = render(room, lens, left, r).astype(np.float32)
    assert np.abs(a - b).mean() > 2.0  # the view changed although the camera did not turn


def test_wide_sweep_reads_a_45_degree_turn(room):
    """The shipped rotation weights with the wide sweep (90-deg camera, +-90 deg) on a 45-deg turn, beyond the
    file's own +-34 deg sweep."""
    from av_pose_ros.slfm import SlfmInputError
    from av_pose_ros.slfm.estimators import WIDE_SWEEP, RotationEstimator, model_path

    path = model_path("slfm_rotation.pt")
    if not __import__("os").path.exists(path):
        pytest.skip("no shipped rotation model")
    lens = Lens(width=320, height=240, hfov_deg=90.0)
    a = render(room, lens, _centre(room), camera_rotation(1.0))
    b = render(room, lens, _centre(room) + np.array([0.02, -0.01, 0.0]), camera_rotation(1.0 + np.radians(45.0)))
    wide = RotationEstimator.load(path, sweep=WIDE_SWEEP)
    assert abs(np.degrees(wide.estimate(a, b, fov_deg=90.0)) - 45.0) < 2.0
    assert abs(np.degrees(wide.estimate(b, a, fov_deg=90.0)) + 45.0) < 2.0
    with pytest.raises(SlfmInputError):
        RotationEstimator.load(path, sweep={"channels": [8, 8, 8]})
