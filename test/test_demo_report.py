"""The demo report's handover figures: reachable targets are compared with the true wrist of the hand they name,
a reachable target while that hand is not offered is counted, offers are found from the true joints alone."""

from types import SimpleNamespace

import numpy as np
import pytest

from av_pose_ros.app.demo_report import handover_errors, handover_figures, handover_lines, offer_episodes, world_lines
from av_pose_ros.primitives.skeleton import JOINT_INDEX
from av_pose_ros.sim.choreography import scene_motion
from av_pose_ros.sim.render import Simulator
from av_pose_ros.sim.scenario import load_scenario

T0 = 1_700_000_000 * 10**9


def stamp(ns: int):
    return SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)


def target(ns: int, hand: str, position, reachable: bool):
    p = SimpleNamespace(x=float(position[0]), y=float(position[1]), z=float(position[2]))
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp(ns)), hand=hand, reachable=reachable,
                           pose=SimpleNamespace(position=p))


def test_handover_figures_from_a_scripted_world():
    scene = load_scenario("handover").sample(np.random.default_rng(3))
    sim, motion = Simulator(), scene_motion(scene)
    truth, topics = {}, []
    offset = np.array([0.01, -0.02, 0.0])                        # every target 22.4 mm off the true wrist
    for k in range(300):                                         # 30 s at 10 Hz
        t, ns = k * 0.1, T0 + k * 10**8
        truth[ns] = sim.joints_at(scene, t)
        hand, weight = motion.offer_at(t)
        if hand is not None:
            wrist = truth[ns][JOINT_INDEX[f"{hand}_wrist"]]
            topics.append((ns, target(ns, hand, wrist + offset, weight > 0.99)))
    ns = T0 + 5 * 10**8                                          # walking in: nothing offered, yet "reachable"
    topics.append((ns, target(ns, "right", truth[ns][JOINT_INDEX["right_wrist"]], True)))
    rows = handover_errors({"handover/target_info": topics}, truth)
    f = handover_figures(rows, truth)
    assert f["false_reachable"] == 1
    assert f["reachable_median_m"] == pytest.approx(np.linalg.norm(offset), abs=1e-6)
    held = sum(motion.offer_at(k * 0.1)[1] > 0.99 for k in range(300))
    assert f["reachable"] == held + 1 and f["reachable_per_min"] == pytest.approx((held + 1) / (29.9 / 60))
    episodes = offer_episodes(truth)
    assert len(episodes) == f["offers"] >= 2
    # an offer is served when a reachable target falls in it: here, when the script held the hand still within it
    held_in = [any(motion.offer_at(k * 0.1)[1] > 0.99 for k in range(300) if s - 0.05 <= k * 0.1 <= e + 0.05)
               for s, e, _ in episodes]
    assert f["offers_served"] == sum(held_in) >= 2
    assert {h for _, _, h in episodes} == {"left", "right"}
    world = world_lines(truth, scene.rig)[0]
    low, high = (float(v) for v in world.split(": ")[1].split(" m")[0].split("-"))
    assert 0.4 <= low <= high <= 0.8 and "image in 100 %" in world
    text = "\n".join(handover_lines(rows, truth, {}))
    assert "while that hand was not offered: 1" in text and "median 22 mm" in text


def test_demo_refuses_a_domain_id_outside_dds(capsys, monkeypatch):
    from av_pose_ros.app.cli import main

    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    assert main(["demo", "--domain-id", "500"]) == 2
    assert "0..232" in capsys.readouterr().err
