"""Rendered captures: shapes, ground truth, and body echoes where the joints are."""

import dataclasses

import numpy as np
import pytest

from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor
from av_pose_ros.sim.body import facing_yaw
from av_pose_ros.sim.render import Simulator
from av_pose_ros.sim.scenario import RoomPhysics, load_scenario


@pytest.fixture(scope="module")
def scene():
    scenario = load_scenario("default")
    s = scenario.sample(np.random.default_rng(4))
    audio = dataclasses.replace(s.audio, snr_db=40.0)
    person = dataclasses.replace(s.person, pose="offer_left", stature_m=1.75, position_xy=(2.0, 0.1),
                                 yaw=facing_yaw((2.0, 0.1), (0.0, 0.0)))
    # body-wall paths and shadowing off: this test's oracle is the body's own echoes only (test_sim_physics.py
    # checks the others)
    return dataclasses.replace(s, audio=audio, person=person, physics=RoomPhysics())


def test_capture_contents(scene):
    cap = Simulator().render_capture(scene, 0, rng=np.random.default_rng(0))
    assert cap.recording.shape == (4, 4800) and cap.recording.dtype == np.float32
    assert cap.emissions.shape == (4, 4800) and cap.fs == 48000
    assert cap.joints.shape == (17, 3) and cap.joints[:, 2].min() > 0
    assert 0.05 < np.abs(cap.recording).max() < 1.0
    np.testing.assert_allclose(cap.base_from_optical[:3, 2], [1, 0, 0], atol=1e-12)   # optical z = forward
    empty = Simulator().render_capture(scene, 0, person=False, rng=np.random.default_rng(0))
    assert empty.joints is None


def test_body_echo_arrives_at_joint_delays(scene):
    sim = Simulator()
    rng = np.random.default_rng(1)
    rig = scene.rig
    extractor = PoseKernelExtractor(rig.pairs, rig.direct_path_m(), 4, sim.render_capture(scene, 0).speed_of_sound,
                                    KernelConfig(taps=1200))
    extractor.empty_room.request_capture(4)
    for k in range(4):
        cap = sim.render_capture(scene, k, person=False, rng=rng)
        extractor.process(cap.recording, cap.emissions, cap.fs)
    cap = sim.render_capture(scene, 5, rng=rng)
    kernels = extractor.process(cap.recording, cap.emissions, cap.fs, person_present=True).kernels
    sp, mi = cap.speakers[cap.pairs[:, 0]], cap.mics[cap.pairs[:, 1]]
    for p in range(len(kernels)):
        delay = (np.linalg.norm(cap.joints - sp[p], axis=1) + np.linalg.norm(cap.joints - mi[p], axis=1))
        delay = delay / cap.speed_of_sound * cap.fs
        body = np.zeros(kernels.shape[1], bool)
        body[int(delay.min()) - 25: int(delay.max()) + 25] = True
        elsewhere = ~body & (extractor.gate[p] > 0)
        ratio_db = 10 * np.log10(np.mean(kernels[p, body] ** 2) / np.mean(kernels[p, elsewhere] ** 2))
        print(f"pair {p}: body span / elsewhere {ratio_db:.1f} dB")
        assert ratio_db > 10
