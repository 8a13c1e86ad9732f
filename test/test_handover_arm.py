"""The offered arm rebuilt from the person's bone lengths (handover/arm.py): the ray geometry, the bone lengths
learnt from across-view frames only, the unscented covariance against Monte Carlo, and the stage with a lifter that
puts the offered arm's elbow and wrist too far along their camera rays (what the demo's lifter does)."""

import numpy as np
import pytest
from test_handover import BASE_FROM_CAM, LOOKUP, offer_sequence, params, person, pose_at

from av_pose_ros.handover.arm import ArmLengths, BoneLengths, point_on_ray, reconstruct_arm
from av_pose_ros.pipeline.handover import HandoverTracker
from av_pose_ros.primitives.skeleton import JOINT_INDEX

CAMERA = BASE_FROM_CAM[:3, 3]
ARM_JOINTS = [JOINT_INDEX[f"right_{j}"] for j in ("shoulder", "elbow", "wrist")]


def pushed(point, by_m):
    """`point` moved `by_m` farther from the camera along its ray (the lifter's depth error; bearing kept)."""
    ray = (point - CAMERA) / np.linalg.norm(point - CAMERA)
    return point + by_m * ray


def test_point_on_ray_roots_and_a_miss():
    camera, parent = np.zeros(3), np.array([1.0, 0.0, 0.0])
    child = np.array([0.7, 0.2, 0.0])
    length = float(np.linalg.norm(child - parent))
    near, ok = point_on_ray(camera, child * 1.5, parent, length, nearer=True)   # lifted 50 % too far
    assert ok and near == pytest.approx(child, abs=1e-9)
    far, ok = point_on_ray(camera, child * 1.5, parent, length, nearer=False)
    assert ok and np.linalg.norm(far - parent) == pytest.approx(length) and np.linalg.norm(far) > np.linalg.norm(near)
    closest, ok = point_on_ray(camera, np.array([0.0, 1.0, 0.0]), parent, 0.5, nearer=True)   # ray 1 m away
    assert not ok and closest == pytest.approx(np.zeros(3), abs=1e-9)


def test_reconstruct_arm_undoes_the_depth_error_and_its_covariance_matches_monte_carlo():
    joints = person("offer_right", 1.25)
    s, e, w = (joints[i] for i in ARM_JOINTS)
    lengths = ArmLengths(float(np.linalg.norm(e - s)), float(np.linalg.norm(w - e)), 0.02, 0.02)
    covs = (np.eye(3) * 0.03**2, np.eye(3) * 0.02**2, np.eye(3) * 0.02**2)
    fix = reconstruct_arm(CAMERA, s, pushed(e, 0.15), pushed(w, 0.3), covs, lengths)
    assert fix.consistent
    assert fix.elbow == pytest.approx(e, abs=1e-6) and fix.wrist == pytest.approx(w, abs=1e-6)
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(3000):
        noisy = [x + rng.multivariate_normal(np.zeros(3), c) for x, c in zip((s, pushed(e, 0.15), pushed(w, 0.3)),
                                                                             covs)]
        drawn = ArmLengths(lengths.upper_m + rng.normal(0, 0.02), lengths.fore_m + rng.normal(0, 0.02), 0.0, 0.0)
        samples.append(reconstruct_arm(CAMERA, *noisy, covs, drawn).wrist)
    mc = np.cov(np.array(samples).T)
    assert np.sqrt(np.linalg.eigvalsh(fix.wrist_cov).max()) == pytest.approx(np.sqrt(np.linalg.eigvalsh(mc).max()),
                                                                              rel=0.2)


def test_bone_lengths_come_from_across_view_bones_of_the_person_now():
    bones = BoneLengths(keep=10)
    conf = np.ones(17)
    offer = person("offer_right", 1.25)    # the forearm points at the camera: foreshortened, not measured
    for _ in range(20):
        bones.add(offer, conf, CAMERA, 0.2)
    assert len(bones.samples[("right", 1)]) == 0
    standing = person("standing", 1.25)    # arms hanging across the view
    for _ in range(4):
        bones.add(standing, conf, CAMERA, 0.2)
    assert bones.lengths("right", 5) is None
    bones.add(standing, conf, CAMERA, 0.2)
    fore = np.linalg.norm(standing[JOINT_INDEX["right_wrist"]] - standing[JOINT_INDEX["right_elbow"]])
    assert bones.lengths("right", 5).fore_m == pytest.approx(fore)
    low = conf.copy()
    low[JOINT_INDEX["left_wrist"]] = 0.05
    before = len(bones.samples[("left", 1)])
    bones.add(standing, low, CAMERA, 0.2)
    assert len(bones.samples[("left", 1)]) == before          # an unsure wrist measures nothing
    taller = standing.copy()
    e, w = JOINT_INDEX["right_elbow"], JOINT_INDEX["right_wrist"]
    taller[w] = taller[e] + (taller[w] - taller[e]) * 1.1
    for _ in range(10):
        bones.add(taller, conf, CAMERA, 0.2)
    assert bones.lengths("right", 5).fore_m == pytest.approx(1.1 * fore)   # the window holds the newest only


def lifted_badly(joints):
    """What the demo's lifter does to an offered arm: elbow and wrist on the right rays, too far along them."""
    out = joints.copy()
    s, e, w = ARM_JOINTS
    reach = float(np.linalg.norm(joints[w] - joints[s]))
    out[e] = pushed(joints[e], 0.15 * reach)
    out[w] = pushed(joints[w], 0.45 * reach)
    return out


@pytest.mark.parametrize("rebuild", [True, False])
def test_stage_targets_the_true_wrist_only_with_the_rebuild(rebuild):
    stage = HandoverTracker(params(arm_from_bone_lengths=rebuild))
    errors, reachable = [], 0
    for t, w, joints in offer_sequence():
        lifted = lifted_badly(joints) if w > 0.05 else joints     # hanging arms are lifted well
        out = stage.on_pose(pose_at(lifted, 5_000_000_000 + int(t * 1e9)), LOOKUP)
        if out.target is not None and w > 0.95:
            errors.append(np.linalg.norm(out.target.position - joints[JOINT_INDEX["right_wrist"]]))
            reachable += out.target.reachable
    assert errors
    if rebuild:
        assert np.median(errors) < 0.01 and reachable >= 10
    else:
        assert np.median(errors) > 0.15     # the lifted wrist, far behind the true one


def test_without_the_camera_frame_the_stage_still_targets_and_says_why():
    from test_handover import ARM, lookup_with

    from av_pose_ros.primitives.geometry import make_transform

    no_camera = lookup_with({"camera_link": BASE_FROM_CAM, "arm_base_link": make_transform(None, ARM)})
    stage = HandoverTracker(params())
    outs = [stage.on_pose(pose_at(j, 5_000_000_000 + int(t * 1e9)), no_camera) for t, _, j in offer_sequence()]
    assert any(o.target for o in outs) and all("camera_optical_frame" in o.note for o in outs)
    assert HandoverTracker(params()).on_pose(pose_at(person("standing"), 10**9), LOOKUP).note is None


def test_a_covariance_that_is_not_positive_definite_does_not_break_the_rebuild():
    joints = person("offer_right", 1.25)
    s, e, w = (joints[i] for i in ARM_JOINTS)
    lengths = ArmLengths(float(np.linalg.norm(e - s)), float(np.linalg.norm(w - e)), 0.02, 0.02)
    bad = -np.eye(3) * 0.01**2                      # from a broken publisher: negative variances
    fix = reconstruct_arm(CAMERA, s, pushed(e, 0.1), pushed(w, 0.2), (bad, np.zeros((3, 3)), bad), lengths)
    assert fix.wrist == pytest.approx(w, abs=1e-6) and np.all(np.isfinite(fix.wrist_cov))


@pytest.mark.parametrize("source", ["cnn_flagged", "vision_only"])
def test_poses_that_measured_nothing_teach_no_bone_lengths(source):
    """A refused lift and the vision-only fallback (no audio) measure no bone: only measured poses do."""
    from types import SimpleNamespace

    stage = HandoverTracker(params())
    standing = person("standing", 1.25)        # arms across the view: a measured pose would teach both bones
    for k in range(10):
        stage.on_pose(SimpleNamespace(**{**vars(pose_at(standing, 10**9 + k * 10**8)), "source": source}), LOOKUP)
    assert all(len(s) == 0 for s in stage.tracks["b1"].bones.samples.values())
    stage.on_pose(SimpleNamespace(**{**vars(pose_at(standing, 2 * 10**9)), "source": "cnn"}), LOOKUP)
    assert all(len(s) == 1 for s in stage.tracks["b1"].bones.samples.values())


@pytest.mark.parametrize("require", [True, False])
def test_an_arm_without_measured_bones_is_not_reachable(require):
    """Someone already holding a hand out when tracking starts: no bone was seen across the view, so the arm keeps
    the lifter's (too deep) wrist. It is published as offered but not reachable until the person lowers the arm
    (bones measured) and offers again; without the requirement the wrong wrist would be handed to the planner."""
    def lifted(joints):      # too deep, yet with human proportions (so plausible_arm cannot tell)
        out, (s, e, w) = joints.copy(), ARM_JOINTS
        reach = float(np.linalg.norm(joints[w] - joints[s]))
        out[e], out[w] = pushed(joints[e], 0.15 * reach), pushed(joints[w], 0.3 * reach)
        return out

    stage = HandoverTracker(params(require_bone_lengths=require))
    held = [(t, w, j) for t, w, j in offer_sequence() if w > 0.95]           # the hold only: arm out all along
    again = [(t + 10.0, w, j) for t, w, j in offer_sequence()]               # rest (arms across the view), offer
    first, second = [], []
    for frames, seen in ((held, first), (again, second)):
        for t, w, joints in frames:
            out = stage.on_pose(pose_at(lifted(joints) if w > 0.05 else joints, 5_000_000_000 + int(t * 1e9)),
                                LOOKUP)
            if out.target is not None and w > 0.95:
                seen.append((out.target, np.linalg.norm(out.target.position - joints[JOINT_INDEX["right_wrist"]])))
    assert first and second
    if require:
        assert not any(t.reachable for t, _ in first) and not any(t.gates["bones"] for t, _ in first)
        assert sum(t.reachable for t, _ in second) >= 10 and all(t.gates["bones"] for t, _ in second)
    else:
        wrong = [err for t, err in first if t.reachable]
        assert len(wrong) >= 5 and min(wrong) > 0.15       # reachable, and far behind the true wrist
