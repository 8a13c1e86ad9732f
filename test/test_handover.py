"""Handover core: the offered hand is chosen and kept, the filter tracks a moving hand, the envelope is centred on
the reach frame, `reachable` needs confidence and stillness, the state runs idle -> offered -> ready -> withdrawn
-> idle; and handover_node over real DDS: target in the base frame through TF, every state change on
handover/state (transient-local), diagnostics for bad input and missing TF."""

import time
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from av_pose_ros.handover import (
    IDLE,
    OFFERED,
    READY,
    WITHDRAWN,
    ConstantVelocityFilter,
    HandoverState,
    HandSelector,
    ReachEnvelope,
    Readiness,
    ReadyRule,
    StateRule,
    approach_orientation,
    most_urgent,
)
from av_pose_ros.handover.selection import offer_score
from av_pose_ros.pipeline.common import StageError
from av_pose_ros.pipeline.handover import HandoverTracker
from av_pose_ros.primitives.geometry import apply_transform, make_transform, matrix_from_quaternion, rot_z
from av_pose_ros.primitives.skeleton import COCO17_JOINTS, JOINT_INDEX
from av_pose_ros.primitives.transform_tree import TransformError
from av_pose_ros.sim.body import POSE_LIBRARY, blend, body_joints, place_in_world

from conftest import REPO

ROBOT = np.zeros(3)
ARM = np.array([0.25, 0.0, 0.95])          # config/rigs/default.yaml arm_base_link
BASE_FROM_CAM = make_transform(rot_z(0.3), (0.1, -0.05, 1.2))


def person(pose, x: float = 1.2) -> np.ndarray:
    """A 1.7 m person at (x, 0) facing the robot at the origin."""
    return place_in_world(body_joints(1.7, pose), (x, 0.0), np.pi)


def params(**overrides) -> SimpleNamespace:
    """handover_node's parameters as config/handover_node.yaml sets them (plain values: the stage is ROS-free)."""
    values = yaml.safe_load((REPO / "config" / "handover_node.yaml").read_text())["handover_node"]["ros__parameters"]
    values.update(overrides)
    return SimpleNamespace(**values)


def lookup_with(frames: dict):
    """A TF lookup over fixed transforms base_link <- frame (what a TF buffer gives the stage)."""
    def lookup(target, source, stamp_ns=0):
        if target != "base_link" or source not in frames:
            raise TransformError(f"no {target} <- {source}")
        return frames[source]
    return lookup


LOOKUP = lookup_with({"base_link": np.eye(4), "camera_link": BASE_FROM_CAM, "camera_optical_frame": BASE_FROM_CAM,
                      "arm_base_link": make_transform(None, ARM)})


def pose_at(joints_base: np.ndarray, stamp_ns: int, confidence: float = 0.9, std_m: float = 0.03,
            frame: str = "camera_link"):
    joints = apply_transform(np.linalg.inv(BASE_FROM_CAM), joints_base) if frame == "camera_link" else joints_base
    return SimpleNamespace(stamp_ns=stamp_ns, frame_id=frame, body_id="b1", joint_names=list(COCO17_JOINTS),
                           joints=joints, confidence=np.full(17, confidence),
                           covariance=np.tile(np.eye(3) * std_m**2, (17, 1, 1)))


def offer_sequence(x: float = 1.25, hand: str = "right"):
    """(seconds, blend weight) of one offer at 10 Hz: 1 s rest, 1 s reach out, 2 s hold, 1 s back, 2 s rest."""
    times = np.arange(0.0, 7.0, 0.1)
    w = np.clip(np.minimum(times - 1.0, 5.0 - times), 0.0, 1.0)
    w = 0.5 - 0.5 * np.cos(np.pi * w)
    offer = POSE_LIBRARY[f"offer_{hand}"]
    return [(t, wi, person(blend(POSE_LIBRARY["standing"], offer, wi), x)) for t, wi in zip(times, w)]


@pytest.mark.parametrize("pose, hand", [("offer_right", "right"), ("offer_left", "left"), ("standing", None)])
def test_selector_finds_the_offered_hand(pose, hand):
    choice = HandSelector().select(person(pose), np.ones(17), ROBOT)
    assert (choice.hand if choice else None) == hand
    if choice:
        assert choice.wrist == pytest.approx(person(pose)[JOINT_INDEX[f"{hand}_wrist"]])


def test_offer_needs_the_arm_towards_the_robot():
    facing = person("offer_right")
    away = place_in_world(body_joints(1.7, "offer_right"), (1.2, 0.0), 0.0)  # back turned to the robot
    assert offer_score(facing, "right", ROBOT) > offer_score(away, "right", ROBOT) + 0.3
    # "towards the robot" means towards the reach frame: the same arm scores lower for an arm frame behind the
    # person than for one in front
    assert offer_score(facing, "right", ARM) > offer_score(facing, "right", np.array([3.0, 0.0, 1.0])) + 0.3


def test_selector_hysteresis_and_low_confidence():
    selector = HandSelector(switch_margin=0.5)
    joints = person("offer_right")
    assert selector.select(joints, np.ones(17), ROBOT).hand == "right"
    both = joints.copy()
    both[[JOINT_INDEX["left_elbow"], JOINT_INDEX["left_wrist"]]] = person("offer_left")[
        [JOINT_INDEX["left_elbow"], JOINT_INDEX["left_wrist"]]]
    assert selector.select(both, np.ones(17), ROBOT).hand == "right"  # left is as good, not better by the margin
    conf = np.ones(17)
    conf[JOINT_INDEX["right_wrist"]] = 0.0
    assert selector.select(both, conf, ROBOT).hand == "left"  # an unseen right wrist cannot be the offered hand


def test_filter_tracks_constant_velocity_and_resets_after_a_gap():
    f = ConstantVelocityFilter(accel_std=0.1)
    rng = np.random.default_rng(0)
    v = np.array([0.3, -0.1, 0.05])
    for k in range(60):
        t = k * 0.1
        pos, vel = f.update(np.array([1.0, 0.0, 1.0]) + v * t + rng.normal(0, 0.01, 3), np.eye(3) * 1e-4,
                            int(t * 1e9))
    assert vel == pytest.approx(v, abs=0.05)
    assert pos == pytest.approx(np.array([1.0, 0.0, 1.0]) + v * 5.9, abs=0.02)
    pos, vel = f.update(np.array([5.0, 5.0, 5.0]), np.eye(3) * 1e-4, int(9e9))  # 3 s later: a new track
    assert pos == pytest.approx([5, 5, 5]) and vel == pytest.approx([0, 0, 0])


def test_reach_envelope_and_orientation():
    env = ReachEnvelope((0.0, 0.0, 0.3), 0.25, 0.85, 0.2, 1.8)
    assert env.contains(np.array([0.6, 0.0, 0.4]))
    assert not env.contains(np.array([1.2, 0.0, 0.4])) and not env.contains(np.array([0.3, 0.0, 0.1]))
    assert env.distance(np.array([0.0, 0.4, 0.3])) == pytest.approx(0.4)
    q = approach_orientation(np.array([1.0, 0.0, 1.0]), np.array([0.7, 0.0, 1.0]))  # forearm points at -x
    r = matrix_from_quaternion(q)
    assert r[:, 0] == pytest.approx([-1, 0, 0]) and r[:, 2] == pytest.approx([0, 0, 1])


def test_readiness_needs_stillness_confidence_and_time():
    rule = ReadyRule(hold_s=0.5, max_speed_mps=0.15, min_confidence=0.5, max_position_std_m=0.08)
    r = Readiness()
    ok = dict(inside=True, confidence=0.9, std_m=0.03, speed_mps=0.05, rule=rule)
    assert [r.update(int(t * 1e9), **ok) for t in (0.0, 0.2, 0.4, 0.6)] == [False, False, False, True]
    assert r.held_s(int(0.6e9)) == pytest.approx(0.6)
    for spoiler in ({"speed_mps": 0.3}, {"confidence": 0.3}, {"std_m": 0.12}, {"inside": False}):
        assert not r.update(int(0.7e9), **{**ok, **spoiler})   # any condition failing: not reachable ...
        assert not r.update(int(0.8e9), **ok)                  # ... and the hold starts again
        assert r.update(int(1.3e9), **ok)


def test_state_machine_and_priority():
    s = HandoverState()
    seq = [(0.0, False, False), (0.1, True, False), (0.2, True, True), (0.3, False, False), (0.9, False, False),
           (1.4, False, False)]
    no_dwell = StateRule(enter_dwell_s=0.0, leave_dwell_s=0.0, withdrawn_s=1.0)
    assert [s.update(int(t * 1e9), o, r, no_dwell) for t, o, r in seq] == [
        IDLE, OFFERED, READY, WITHDRAWN, WITHDRAWN, IDLE]
    assert most_urgent([IDLE, WITHDRAWN, READY, OFFERED]) == READY and most_urgent([]) == IDLE


def test_stage_reach_frame_states_and_truthful_reachable():
    stage = HandoverTracker(params())
    states, outputs = [], []
    t0 = 5_000_000_000
    for t, w, joints in offer_sequence():
        out = stage.on_pose(pose_at(joints, t0 + int(t * 1e9)), LOOKUP)
        if not states or states[-1] != out.state:
            assert out.state_changed or not states
            states.append(out.state)
        outputs.append((t, w, joints, out))
    assert states == [IDLE, OFFERED, READY, OFFERED, WITHDRAWN, IDLE]   # ready -> offered: the hand moves back
    targets = [(t, w, j, o.target) for t, w, j, o in outputs if o.target is not None]
    for _, w, joints, target in targets:
        # centred on arm_base_link, in the base frame
        assert target.distance == pytest.approx(np.linalg.norm(target.position - ARM), abs=1e-6)
        if target.reachable:
            # only while the hand is out and (nearly) still: the true wrist is within 3 cm (the filter, smoothing
            # a held hand with accel_std 0.5 m/s^2, lags the first 100 ms of a withdrawal by ~2 cm)
            assert w > 0.9 and 0.4 <= target.distance <= 0.8
            assert target.position == pytest.approx(joints[JOINT_INDEX["right_wrist"]], abs=0.03)
            x_axis = matrix_from_quaternion(target.orientation)[:, 0]
            forearm = joints[JOINT_INDEX["right_wrist"]] - joints[JOINT_INDEX["right_elbow"]]
            assert x_axis == pytest.approx(forearm / np.linalg.norm(forearm), abs=1e-6)
    reachable_s = [t for t, _, _, target in targets if target.reachable]
    assert reachable_s and min(reachable_s) >= 2.0 + 0.5 - 1e-6    # hold (from 2 s) + hold_s
    assert len(reachable_s) >= 10
    assert not stage.tracks or stage.on_clock(t0 + int(9e9)).state == IDLE


def test_clock_times_arrivals_not_stamps():
    """Poses arrive 0.8 s after their stamps (a slow lifter): that is no reason to withdraw; no poses for
    track_timeout_s of clock time is, and withdrawn_s later the state is idle."""
    stage = HandoverTracker(params())
    latency, t0 = int(0.8e9), 5_000_000_000
    held = [(t, j) for t, w, j in offer_sequence() if t <= 3.5]          # up to the middle of the hold
    for t, joints in held:
        stamp = t0 + int(t * 1e9)
        out = stage.on_pose(pose_at(joints, stamp), LOOKUP)
        assert stage.on_clock(stamp + latency).state == out.state        # ticks between poses change nothing
    assert out.state == READY
    clock = t0 + int(3.5e9) + latency
    states = [stage.on_clock(clock + int(k * 1e8)).state for k in range(1, 40)]   # 3.9 s of ticks, no poses
    first_withdrawn = states.index(WITHDRAWN)
    assert 9 <= first_withdrawn <= 11                                     # ~track_timeout_s (1.0 s)
    assert states[first_withdrawn + 11:] and set(states[first_withdrawn + 11:]) == {IDLE}   # + withdrawn_s
    assert not stage.tracks


def test_stage_refuses_unconfident_hands_and_follows_the_reach_frame():
    for kwargs in ({"confidence": 0.4}, {"std_m": 0.1}):
        stage = HandoverTracker(params())
        outs = [stage.on_pose(pose_at(j, int((5 + t) * 1e9), **kwargs), LOOKUP) for t, _, j in offer_sequence()]
        assert not any(o.target.reachable for o in outs if o.target), kwargs
        assert READY not in {o.state for o in outs} and OFFERED in {o.state for o in outs}
    # an arm without human proportions (the lifter put the wrist 20 cm beyond a plausible forearm) is no target
    stage = HandoverTracker(params())
    outs = []
    for t, _, j in offer_sequence():
        j = j.copy()
        e, w = JOINT_INDEX["right_elbow"], JOINT_INDEX["right_wrist"]
        j[w] = j[e] + (j[w] - j[e]) * 1.8
        outs.append(stage.on_pose(pose_at(j, int((5 + t) * 1e9)), LOOKUP))
    assert any(o.target for o in outs) and not any(o.target.reachable for o in outs if o.target)
    # the arm frame 2 m to the side: the same hand is out of reach (and the envelope distance follows the frame)
    far = lookup_with({"camera_link": BASE_FROM_CAM, "camera_optical_frame": BASE_FROM_CAM,
                       "arm_base_link": make_transform(None, (0.25, 2.0, 0.95))})
    stage = HandoverTracker(params())
    outs = [stage.on_pose(pose_at(j, int((5 + t) * 1e9)), far) for t, _, j in offer_sequence()]
    targets = [o.target for o in outs if o.target]
    assert targets and not any(t.reachable for t in targets) and min(t.distance for t in targets) > 1.5


def test_stage_errors_and_time_jump():
    stage = HandoverTracker(params(require_bone_lengths=False))   # arm out from the start, lifted exactly
    joints = person("offer_right", 1.25)
    with pytest.raises(StageError) as err:
        stage.on_pose(pose_at(joints, 10**9), lookup_with({"camera_link": BASE_FROM_CAM}))
    assert err.value.code == "tf" and "arm_base_link" in str(err.value)
    bad = pose_at(joints, 10**9)
    bad.joint_names = list(reversed(COCO17_JOINTS))
    with pytest.raises(StageError):
        stage.on_pose(bad, LOOKUP)
    for k in range(10):
        out = stage.on_pose(pose_at(joints, 100 * 10**9 + k * 10**8), LOOKUP)
    assert not out.time_jumped and out.state == READY
    out = stage.on_pose(pose_at(joints, 10**9), LOOKUP)          # a bag loop: stamps back by 99 s
    assert out.time_jumped and out.state == IDLE and out.target is None   # a fresh track: the offer dwell again
    for k in range(1, 4):
        out = stage.on_pose(pose_at(joints, 10**9 + k * 10**8), LOOKUP)
    assert out.state == OFFERED and not out.target.reachable                    # after enter_dwell_s (0.2 s)


def test_handover_node_states_over_dds(ros_context):
    from std_msgs.msg import String

    from av_pose_ros.msg import HandoverTarget, HumanPose3D
    from av_pose_ros.ros.conversions import Pose3D, handover_from_msg, pose3d_to_msg
    from av_pose_ros.ros.diagnostics import OK
    from av_pose_ros.ros.qos import RESULT_QOS, STATIC_QOS
    from av_pose_ros.ros.tf import TfPublisher, transform_msg

    from ros_harness import NodeProcess, Probe, wait_for_subscriber

    probe = Probe(ros_context)
    poses = probe.publisher(HumanPose3D, "human/pose_3d", RESULT_QOS)
    infos = probe.collect(HandoverTarget, "handover/target_info", RESULT_QOS)
    states = probe.collect(String, "handover/state", STATIC_QOS)
    tf = TfPublisher(probe.node)

    def pose_msg(joints_base, frame="camera_link"):
        joints = apply_transform(np.linalg.inv(BASE_FROM_CAM), joints_base)
        return pose3d_to_msg(Pose3D(time.time_ns(), frame, "b1", joints, np.full(17, 0.9, np.float32),
                                    np.tile(np.eye(3) * 0.03**2, (17, 1, 1))))

    with NodeProcess("handover_node") as node:
        try:
            wait_for_subscriber(probe, poses, 60.0)
            assert probe.spin_until(lambda: [m.data for m in states] == [IDLE], 20.0)   # latched initial state
            # Missing TF: a diagnostic, no target.
            assert probe.publish_until(poses, pose_msg(person("offer_right", 1.25)),
                                       lambda: "tf" in probe.diagnostic_message("handover_node"))
            assert not infos
            tf.send_static([transform_msg("base_link", "camera_link", BASE_FROM_CAM, 0),
                            transform_msg("base_link", "camera_optical_frame", BASE_FROM_CAM, 0),
                            transform_msg("base_link", "arm_base_link", make_transform(None, ARM), 0)])
            probe.spin_for(0.5)
            for _, _, joints in offer_sequence():                  # real time: 10 Hz, stamps from the clock
                poses.publish(pose_msg(joints))
                probe.spin_for(0.1)
            # after the last pose the clock alone takes withdrawn back to idle
            assert probe.spin_until(lambda: states[-1].data == IDLE and len(states) >= 6, 10.0), \
                [m.data for m in states]
            seen = [m.data for m in states]
            assert seen == [IDLE, OFFERED, READY, OFFERED, WITHDRAWN, IDLE], seen
            targets = [handover_from_msg(m) for m in infos]
            assert all(t.frame_id == "base_link" and t.hand == "right" and t.body_id == "b1" for t in targets)
            assert any(t.reachable for t in targets) and all(m.state == READY for m in infos if m.reachable)
            ready = [t for t in targets if t.reachable]
            assert ready[-1].distance == pytest.approx(np.linalg.norm(ready[-1].position - ARM), abs=1e-4)
            # the last reachable target can be the first 100 ms of the withdrawal: the filter lags it by ~2 cm
            assert ready[-1].position == pytest.approx(person("offer_right", 1.25)[JOINT_INDEX["right_wrist"]],
                                                       abs=0.03)
            assert probe.spin_until(lambda: probe.diagnostic_level("handover_node") == OK, 10.0)

            # a task layer that starts late gets the current state (transient local)
            late = Probe(ros_context, "late_task_layer")
            try:
                late_states = late.collect(String, "handover/state", STATIC_QOS)
                assert late.spin_until(lambda: [m.data for m in late_states] == [IDLE], 20.0)
            finally:
                late.close()

            # Malformed pose (NaN): a diagnostic, the node stays up and recovers.
            bad = pose_msg(person("offer_right", 1.25))
            bad.positions[3].x = float("nan")
            assert probe.publish_until(poses, bad, lambda: "NaN" in probe.diagnostic_message("handover_node"))
            count = len(infos)
            for _ in range(20):     # fresh stamps at 10 Hz: the offer is seen for enter_dwell_s, then targeted
                poses.publish(pose_msg(person("offer_right", 1.25)))
                if probe.spin_until(lambda: len(infos) > count, 0.1):
                    break
            assert len(infos) > count and node.alive()
        finally:
            probe.close()
