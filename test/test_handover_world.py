"""The demo world is a handover (sim/choreography.py): visitors stop with the offered hand 0.4-0.8 m from the rig's
manipulator frame, the hand stays in the camera image while offered, several offers a minute with both hands and
several statures; the joints-only 'offered' truth agrees with the script; rig files carry the manipulator frame."""

import numpy as np
import pytest

from av_pose_ros.primitives.geometry import apply_transform, invert_transform
from av_pose_ros.primitives.skeleton import JOINT_INDEX
from av_pose_ros.sim.choreography import HOLD_S, REACH_S, STAND_S, offered_hands, scene_motion
from av_pose_ros.sim.render import Simulator
from av_pose_ros.sim.rig import load_rig, rig_from_dict
from av_pose_ros.sim.scenario import load_scenario

SIM = Simulator()


def scenes(n=8):
    scenario = load_scenario("handover")
    return [scenario.sample(np.random.default_rng(seed)) for seed in range(n)]


def in_image(points, rig, margin=5.0) -> bool:
    optical = apply_transform(invert_transform(rig.base_from_optical), points)
    uv = rig.intrinsics.camera_model().project(optical)
    w, h = rig.intrinsics.width, rig.intrinsics.height
    return bool(np.all(optical[:, 2] > 0) and np.all((uv >= margin) & (uv <= np.array([w, h]) - 1 - margin)))


def test_rig_names_the_manipulator_frame():
    rig = load_rig("default")
    assert rig.manipulator_frame == "arm_base_link"
    assert rig.manipulator_position() == pytest.approx(rig.frames["arm_base_link"][:3, 3])
    base = {"speakers": [[0, 0.3, 0]], "mics": [[0, 0.25, 0]]}
    assert rig_from_dict(base).frames == {} and rig_from_dict(base).manipulator_frame is None
    with pytest.raises(ValueError, match="manipulator_frame"):
        rig_from_dict({**base, "manipulator_frame": "arm"})
    with pytest.raises(ValueError, match="xyz"):
        rig_from_dict({**base, "frames": {"arm": {"xyz": [1, 2]}}})


@pytest.mark.parametrize("scene", scenes(), ids=lambda s: f"h{s.person.stature_m:.2f}")
def test_every_offer_is_within_reach_and_in_view(scene):
    motion = scene_motion(scene)
    arm = scene.rig.manipulator_position()
    t = 0.0
    for visit in motion.visits:
        hold = t + visit.path_m / motion.walking_speed(visit.stature_m) + STAND_S + REACH_S
        for u in np.linspace(hold, hold + HOLD_S, 4):
            joints = SIM.joints_at(scene, u)                      # jittered, as rendered
            assert motion.offer_at(u) == (visit.hand, pytest.approx(1.0))
            wrist = joints[JOINT_INDEX[f"{visit.hand}_wrist"]]
            assert 0.4 <= np.linalg.norm(wrist - arm) <= 0.8
            arm_joints = joints[[JOINT_INDEX[f"{visit.hand}_wrist"], JOINT_INDEX[f"{visit.hand}_elbow"]]]
            assert in_image(arm_joints, scene.rig), (visit, u)
        t += motion.visit_period_s(visit)


def test_a_minute_holds_several_offers_both_hands_several_statures():
    for scene in scenes(4):
        motion = scene_motion(scene)
        ts = np.arange(0.0, 60.0, 0.1)
        hands = [motion.offer_at(t)[0] for t in ts]
        starts = [t for t, a, b in zip(ts[1:], hands, hands[1:]) if a is None and b is not None]
        assert len(starts) >= 4
        assert {"left", "right"} <= set(hands)
        statures = {round(motion.stature_at(t), 3) for t in ts}
        assert len(statures) >= 4 and max(statures) - min(statures) >= 0.05
        held = np.mean([motion.offer_at(t)[1] > 0.99 for t in ts]) * 60
        assert held >= 12.0                                       # seconds a minute with a hand held still


def test_offered_truth_from_joints_agrees_with_the_script():
    scene = scenes(2)[1]
    motion = scene_motion(scene)
    disagree = 0
    for t in np.arange(0.0, 40.0, 0.1):
        hand, weight = motion.offer_at(t)
        truth = {hand} if hand is not None and weight >= 0.55 else set()
        half_way = hand is not None and abs(weight - 0.5) < 0.1     # the criterion's edge, either answer is fine
        if not half_way and offered_hands(SIM.joints_at(scene, t)) != truth:
            disagree += 1
    assert disagree == 0
