"""The simulated head hears a steady source (sim_node `head_sound`, slfm/head_sound.py): the rendering itself against
oracles (block-wise rendering is one long rendering cut in pieces; the interaural delay puts the source on its side,
mirrored to the front; a turn moves a source behind the head the other way than its mirror), and the live sim graph
over DDS: sim_node turns the head and publishes its camera and binaural/frames, slfm_node integrates the turn from
the images and resolves the source behind the head from the sound alone."""

import math

import numpy as np
import pytest

from av_pose_ros.slfm.baselines import gcc_phat_azimuth
from av_pose_ros.slfm.head_sound import HeadSoundConfig, HeadSoundScene
from av_pose_ros.slfm.rooms import fold_front
from av_pose_ros.slfm.tracking import wrap_angle

from ros_harness import REPO, NodeProcess, Probe

WIDE = REPO / "models" / "slfm_rotation_wide.pt"
SOURCE_DEG = 145.0


def test_blocks_are_one_rendering_cut_in_pieces():
    scene = HeadSoundScene(3, HeadSoundConfig(snr_db=None))
    whole = scene.render(0, 4800, 0.2)
    pieces = np.concatenate([scene.render(k * 1600, 1600, 0.2) for k in range(3)], axis=1)
    np.testing.assert_allclose(pieces, whole, atol=1e-6)
    assert whole.shape == (2, 4800) and 0.01 < np.std(whole) < 0.5


def direct_path_azimuth(scene: HeadSoundScene, yaw: float) -> float:
    """Front-folded azimuth (deg) from GCC-PHAT between the ears' responses up to just after the direct sound."""
    return math.degrees(gcc_phat_azimuth(scene.response(yaw)[:, :scene.direct_samples() + 24]))


@pytest.mark.parametrize("source_deg", [60.0, -30.0, SOURCE_DEG])
def test_the_ears_place_the_source_on_its_side(source_deg):
    """The interaural delay of the direct sound gives the front-folded true azimuth (the sphere cannot tell front
    from back); a whole second of reverberant noise gives the same, less exactly (GCC-PHAT is not robust to the
    room, which is what slfm_node's learned model is for)."""
    scene = HeadSoundScene(5, HeadSoundConfig(azimuth_rad=math.radians(source_deg)))
    assert math.degrees(scene.azimuth(0.0)) == pytest.approx(source_deg)
    folded = math.degrees(float(fold_front(math.radians(source_deg))))
    assert direct_path_azimuth(scene, 0.0) == pytest.approx(folded, abs=5.0)
    assert math.degrees(gcc_phat_azimuth(scene.render(0, 16000, 0.0))) == pytest.approx(folded, abs=10.0)


def test_a_turn_moves_a_source_behind_the_other_way_than_its_mirror():
    """Head turned 20 deg left: a source behind-left (145 deg) goes to 125 deg, folded 55 (more lateral); its mirror
    in front (35 deg) would go to 15 (less lateral). The ears must follow the source, not the mirror."""
    scene = HeadSoundScene(5, HeadSoundConfig(azimuth_rad=math.radians(SOURCE_DEG)))
    assert direct_path_azimuth(scene, math.radians(20.0)) - direct_path_azimuth(scene, 0.0) == pytest.approx(
        20.0, abs=6.0)


def test_a_wrong_kind_is_refused():
    with pytest.raises(ValueError, match="noise"):
        HeadSoundScene(0, HeadSoundConfig(kind="speech"))


@pytest.mark.skipif(not WIDE.exists(), reason="no shipped wide rotation model")
def test_sim_graph_head_hears_a_source_behind_and_slfm_node_resolves_it(ros_context):
    from av_pose_ros.msg import HeadRotation, SoundDirection
    from av_pose_ros.ros.conversions import ns_from_time
    from av_pose_ros.ros.qos import RESULT_QOS

    probe = Probe(ros_context)
    truth = probe.collect(HeadRotation, "sim/head_yaw", RESULT_QOS)
    directions = probe.collect(SoundDirection, "slfm/sound_direction", RESULT_QOS)
    sim = {"head_motion": "steps", "head_motion_amplitude_deg": 20.0, "head_motion_period_s": 6.0,
           "head_camera_period_s": 0.3, "head_sound": "noise", "head_sound_azimuth_deg": SOURCE_DEG, "seed": 2}
    slfm = {"rotation_model_path": str(WIDE), "audio_window_s": 1.0, "audio_hop_s": 0.5}
    with NodeProcess("slfm_node", slfm) as slfm_node, NodeProcess("sim_node", sim) as sim_node:
        try:
            resolved = lambda: [d for d in directions if not d.front_back_folded]  # noqa: E731
            assert probe.spin_until(lambda: len(resolved()) >= 4, 90.0), (
                len(truth), len(directions), probe.diagnostic_message("slfm_node"), sim_node.stop(),
                slfm_node.stop())
            assert slfm_node.alive() and sim_node.alive()
        finally:
            probe.close()
    stamps = np.array([ns_from_time(t.header.stamp) for t in truth], float)
    yaws = np.array([t.integrated_yaw for t in truth])

    def true_azimuth(d) -> float:   # at the middle of its 1-s window
        return float(wrap_angle(math.radians(SOURCE_DEG) - np.interp(ns_from_time(d.header.stamp) + 5e8, stamps,
                                                                     yaws)))

    errors = [math.degrees(abs(wrap_angle(d.azimuth - true_azimuth(d)))) for d in resolved()]
    print("first azimuths deg", [round(math.degrees(d.azimuth)) for d in directions[:8]], "resolved errors deg",
          [round(e, 1) for e in errors])
    assert directions[0].front_back_folded and abs(directions[0].azimuth) <= math.pi / 2  # before any turn
    assert np.median(errors) < 15.0, errors
