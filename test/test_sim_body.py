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
