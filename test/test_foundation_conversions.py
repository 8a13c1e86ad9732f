"""numpy <-> message round trips for every custom type and Image, and MessageError on malformed messages."""

import array

import numpy as np
import pytest

from av_pose_ros.ros import conversions as cv
from av_pose_ros.ros.images import image_from_numpy, image_to_rgb

from sample_messages import STAMP_NS, sample_messages

MSGS = sample_messages()


def test_audio_round_trip_keeps_shape_values_and_stamp():
    a = cv.audio_from_msg(MSGS["AudioFrame"])
    assert a.audio.shape == (4, 4800) and a.audio.dtype == np.float32
    assert a.probe.shape == (4, 240)
    assert a.stamp_ns == STAMP_NS and a.sample_rate == 48000 and a.sequence == 42
    assert cv.audio_to_msg(a) == MSGS["AudioFrame"]


def test_kernels_round_trip():
    k = cv.kernels_from_msg(MSGS["PoseKernel"])
    assert k.kernels.shape == (4, 1500)
    assert k.speed_of_sound == pytest.approx(343.2, abs=1e-4)
    assert cv.kernels_to_msg(k) == MSGS["PoseKernel"]


def test_keypoints_round_trip_is_person_major():
    k = cv.keypoints_from_msg(MSGS["Keypoints2D"])
    assert k.keypoints.shape == (2, 17, 3)
    msg = MSGS["Keypoints2D"]
    assert k.keypoints[1, 3, 0] == pytest.approx(msg.u[17 + 3])
    assert cv.keypoints_to_msg(k) == msg


def test_pose_round_trip_with_covariance():
    p = cv.pose3d_from_msg(MSGS["HumanPose3D"])
    assert p.joints.shape == (17, 3) and p.covariance.shape == (17, 3, 3)
    assert p.covariance[5] == pytest.approx(np.eye(3) * 1e-3)
    assert cv.pose3d_to_msg(p) == MSGS["HumanPose3D"]


def test_handover_and_small_messages_round_trip():
    h = cv.handover_from_msg(MSGS["HandoverTarget"])
    assert h.hand == "right" and h.reachable and h.position == pytest.approx([0.6, -0.2, 1.1])
    assert cv.handover_to_msg(h) == MSGS["HandoverTarget"]
    az, el, conf = cv.sound_direction_from_msg(MSGS["SoundDirection"])
    assert az == pytest.approx(0.4) and el == 0.0
    d = MSGS["SoundDirection"].direction
    assert (d.x, d.y) == pytest.approx((np.cos(0.4), np.sin(0.4)), abs=1e-6)
    rel, integrated, conf = cv.head_rotation_from_msg(MSGS["HeadRotation"])
    assert rel == pytest.approx(-0.05) and integrated == pytest.approx(1.2)


@pytest.mark.parametrize("mutate, unpack, fragment", [
    (lambda m: setattr(m, "num_samples", 4801), cv.audio_from_msg, "header says"),
    (lambda m: setattr(m, "mic_frames", ["mic_0"]), cv.audio_from_msg, "mic_frames"),
    (lambda m: setattr(m, "sample_rate", 0), cv.audio_from_msg, "sample_rate"),
    (lambda m: m.data.__setitem__(10, float("nan")), cv.audio_from_msg, "NaN"),
    (lambda m: setattr(m, "num_taps", 10), cv.kernels_from_msg, "header says"),
    (lambda m: m.data.__setitem__(0, float("inf")), cv.kernels_from_msg, "NaN or Inf"),
    (lambda m: setattr(m, "body_ids", []), cv.keypoints_from_msg, "body_ids"),
    (lambda m: m.confidence.__setitem__(0, 1.5), cv.keypoints_from_msg, "outside"),
    (lambda m: m.positions.pop(), cv.pose3d_from_msg, "positions"),
    (lambda m: setattr(m, "position_covariance", array.array("d", [0.0] * 9)), cv.pose3d_from_msg, "covariance"),
    (lambda m: setattr(m, "hand", "both"), cv.handover_from_msg, "hand"),
])
def test_malformed_messages_raise_message_error(mutate, unpack, fragment):
    name = {cv.audio_from_msg: "AudioFrame", cv.kernels_from_msg: "PoseKernel",
            cv.keypoints_from_msg: "Keypoints2D", cv.pose3d_from_msg: "HumanPose3D",
            cv.handover_from_msg: "HandoverTarget"}[unpack]
    msg = sample_messages()[name]
    mutate(msg)
    with pytest.raises(cv.MessageError, match=fragment):
        unpack(msg)


def test_image_encodings_round_trip_and_padding():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)
    assert np.array_equal(image_to_rgb(image_from_numpy(rgb, "rgb8", 1, "cam")), rgb)
    assert np.array_equal(image_to_rgb(image_from_numpy(rgb[..., ::-1], "bgr8", 1, "cam")), rgb)
    mono = rgb[..., 0]
    out = image_to_rgb(image_from_numpy(mono, "mono8", 1, "cam"))
    assert out.shape == (6, 5, 3) and np.array_equal(out[..., 2], mono)
    padded = image_from_numpy(rgb, "rgb8", 1, "cam")
    padded.step = 5 * 3 + 4
    padded.data = b"".join(rgb[r].tobytes() + b"\0" * 4 for r in range(6))
    assert np.array_equal(image_to_rgb(padded), rgb)


@pytest.mark.parametrize("encoding, fragment", [("16UC1", "not supported"), ("rgb8", "do not hold")])
def test_bad_images_raise_message_error(encoding, fragment):
    msg = image_from_numpy(np.zeros((4, 4, 3), np.uint8), "rgb8", 1, "cam")
    msg.encoding = encoding
    msg.data = msg.data[:10]
    with pytest.raises(cv.MessageError, match=fragment):
        image_to_rgb(msg)
