"""Parametric body: stature scaling, sides, pose library, motions and the sampled surface."""

import numpy as np
import pytest

from av_pose_ros.primitives.skeleton import COCO17_JOINTS, JOINT_INDEX, LEFT_RIGHT_SWAP
from av_pose_ros.sim.body import POSE_LIBRARY, POSE_NAMES, Proportions, body_joints, facing_yaw, place_in_world
from av_pose_ros.sim.choreography import Motion
from av_pose_ros.sim.surface import body_capsules, sample_surface, visible_from


def crown_height(stature):
    j = body_joints(stature, "standing")
    p = Proportions.for_stature(stature)
    head_centre = 0.5 * (j[JOINT_INDEX["left_ear"]] + j[JOINT_INDEX["right_ear"]])
    return head_centre[2] + 0.5 * p.head


@pytest.mark.parametrize("stature", [1.0, 1.3, 1.7, 2.0])
def test_standing_body_is_as_tall_as_its_stature(stature):
    assert crown_height(stature) == pytest.approx(stature, abs=0.01 * stature)


def test_adults_scale_linearly_children_have_bigger_heads():
    a, b = body_joints(1.7), body_joints(2.0)
    np.testing.assert_allclose(b, a * 2.0 / 1.7, atol=1e-9)
    child, adult = Proportions.for_stature(1.0), Proportions.for_stature(1.8)
    assert child.head / child.stature > adult.head / adult.stature + 0.03


def test_left_joints_are_on_the_left():
    j = body_joints(1.7, "standing")              # body frame: x forward, y left
    for name in COCO17_JOINTS:
        if name.startswith("left_"):
            assert j[JOINT_INDEX[name], 1] > 0, name
            assert j[LEFT_RIGHT_SWAP[JOINT_INDEX[name]], 1] < 0
    assert j[JOINT_INDEX["nose"], 0] > j[JOINT_INDEX["left_ear"], 0]   # the face points forward


@pytest.mark.parametrize("pose", POSE_NAMES)
def test_every_library_pose_is_valid(pose):
    j = body_joints(1.6, pose)
    assert j.shape == (17, 3) and np.all(np.isfinite(j))
    assert j[:, 2].min() == pytest.approx(0.039 * 1.6, abs=1e-6)      # a foot on the floor, none below
    bones = [np.linalg.norm(j[JOINT_INDEX["left_elbow"]] - j[JOINT_INDEX["left_wrist"]]),
             np.linalg.norm(j[JOINT_INDEX["right_knee"]] - j[JOINT_INDEX["right_ankle"]])]
    np.testing.assert_allclose(bones, [0.146 * 1.6, Proportions.for_stature(1.6).shank])


def test_poses_do_what_their_names_say():
    stand = body_joints(1.7, "standing")
    lw, rw, nose = JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"], JOINT_INDEX["nose"]
    assert body_joints(1.7, "arms_raised")[[lw, rw], 2].min() > stand[nose, 2]
    assert body_joints(1.7, "offer_left")[lw, 0] > stand[lw, 0] + 0.25
    assert body_joints(1.7, "offer_right")[rw, 0] > stand[rw, 0] + 0.25
    assert body_joints(1.7, "reach_left")[lw, 1] > stand[lw, 1] + 0.2
    assert body_joints(1.7, "reach_right")[rw, 1] < stand[rw, 1] - 0.2
    assert body_joints(1.7, "sitting")[JOINT_INDEX["left_hip"], 2] < 0.7 * stand[JOINT_INDEX["left_hip"], 2]
    assert body_joints(1.7, "squatting")[JOINT_INDEX["left_hip"], 2] < body_joints(1.7, "sitting")[11, 2]
    np.testing.assert_allclose(POSE_LIBRARY["offer_right"].mirrored().l_lower, POSE_LIBRARY["offer_left"].l_lower)


def test_motions_move():
    walk = Motion("walking", 1.7)
    (_, a, _), (_, b, _) = walk.at(0.0), walk.at(0.5)
    assert np.linalg.norm(b - a) == pytest.approx(0.5 * walk.speed, rel=1e-6)
    offer = Motion("offer_left", 1.7, offer_period_s=4.0)
    wrist_x = [body_joints(1.7, offer.at(t)[0])[JOINT_INDEX["left_wrist"], 0] for t in (0.0, 2.0)]
    assert wrist_x[1] > wrist_x[0] + 0.25


def test_a_walker_with_no_room_to_walk_steps_on_the_spot():
    """A walker 0.8 m or less from the camera has a zero-length path (it crashed the generator: 0 / 0)."""
    walk = Motion("walking", 1.7, path_length_m=0.0)
    (pose_a, a, _), (pose_b, b, _) = walk.at(0.0), walk.at(0.4)
    assert np.all(np.isfinite(a)) and np.allclose(a, b)
    moved = np.abs(body_joints(1.7, pose_b) - body_joints(1.7, pose_a)).max()
    assert moved > 0.05                                      # the legs still swing


def test_placement_faces_the_camera():
    position = (3.0, 1.0)
    yaw = facing_yaw(position, (0.0, 0.0))
    j = place_in_world(body_joints(1.7), position, yaw)
    nose, ear = j[JOINT_INDEX["nose"]], j[JOINT_INDEX["left_ear"]]
    assert np.linalg.norm(nose[:2]) < np.linalg.norm(ear[:2])


def test_surface_visibility_front_not_back():
    j = place_in_world(body_joints(1.7), (2.0, 0.0), np.pi)       # facing a sensor at the origin
    surface = sample_surface(body_capsules(j, 1.7), 0.03)
    assert np.allclose(np.linalg.norm(surface.normals, axis=1), 1.0)
    seen = visible_from(surface, np.array([[0.0, 0.0, 1.2]]))[0]
    assert 0.15 < seen.mean() < 0.5
    # visible points face the sensor and are nearer to it than the body centre
    assert np.all(surface.points[seen, 0] < 2.0 + 0.05)


# -- body shape, turned bodies, joint-angle poses, slow motion (generator version 3) ----------------------------
def test_shoulder_width_and_girth_change_the_build_not_the_stature():
    from av_pose_ros.sim.surface import body_capsules

    base, broad = body_joints(1.7), body_joints(1.7, shoulder_width=1.1, hip_width=0.9)
    ls, rs, lh, rh = (JOINT_INDEX[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    p = Proportions.for_stature(1.7)
    assert np.linalg.norm(broad[ls] - broad[rs]) == pytest.approx(2 * p.shoulder_half_width * 1.1)   # oracle
    assert np.linalg.norm(broad[lh] - broad[rh]) == pytest.approx(2 * p.hip_half_width * 0.9)
    assert crown_height(1.7) == pytest.approx(np.max(base[:, 2]) + (crown_height(1.7) - base[:, 2].max()))
    np.testing.assert_allclose(broad[:, 2], base[:, 2], atol=1e-12)     # heights unchanged
    slim, heavy = body_capsules(base, 1.7, girth=0.85), body_capsules(base, 1.7, girth=1.25)
    trunk = 10                                                         # mid_shoulder - mid_hip capsule
    assert heavy[trunk, 6] / slim[trunk, 6] == pytest.approx(1.25 / 0.85)
    assert heavy[-1, 6] == slim[-1, 6]                                 # the head does not get fatter


def test_default_scenario_turns_people_up_to_90_degrees_and_varies_their_build():
    from av_pose_ros.sim.scenario import load_scenario

    scenario = load_scenario("default")
    rng = np.random.default_rng(3)
    offsets, girths = [], []
    for _ in range(300):
        scene = scenario.sample(rng)
        p = scene.person
        cam = scene.rig.base_from_camera_link[:2, 3]
        offsets.append(np.angle(np.exp(1j * (p.yaw - facing_yaw(p.position_xy, cam)))))
        girths.append(p.girth)
    offsets = np.degrees(offsets)
    assert offsets.min() < -75 and offsets.max() > 75 and np.all(np.abs(offsets) <= 90 + 1e-9)
    assert min(girths) < 0.9 and max(girths) > 1.2


def test_library_poses_are_special_cases_of_the_joint_limits():
    from av_pose_ros.sim.body import within_limits

    assert all(within_limits(POSE_LIBRARY[name]) for name in POSE_NAMES)
    bad = POSE_LIBRARY["standing"]
    import dataclasses
    hyper = dataclasses.replace(bad, l_thigh=(np.radians(30), 0.0), l_shank=(np.radians(80), 0.0))   # knee forward
    assert not within_limits(hyper)


def test_joint_angle_poses_stay_within_limits_keep_bone_lengths_and_vary():
    from av_pose_ros.sim.body import sample_joint_angle_pose, within_limits

    rng = np.random.default_rng(0)
    p = Proportions.for_stature(1.6)
    lw, le = JOINT_INDEX["left_wrist"], JOINT_INDEX["left_elbow"]
    wrists = []
    for _ in range(200):
        pose = sample_joint_angle_pose(rng, 1.6)
        assert within_limits(pose)
        j = body_joints(1.6, pose)
        assert np.linalg.norm(j[lw] - j[le]) == pytest.approx(p.forearm)
        assert j[:, 2].min() >= 0.5 * p.ankle_height - 1e-9      # no hand or knee through the floor
        wrists.append(j[lw])
    wrists = np.array(wrists)
    # the wrist covers the reachable shell: above the head, at the floor side, in front and behind
    assert wrists[:, 2].max() > 1.6 and wrists[:, 0].max() > 0.4 and wrists[:, 0].min() < -0.2


def test_people_drift_slowly_between_windows():
    import dataclasses

    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import load_scenario

    scene = load_scenario("default").sample(np.random.default_rng(5))
    scene = dataclasses.replace(scene, person=dataclasses.replace(scene.person, pose="standing"))
    sim = Simulator()
    t0 = scene.person.time_s
    a, b, later = (sim.joints_at(scene, t0 + dt) for dt in (0.0, 0.1, 3.0))
    step = np.linalg.norm(b - a, axis=1)
    assert 0.0005 < step.max() < 0.03          # successive 0.1 s windows differ by millimetres to centimetres
    assert np.linalg.norm(later - a, axis=1).max() > 3 * step.max()
    still = dataclasses.replace(scene, person=dataclasses.replace(scene.person, drift_rad=0.0, sway_m=0.0))
    np.testing.assert_allclose(sim.joints_at(still, t0), sim.joints_at(still, t0 + 0.1))
