"""The SLfM estimators' confidences say something: the azimuth's falls in a loud reverberant noisy room, the
rotation's falls for views of two different places (both used to be 1 whatever the input)."""

import math

import numpy as np
import pytest

from av_pose_ros.slfm.estimators import AzimuthEstimator, RotationEstimator
from av_pose_ros.slfm.images import load_real_photos, sample_pair
from av_pose_ros.slfm.rooms import render_view, sample_room
from av_pose_ros.slfm.sources import music_like

from ros_harness import REPO


@pytest.mark.skipif(not (REPO / "models" / "slfm_azimuth.pt").exists(), reason="no shipped azimuth model")
def test_azimuth_confidence_falls_in_reverberation_and_noise():
    rng = np.random.default_rng(4)
    est = AzimuthEstimator.load(REPO / "models" / "slfm_azimuth.pt")

    def confidences(rt60_range, snr_db):
        out = []
        for _ in range(4):
            room = sample_room(rng, rt60_range=rt60_range)
            clip = render_view(room, room.base_yaw, music_like(16000 * 2, rng), rng, snr_db=snr_db)
            az, conf = est.estimate_with_confidence(clip)
            assert abs(az) <= math.pi / 2 and 0.0 <= conf <= 1.0
            out.append(conf)
        return np.median(out)

    assert confidences((0.15, 0.2), 40.0) > 0.8 > 0.5 > confidences((0.7, 0.8), 0.0)


@pytest.mark.skipif(not (REPO / "models" / "slfm_rotation.pt").exists(), reason="no shipped rotation model")
def test_rotation_confidence_falls_for_views_of_different_places():
    rng = np.random.default_rng(4)
    rot = RotationEstimator.load(REPO / "models" / "slfm_rotation.pt")
    photos = load_real_photos("test")
    a, b = sample_pair(photos[0], math.radians(10.0), rng, width=256, height=192)
    elsewhere, _ = sample_pair(photos[1], 0.0, rng, width=256, height=192)
    yaw, conf = rot.estimate_with_confidence(a, b, 60.0)
    assert yaw == pytest.approx(rot.estimate(a, b, 60.0)) and conf > 0.9
    assert rot.estimate_with_confidence(a, elsewhere, 60.0)[1] < 0.1
