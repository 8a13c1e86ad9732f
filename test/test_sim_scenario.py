"""Scenario and rig files: the shipped ones load and sample, broken ones fail with a message naming the key."""

import copy

import numpy as np
import pytest
import yaml

from av_pose_ros.sim.rig import find_config, load_rig
from av_pose_ros.sim.scenario import Scenario, ScenarioError, load_scenario

GOOD = yaml.safe_load(find_config("scenarios", "default").read_text())


@pytest.mark.parametrize("name", ["default", "children", "far", "music", "handover", "offers"])
def test_shipped_scenarios_sample_inside_their_ranges(name):
    scenario = load_scenario(name)
    rng = np.random.default_rng(0)
    for _ in range(20):
        scene = scenario.sample(rng)
        p = scene.person
        assert scenario.height[0] <= p.stature_m <= scenario.height[1]
        d = np.hypot(*np.subtract(p.position_xy, scene.rig.base_from_camera_link[:2, 3]))
        assert scenario.distance[0] - 1e-9 <= d <= scenario.distance[1] + 1e-9
        in_room = np.asarray(p.position_xy) + scene.base_in_room[:2]
        assert np.all(in_room > scenario.wall_margin - 1e-9)
        assert np.all(in_room < np.asarray(scene.room.size_m[:2]) - scenario.wall_margin + 1e-9)
        assert p.pose in scenario.poses and len(scene.audio.mic_gain_db) == 4


def broken(path, value):
    data = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize("path,value,message", [
    (("room",), KeyError, "'room' section missing"),
    (("room", "size_m"), {"x": [3, 4], "y": [3, 4]}, "x, y and z"),
    (("room", "absorption"), [0.6, 0.2], "low 0.6 > high 0.2"),
    (("room", "max_order"), 2.5, "max_order"),
    (("person", "height_m"), "tall", "person.height_m"),
    (("person", "poses"), ["standing", "dancing"], "person.poses"),
    (("person", "colour"), "red", "unknown keys ['colour']"),
    (("audio", "probe"), "whistle", "audio.probe"),
    (("audio", "snr_db"), [20, 40, 60], "audio.snr_db"),
    (("rig",), "no_such_rig", "no rig named 'no_such_rig'"),
    (("rig",), {"speakers": [[0, 0, 0]], "mics": [[0, 0]]}, "rig mics"),
    (("camera", "miss_rate"), 2.0, "miss_rate"),
    (("room", "body_shadowing"), "yes", "room.body_shadowing must be true or false"),
    (("person", "girth"), [0.1, 1.0], "person.girth"),
    (("person", "joint_angle_poses"), 1.5, "person.joint_angle_poses"),
    (("audio", "noise"), {"hum": 1.0}, "audio.noise must name kinds"),
    (("audio", "thermometer_error_c"), -1.0, "audio.thermometer_error_c"),
    (("camera", "tail_dof"), 1.5, "tail_dof"),
    (("extra",), 1, "unknown top-level keys"),
])
def test_schema_errors_are_clear(path, value, message):
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(broken(path, value))
    print(info.value)
    assert message in str(info.value)


def test_room_too_small_for_the_distance_is_reported():
    data = broken(("person", "distance_m"), [8.0, 9.0])
    with pytest.raises(ScenarioError, match="no drawn room fits"):
        Scenario.from_dict(data).sample(np.random.default_rng(0))


def test_rigs_and_inline_rig():
    rig = load_rig("default")
    assert rig.pairs.tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]
    np.testing.assert_allclose(rig.direct_path_m(), 0.06)
    np.testing.assert_allclose(rig.speakers_base()[:, 2], rig.speakers[:, 2] + 1.2)
    assert rig.intrinsics.K[0, 0] == pytest.approx(320 / np.tan(np.radians(32.5)))
    assert load_rig("compact").pairs.shape == (16, 2)
    inline = Scenario.from_dict(broken(("rig",), {"speakers": [[0, 0.3, 0]], "mics": [[0, 0.25, 0]]}))
    assert inline.rig.pairs.tolist() == [[0, 0]]


def test_new_effects_have_defaults_and_can_be_turned_off():
    old = Scenario.from_dict(GOOD)                          # a wave-1 file: no new key, every effect at its default
    assert old.physics.body_wall_paths and old.physics.body_shadowing
    scene = old.sample(np.random.default_rng(1))
    assert scene.audio.noise_mix == (1.0, 0.0, 0.0) and scene.truth.temperature_error_c == 0.0
    assert 0.85 <= scene.person.girth <= 1.25 and scene.person.roughness_m > 0
    data = copy.deepcopy(GOOD)
    data["room"].update(body_wall_paths=False, body_shadowing=False)
    data["person"].update(yaw_offset_deg=0, girth=1.0, shoulder_width=1.0, clothing_absorption=0.0,
                          surface_roughness_mm=0.0, pose_drift_deg=0.0, sway_m=0.0)
    off = Scenario.from_dict(data)
    scene = off.sample(np.random.default_rng(1))
    assert not off.physics.body_wall_paths and not off.physics.body_shadowing
    assert (scene.person.girth, scene.person.clothing_absorption, scene.person.roughness_m) == (1.0, 0.0, 0.0)


def test_joint_angle_poses_noise_mix_and_calibration_errors_are_drawn():
    data = copy.deepcopy(GOOD)
    data["person"]["joint_angle_poses"] = 1.0
    data["audio"].update(noise={"white": 0.2, "pink": [0.3, 0.5], "babble": 0.3}, impulse_rate_hz=2.0,
                         thermometer_error_c=2.0, position_error_m=0.01, camera_rotation_error_deg=0.5,
                         camera_position_error_m=0.01)
    scenario = Scenario.from_dict(data)
    rng = np.random.default_rng(2)
    temps, shifts, angles = [], [], []
    for _ in range(100):
        scene = scenario.sample(rng)
        assert scene.person.pose == "joint_angles"
        assert sum(scene.audio.noise_mix) == pytest.approx(1.0) and scene.audio.noise_mix[1] > 0.2
        t = scene.truth
        temps.append(t.temperature_error_c)
        shifts.append(np.linalg.norm(np.r_[t.speaker_offsets_m, t.mic_offsets_m], axis=1).max())
        angles.append(np.degrees(np.arccos(np.clip((np.trace(t.camera_rotation) - 1) / 2, -1, 1))))
        assert np.linalg.norm(t.camera_offset_m) <= 0.01 + 1e-12
    assert max(np.abs(temps)) <= 2.0 and max(np.abs(temps)) > 1.5
    assert max(shifts) <= 0.01 + 1e-12 and max(angles) <= 0.5 + 1e-9 and max(angles) > 0.3
