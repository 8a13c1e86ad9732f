"""Where the handover chain loses the offered hand, on recorded demo bags (`av-pose demo` writes one).

The handover stage is re-run on each bag's recorded `human/pose_3d` with handover_node's parameters (the same
handler and TF as the node; `--params name:=value` overrides), and every frame in which the simulator's true joints
show a hand offered is followed through the chain: the lifted wrist's error (along its camera ray and across it) and
the shoulder's, by true camera range; whether a target was published for that hand; its error after the arm rebuild
and the filter; each readiness gate; reachable. Then the figures issue 14 asks for: reachable targets a minute, their
error to the true wrist (median, p90), reachable targets while the hand was not offered, and state changes a minute.

    python benchmarks/bench_handover.py demo_out/demo_bag [more bags] [--params arm_from_bone_lengths:=false]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from av_pose_ros.bag.reader import BagReader  # noqa: E402
from av_pose_ros.bag.reprocess import load_parameters, stage_params  # noqa: E402
from av_pose_ros.primitives.skeleton import JOINT_INDEX  # noqa: E402

GATES = ("inside", "confident", "certain", "still", "plausible", "bones")
RANGE_BINS = (0.0, 0.7, 0.8, 0.9, 10.0)


def read_bag(path: Path):
    """(TransformTree of /tf_static, [(log ns, Pose3D)] of human/pose_3d, {stamp: true joints})."""
    from rclpy.serialization import deserialize_message
    from tf2_msgs.msg import TFMessage

    from av_pose_ros.bag.typestore import message_class
    from av_pose_ros.primitives.transform_tree import TransformTree
    from av_pose_ros.ros.conversions import pose3d_from_msg
    from av_pose_ros.ros.tf import matrix_from_transform_msg

    tree, poses, truth = TransformTree(cache_s=1e6), [], {}
    with BagReader(path) as bag:
        for topic, stamp, data in bag.messages(["/tf_static", "/human/pose_3d", "/sim/ground_truth"]):
            if topic == "/tf_static":
                for t in deserialize_message(data, TFMessage).transforms:
                    tree.set_transform(t.header.frame_id, t.child_frame_id, matrix_from_transform_msg(t), 0, True)
                continue
            pose = pose3d_from_msg(deserialize_message(data, message_class(bag.topics[topic].msgtype)))
            if topic == "/human/pose_3d":
                poses.append((stamp, pose))
            else:
                truth[pose.stamp_ns] = pose.joints
    return tree, poses, truth


def run_bag(path: Path, overrides: list[str]) -> dict:
    """One bag through the handover stage; per-frame rows of the offered hand and the reachable targets."""
    from av_pose_ros.pipeline.handover import HandoverTracker
    from av_pose_ros.sim.choreography import offered_hands

    p = load_parameters("handover_node", stage_params("handover"), overrides)
    tree, poses, truth = read_bag(path)
    stage = HandoverTracker(p)
    camera = tree.lookup(p.base_frame, p.camera_frame, 0)[:3, 3]
    rows, reachable, changes, withdrawals, next_tick = [], [], 0, 0, None
    for log, pose in poses:
        out = stage.on_pose(pose, lambda target, source, _stamp: tree.lookup(target, source, 0))
        changes += out.state_changed
        withdrawals += out.state_changed and out.state == "withdrawn"
        if next_tick is None or log >= next_tick:     # handover_node's 10 Hz timer
            tick = stage.on_clock(log)
            changes += tick.state_changed
            withdrawals += tick.state_changed and tick.state == "withdrawn"
            next_tick = log + 100_000_000
        gt = truth.get(pose.stamp_ns)
        if gt is None:
            continue
        offered = offered_hands(gt)
        target = out.target
        if target is not None and target.reachable:
            wrist = gt[JOINT_INDEX[f"{target.hand}_wrist"]]
            reachable.append((np.linalg.norm(target.position - wrist), target.hand in offered))
        base_from_pose = tree.lookup(p.base_frame, pose.frame_id, 0)
        joints = pose.joints @ base_from_pose[:3, :3].T + base_from_pose[:3, 3]
        for hand in offered:
            w, s = JOINT_INDEX[f"{hand}_wrist"], JOINT_INDEX[f"{hand}_shoulder"]
            ray = (gt[w] - camera) / np.linalg.norm(gt[w] - camera)
            err = joints[w] - gt[w]
            row = {"range": float(np.linalg.norm(gt[w] - camera)), "lifted": float(np.linalg.norm(err)),
                   "along": float(err @ ray), "across": float(np.linalg.norm(err - (err @ ray) * ray)),
                   "shoulder": float(np.linalg.norm(joints[s] - gt[s])), "target": False, "hand": hand}
            if target is not None and target.hand == hand:
                row.update(target=True, error=float(np.linalg.norm(target.position - gt[w])),
                           reachable=target.reachable, std=target.position_std_m, **target.gates)
            rows.append(row)
    minutes = (max(truth) - min(truth)) * 1e-9 / 60 if len(truth) > 1 else float("nan")
    from av_pose_ros.app.demo_report import offer_episodes

    return {"rows": rows, "reachable": reachable, "minutes": minutes, "changes": changes,
            "withdrawals": withdrawals, "offers": len(offer_episodes(truth))}


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def report(runs: dict[str, dict]) -> str:
    rows = [r for run in runs.values() for r in run["rows"]]
    lines = [f"offered-hand frames (true joints): {len(rows)} in {len(runs)} bag(s)", "",
             "| true wrist to camera (m) | frames | lifted wrist error median / p90 (mm) | along the camera ray "
             "median (mm) | across it median (mm) | shoulder median (mm) | target published | target error median "
             "/ p90 (mm) |", "|---|---|---|---|---|---|---|---|"]
    for lo, hi in zip(RANGE_BINS, RANGE_BINS[1:]):
        b = [r for r in rows if lo <= r["range"] < hi]
        if not b:
            continue
        t = [r["error"] for r in b if r["target"]]
        lines.append(f"| {lo:.1f}-{hi:.1f} | {len(b)} | {pct([r['lifted'] for r in b], 50) * 1e3:.0f} / "
                     f"{pct([r['lifted'] for r in b], 90) * 1e3:.0f} | {pct([r['along'] for r in b], 50) * 1e3:.0f} "
                     f"| {pct([r['across'] for r in b], 50) * 1e3:.0f} | "
                     f"{pct([r['shoulder'] for r in b], 50) * 1e3:.0f} | {len(t) / len(b) * 100:.0f} % | "
                     f"{pct(t, 50) * 1e3:.0f} / {pct(t, 90) * 1e3:.0f} |")
    targeted = [r for r in rows if r["target"]]
    passed = defaultdict(int)
    cumulative = len(targeted)
    gate_line = []
    for g in GATES:
        passed[g] = sum(r[g] for r in targeted)
        cumulative = sum(all(r[k] for k in GATES[:GATES.index(g) + 1]) for r in targeted)
        gate_line.append(f"{g} {passed[g] / max(len(targeted), 1) * 100:.0f} % (with the ones before "
                         f"{cumulative / max(len(targeted), 1) * 100:.0f} %)")
    lines += ["", f"offered frames with a target for that hand: {len(targeted)} of {len(rows)}; readiness gates "
              f"passed: " + ", ".join(gate_line) + f"; reachable {sum(r['reachable'] for r in targeted)} "
              f"(hold_s of stillness on top)",
              f"wrist std of the targets (worst direction): median {pct([r['std'] for r in targeted], 50) * 1e3:.0f} "
              f"mm"]
    minutes = sum(run["minutes"] for run in runs.values())
    reach = [e for run in runs.values() for e, _ in run["reachable"]]
    false = sum(not offered for run in runs.values() for _, offered in run["reachable"])
    per_bag = [len(run["reachable"]) / run["minutes"] for run in runs.values()]
    changes = ", ".join(f"{run['changes'] / run['minutes']:.0f}" for run in runs.values())
    lines += ["", f"reachable targets: {len(reach)} in {minutes:.1f} min ({len(reach) / minutes:.0f} a minute; per "
              f"bag {', '.join(f'{v:.0f}' for v in per_bag)}), to the true wrist median {pct(reach, 50) * 1e3:.0f} "
              f"mm, p90 {pct(reach, 90) * 1e3:.0f} mm; reachable while the hand was not offered: {false}; state "
              f"changes a minute: {changes}; 'withdrawn' {sum(r['withdrawals'] for r in runs.values())} times for "
              f"{sum(r['offers'] for r in runs.values())} true offers"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", type=Path)
    parser.add_argument("--params", nargs="*", default=[], help="handover_node overrides: name:=value")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    overrides = [f"handover_node.{o}" if not o.startswith("handover_node.") else o for o in args.params]
    runs = {str(b): run_bag(b, overrides) for b in args.bags}
    print(report(runs))
    if args.json:
        args.json.write_text(yaml.safe_dump({k: {"minutes": v["minutes"], "reachable": len(v["reachable"]),
                                                 "changes": v["changes"]} for k, v in runs.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
