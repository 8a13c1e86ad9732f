"""The head turn feeds the lifter: with the sensor rig mounted on `head_link` (the frame slfm_node turns by the
integrated yaw), a simulated capture from a turned head is lifted through TF (base_link -> head_base_link ->
head_link -> camera_link -> optical frame, speakers and mics under camera_link) as accurately as one from a head
looking straight ahead; the same capture read with the head's old (unturned) TF lands the person elsewhere."""

import dataclasses

import numpy as np
import pytest

from av_pose_ros.lifting.dataset import simulate_sample
from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, make_transform, rot_z
from av_pose_ros.primitives.transform_tree import TransformTree
from av_pose_ros.sim.body import facing_yaw
from av_pose_ros.sim.render import Simulator
from av_pose_ros.sim.scenario import load_scenario

from ros_harness import REPO

SHIPPED = REPO / "models" / "lifter.pt"
pytestmark = pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped lifter")
STAMP = 5_000_000_000


class _TurnedHead:
    """The default scenario, a 1.75 m person standing 2.2 m ahead of the robot at 40 dB SNR, and the rig (camera,
    speakers, mics) on a head turned by `yaw` about its camera_link origin."""

    def __init__(self, yaw: float):
        self.inner, self.yaw = load_scenario("default"), yaw

    def sample(self, rng):
        s = self.inner.sample(rng)
        person = dataclasses.replace(s.person, pose="standing", stature_m=1.75, position_xy=(2.2, 0.1),
                                     yaw=facing_yaw((2.2, 0.1), (0.0, 0.0)))
        rig = dataclasses.replace(s.rig, base_from_camera_link=s.rig.base_from_camera_link @ make_transform(
            rot_z(self.yaw)))
        return dataclasses.replace(s, person=person, rig=rig, audio=dataclasses.replace(s.audio, snr_db=40.0))


def _tree(rig_straight, head_yaw: float) -> TransformTree:
    """The robot's TF as the sim graph with slfm_node would publish it: the rig file's mount as head_base_link,
    slfm_node's head_link turned by `head_yaw`, the rig's camera and sensors under head_link."""
    tree = TransformTree(10.0)
    tree.set_transform("base_link", "head_base_link", rig_straight.base_from_camera_link, 0, True)
    tree.set_transform("head_base_link", "head_link", make_transform(rot_z(head_yaw)), STAMP, False)
    tree.set_transform("head_link", "camera_link", np.eye(4), 0, True)
    tree.set_transform("camera_link", "camera_optical_frame", LINK_FROM_OPTICAL, 0, True)
    for prefix, points in (("speaker_", rig_straight.speakers), ("mic_", rig_straight.mics)):
        for i, xyz in enumerate(points):
            tree.set_transform("camera_link", f"{prefix}{i}", make_transform(None, xyz), 0, True)
    return tree


def _lift(lifter, s, rig, tree):
    """(CNN lifter joints, vision-only baseline joints, world_from_camera, speakers), every pose from `tree`."""
    from av_pose_ros.lifting.baselines import vision_only

    world_from_camera = tree.lookup("base_link", "camera_optical_frame", STAMP)
    speakers = np.array([tree.lookup("base_link", f"speaker_{i}", STAMP)[:3, 3] for i in rig.pairs[:, 0]])
    mics = np.array([tree.lookup("base_link", f"mic_{i}", STAMP)[:3, 3] for i in rig.pairs[:, 1]])
    joints, _ = lifter.predict(s["keypoints"], s["K"], world_from_camera, s["kernels"], speakers, mics,
                               float(s["fs"]), speed_of_sound=float(s["c"]))
    return joints, vision_only(s["keypoints"], s["K"], world_from_camera), world_from_camera, speakers


def test_lifter_follows_a_turning_head_through_head_link():
    """Four seeds, head turned +-20 deg. Asserted: TF consistency with the simulator; the vision-only lifting
    baseline (whose only pose input is the camera pose from TF) as accurate turned as straight and far off with the
    stale head TF; the CNN lifter closer turned (right TF) than stale. The CNN's own accuracy on this 2.2 m scene is
    printed, not asserted: it is the lifter's business (models/lifter.md), not the head's."""
    import torch

    from av_pose_ros.lifting import Lifter

    torch.set_num_threads(1)
    lifter = Lifter.load(SHIPPED)
    sim = Simulator()
    errors = {f"{m}_{c}": [] for m in ("cnn", "vision") for c in ("straight", "turned", "stale")}

    def mpjpe(joints, s):
        return float(np.linalg.norm(joints - s["joints"], axis=1).mean())

    for seed in range(12345, 12349):
        yaw = np.deg2rad(20.0 if seed % 2 else -20.0)
        for name, head_yaw in (("straight", 0.0), ("turned", yaw)):
            scenario = _TurnedHead(head_yaw)
            s = simulate_sample(scenario, sim, "test", seed, 0)
            rig = scenario.sample(np.random.default_rng(0)).rig  # the (turned) rig: it does not depend on the rng
            straight = dataclasses.replace(rig, base_from_camera_link=rig.base_from_camera_link @ make_transform(
                rot_z(-head_yaw)))
            cnn, vision, world_from_camera, speakers = _lift(lifter, s, rig, _tree(straight, head_yaw))
            # TF consistent with the simulator: the camera and speakers the lifter gets are where the sim put them
            np.testing.assert_allclose(world_from_camera, s["world_from_camera"], atol=1e-5)
            np.testing.assert_allclose(speakers, s["speakers"], atol=1e-5)
            errors[f"cnn_{name}"].append(mpjpe(cnn, s))
            errors[f"vision_{name}"].append(mpjpe(vision, s))
            if head_yaw:
                cnn, vision, _, _ = _lift(lifter, s, rig, _tree(straight, 0.0))  # head_link left unturned
                errors["cnn_stale"].append(mpjpe(cnn, s))
                errors["vision_stale"].append(mpjpe(vision, s))
    print("MPJPE mm", {k: [round(1000 * x) for x in v] for k, v in errors.items()})
    med = {k: float(np.median(v)) for k, v in errors.items()}
    assert med["vision_turned"] < med["vision_straight"] + 0.1 and med["vision_stale"] > med["vision_turned"] + 0.3
    assert all(t < st for t, st in zip(errors["cnn_turned"], errors["cnn_stale"]))
    assert med["cnn_stale"] > med["cnn_turned"] + 0.3
