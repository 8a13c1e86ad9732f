"""MediaPipe detector on a real photograph, checked against joint positions read off the photo by hand.

The photo is scikit-image's ``astronaut`` (Eileen Collins, 512x512, head and shoulders, facing the camera). Hand-read
positions (pixels, x right, y down), from a 4x zoom of the face and a 2x zoom of the torso with a 10 px grid:
nose tip (224, 124), her right eye (203, 100), her left eye (246, 104), shoulder joints inside the bulky suit about
(85, 255) on the image left (her right) and (335, 262) on the image right (her left). Tolerances: 15 px for the face,
40 px for the shoulders, whose centres are hidden by the suit.
"""

import socket

import numpy as np
import pytest
from skimage.data import astronaut as astronaut_photo

from av_pose_ros.primitives.skeleton import JOINT_INDEX
from av_pose_ros.vision.keypoints import PoseDetector

HAND_READ = {  # joint: (u, v, tolerance px)
    "nose": (224, 124, 15),
    "right_eye": (203, 100, 15),
    "left_eye": (246, 104, 15),
    "right_shoulder": (85, 255, 40),
    "left_shoulder": (335, 262, 40),
}


def _refuse_network(*args, **kwargs):
    raise AssertionError("the detector must not touch the network")


@pytest.fixture(scope="module")
def detector():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse_network)
        patch.setattr(socket, "create_connection", _refuse_network)
        with PoseDetector() as pose_detector:
            yield pose_detector


@pytest.fixture(scope="module")
def astronaut():
    return astronaut_photo()


@pytest.fixture(scope="module")
def astronaut_keypoints(detector, astronaut):
    return detector.detect(astronaut)


def test_astronaut_joints_match_hand_read_positions(astronaut_keypoints):
    keypoints = astronaut_keypoints
    assert keypoints is not None and keypoints.shape == (17, 3)
    assert ((keypoints[:, 2] >= 0) & (keypoints[:, 2] <= 1)).all()
    for joint, (u, v, tolerance) in HAND_READ.items():
        detected = keypoints[JOINT_INDEX[joint]]
        assert np.hypot(detected[0] - u, detected[1] - v) < tolerance, f"{joint} at {detected[:2]}"
        assert detected[2] > 0.9, f"{joint} is plainly visible, confidence {detected[2]}"


def test_astronaut_body_layout(astronaut_keypoints):
    keypoints = astronaut_keypoints
    nose, left, right = (keypoints[JOINT_INDEX[n]] for n in ("nose", "left_shoulder", "right_shoulder"))
    assert nose[1] < (left[1] + right[1]) / 2 - 80, "the nose is well above the shoulder midpoint"
    assert right[0] < nose[0] < left[0], "facing the camera, her left shoulder is on the image right"
    # Hips, knees and ankles are below the frame: extrapolated and doubtful.
    lower_body = [JOINT_INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    assert (keypoints[lower_body, 2] < 0.3).all()
    assert (keypoints[lower_body, 1] > 512).all()


def test_non_contiguous_view_gives_the_same_result(detector, astronaut, astronaut_keypoints):
    wide = np.zeros((512, 1024, 3), np.uint8)
    wide[:, ::2] = astronaut
    view = wide[:, ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_allclose(detector.detect(view), astronaut_keypoints, atol=1e-3)


def test_blank_images_have_nobody(detector):
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) is None
    assert detector.detect(np.full((480, 640, 3), 200, np.uint8)) is None


@pytest.mark.parametrize("image", [np.zeros((480, 640), np.uint8), np.zeros((480, 640, 4), np.uint8),
                                   np.zeros((480, 640, 3), np.float32), np.zeros((0, 640, 3), np.uint8)])
def test_rejects_images_that_are_not_rgb8(detector, image):
    with pytest.raises(ValueError):
        detector.detect(image)


def test_tracking_mode_follows_a_stream_and_closes(astronaut):
    tracker = PoseDetector(tracking=True)
    # The person steps 20 px right and stays: the smoothed track lags, then settles on the new position.
    frames = [astronaut] + [np.roll(astronaut, 20, axis=1)] * 8
    noses = np.array([tracker.detect(frame)[JOINT_INDEX["nose"], 0] for frame in frames])
    assert noses[1] - noses[0] > 0
    assert noses[-1] - noses[0] == pytest.approx(20.0, abs=3.0)
    tracker.close()
    tracker.close()
    with pytest.raises(RuntimeError, match="closed"):
        tracker.detect(astronaut)
