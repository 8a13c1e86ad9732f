"""The demo's report from its recorded bag: `summary.md` (rates, errors, latency, handover accuracy) and `demo.png`
(3D skeletons against the truth at a few instants, a top view of the room, a pose kernel, the error over time).

Reads the bag with the rosbags library only (no ROS), which also shows that the bag is readable by other tools.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from av_pose_ros.bag.typestore import stamp_ns
from av_pose_ros.primitives.skeleton import BONE_INDICES, LEFT_HIP, LEFT_WRIST, RIGHT_HIP, RIGHT_WRIST


def _points(msg) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in msg.positions])


def read_bag(path: Path) -> dict:
    """Per topic: list of (receive time ns, message) in order."""
    from rosbags.rosbag2 import Reader

    from av_pose_ros.bag.typestore import typestore

    store = typestore()
    topics = defaultdict(list)
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            topics[connection.topic.lstrip("/")].append((timestamp, store.deserialize_cdr(raw, connection.msgtype)))
    return topics


def pose_errors(topics: dict) -> dict:
    """Stamp-matched errors of human/pose_3d against sim/ground_truth, and end-to-end latencies."""
    truth = {stamp_ns(m.header.stamp): _points(m) for _, m in topics.get("sim/ground_truth", [])}
    stamps, rows = [], []
    for received, msg in topics.get("human/pose_3d", []):
        stamp = stamp_ns(msg.header.stamp)
        if stamp in truth:
            err = np.linalg.norm(_points(msg) - truth[stamp], axis=1)
            stamps.append(stamp)
            rows.append((err.mean(), err[[LEFT_WRIST, RIGHT_WRIST]].mean(), (received - stamp) * 1e-9,
                         np.mean(err < 0.1)))
    # stamps stay int64 (ns since 1970 do not fit a float64 exactly); rows: MPJPE, wrist, latency (m, m, s), PCK
    return {"stamps": np.array(stamps, dtype=np.int64), "rows": np.array(rows).reshape(-1, 4), "truth": truth}


def handover_errors(topics: dict, truth: dict) -> np.ndarray:
    """Per handover target with a ground truth at its stamp: seconds since the first ground truth, distance (m) to
    the true wrist of the hand it names, reachable (0/1), and whether that hand was really offered then (0/1; from
    the true joints, ``sim.choreography.offered_hands``)."""
    from av_pose_ros.sim.choreography import offered_hands

    out = []
    t0 = min(truth) if truth else 0
    for _, msg in topics.get("handover/target_info", []):
        joints = truth.get(stamp_ns(msg.header.stamp))
        if joints is not None:
            wrist = joints[RIGHT_WRIST if msg.hand == "right" else LEFT_WRIST]
            p = msg.pose.position
            out.append(((stamp_ns(msg.header.stamp) - t0) * 1e-9, np.linalg.norm(np.array([p.x, p.y, p.z]) - wrist),
                        float(msg.reachable), float(msg.hand in offered_hands(joints))))
    return np.array(out).reshape(-1, 4)


def offer_episodes(truth: dict) -> list[tuple[float, float, str]]:
    """(start s, end s, hand) of every stretch in which the truth shows a hand offered, seconds since the first
    ground truth."""
    from av_pose_ros.sim.choreography import offered_hands

    episodes, current = [], None
    t0 = min(truth) if truth else 0
    for stamp in sorted(truth):
        t, hands = (stamp - t0) * 1e-9, offered_hands(truth[stamp])
        if current and current[2] not in hands:
            episodes.append(tuple(current))
            current = None
        if current is None and hands:
            current = [t, t, sorted(hands)[0]]
        elif current:
            current[1] = t
    if current:
        episodes.append(tuple(current))
    return episodes


def handover_figures(handover: np.ndarray, truth: dict) -> dict:
    """What the handover section reports: counts, rates per minute, errors of reachable and of all targets, false
    reachables (hand not offered), offers and how many got a reachable target."""
    span_min = (max(truth) - min(truth)) * 1e-9 / 60 if len(truth) > 1 else 0.0
    reachable = handover[handover[:, 2] > 0] if len(handover) else handover
    episodes = offer_episodes(truth)
    served = sum(any(s - 0.05 <= t <= e + 0.05 for t in reachable[:, 0]) for s, e, _ in episodes) if len(
        reachable) else 0

    def pct(a, q):
        return float(np.percentile(a, q)) if len(a) else float("nan")
    return {"targets": len(handover), "reachable": len(reachable), "minutes": span_min,
            "reachable_per_min": len(reachable) / span_min if span_min else 0.0,
            "reachable_median_m": pct(reachable[:, 1], 50) if len(reachable) else float("nan"),
            "reachable_p90_m": pct(reachable[:, 1], 90) if len(reachable) else float("nan"),
            "all_median_m": pct(handover[:, 1], 50) if len(handover) else float("nan"),
            "all_p90_m": pct(handover[:, 1], 90) if len(handover) else float("nan"),
            "false_reachable": int(np.sum(reachable[:, 3] == 0)) if len(reachable) else 0,
            "offers": len(episodes), "offers_served": int(served),
            "hands": sorted({h for _, _, h in episodes})}


def _rate(messages: list) -> float:
    if len(messages) < 2:
        return 0.0
    span = (messages[-1][0] - messages[0][0]) * 1e-9
    return (len(messages) - 1) / span if span > 0 else 0.0


def world_lines(truth: dict, rig) -> list[str]:
    """What the simulated person did, from the true joints: where the offered hand was held relative to the
    manipulator frame, and whether it stayed in the camera image."""
    from av_pose_ros.primitives.geometry import apply_transform, invert_transform
    from av_pose_ros.sim.choreography import offered_hands

    distances, inside = [], []
    previous = None
    for _, joints in sorted(truth.items()):
        for hand in offered_hands(joints):
            wrist = joints[RIGHT_WRIST if hand == "right" else LEFT_WRIST]
            if previous is not None and np.linalg.norm(previous[RIGHT_WRIST if hand == "right" else LEFT_WRIST]
                                                       - wrist) < 0.01:   # held (not reaching out or back)
                distances.append(np.linalg.norm(wrist - rig.manipulator_position()))
            optical = apply_transform(invert_transform(rig.base_from_optical), wrist[None])
            uv = rig.intrinsics.camera_model().project(optical)[0]
            w, h = rig.intrinsics.width, rig.intrinsics.height
            inside.append(optical[0, 2] > 0 and 0 <= uv[0] < w and 0 <= uv[1] < h)
        previous = joints
    if not distances:
        return []
    return [f"- the held hand (true wrist, offered and still) to `{rig.manipulator_frame or 'camera_link'}`: "
            f"{min(distances):.2f}-{max(distances):.2f} m (median {np.median(distances):.2f} m); the offered hand "
            f"inside the camera image in {np.mean(inside) * 100:.0f} % of the offered frames"]


def write_summary(topics: dict, errors: dict, handover: np.ndarray, path: Path, rig=None) -> None:
    rows = errors["rows"]
    lines = ["# av_pose_ros demo", "", "The simulated system ran as separate ROS 2 processes over DDS (sim_node, "
             "pose_kernel_node, lifter_node, handover_node); everything below is read back from the recorded bag.",
             "", "## Topics", "", "| topic | messages | rate (Hz) |", "|---|---|---|"]
    lines += [f"| /{t} | {len(m)} | {_rate(m):.1f} |" for t, m in sorted(topics.items())]
    lines += ["", "## 3D pose against the ground truth (stamp-matched)", ""]
    if len(rows):
        med = np.median(rows, axis=0)
        lines += [f"- poses compared: {len(rows)}",
                  f"- MPJPE: median {med[0] * 1e3:.0f} mm, mean {rows[:, 0].mean() * 1e3:.0f} mm",
                  f"- wrist error (mean of both wrists): median {med[1] * 1e3:.0f} mm",
                  f"- PCK@100 mm: {rows[:, 3].mean() * 100:.0f} %",
                  f"- latency from audio/camera acquisition to the pose being recorded: median {med[2] * 1e3:.0f} ms, "
                  f"p95 {np.percentile(rows[:, 2], 95) * 1e3:.0f} ms"]
    else:
        lines += ["- no pose could be matched to the ground truth (did the lifter publish? see its diagnostics)"]
    lines += ["", "## Handover", ""]
    lines += world_lines(errors["truth"], rig) if rig is not None else []
    lines += handover_lines(handover, errors["truth"], topics)
    path.write_text("\n".join(lines) + "\n")


def handover_lines(handover: np.ndarray, truth: dict, topics: dict) -> list[str]:
    """The summary's handover section: reachable targets and their error against the true wrist."""
    if not len(handover):
        return ["- no handover target was published (no hand was offered clearly enough)"]
    f = handover_figures(handover, truth)
    states = [m.data for _, m in topics.get("handover/state", [])]
    lines = [f"- offers in the run (true joints, `sim.choreography.offered_hands`): {f['offers']} "
             f"({', '.join(f['hands'])} hands); offers with at least one reachable target: {f['offers_served']}",
             f"- targets published: {f['targets']}, reachable: {f['reachable']} "
             f"({f['reachable_per_min']:.0f} a minute over {f['minutes']:.1f} min of ground truth)",
             f"- reachable targets to the true offered wrist: median {f['reachable_median_m'] * 1e3:.0f} mm, "
             f"p90 {f['reachable_p90_m'] * 1e3:.0f} mm",
             f"- all targets (reaching, holding, taking back) to the true wrist: median "
             f"{f['all_median_m'] * 1e3:.0f} mm, p90 {f['all_p90_m'] * 1e3:.0f} mm",
             f"- reachable targets while that hand was not offered: {f['false_reachable']}"]
    if states:
        more = ", ..." if len(states) > 8 else ""
        rate = f", {len(states) / f['minutes']:.0f} a minute" if f["minutes"] else ""
        lines.append(f"- handover/state changes: {len(states)}{rate}, 'withdrawn' {states.count('withdrawn')} times "
                     f"for {f['offers']} offers ({', '.join(states[:8])}{more})")
    return lines


def _skeleton(ax, joints: np.ndarray, colour: str, label: str) -> None:
    for a, b in BONE_INDICES:
        ax.plot(*joints[[a, b]].T, color=colour, lw=2)
    ax.scatter(*joints.T, color=colour, s=8, label=label)


def write_figure(topics: dict, errors: dict, handover: np.ndarray, path: Path, seed: int,
                 scenario: str = "handover") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 10))
    rows, stamps, truth = errors["rows"], errors["stamps"], errors["truth"]
    poses = {stamp_ns(m.header.stamp): _points(m) for _, m in topics.get("human/pose_3d", [])}
    picks = [int(stamps[i]) for i in np.linspace(0, len(stamps) - 1, 3).astype(int)] if len(stamps) else []
    t0 = min(truth) if truth else 0
    for i, stamp in enumerate(picks):
        ax = fig.add_subplot(2, 4, i + 1, projection="3d")
        _skeleton(ax, truth[stamp], "tab:green", "truth")
        _skeleton(ax, poses[stamp], "tab:red", "lifted")
        centre = truth[stamp].mean(axis=0)
        ax.set(xlim=centre[0] + np.array([-1, 1]), ylim=centre[1] + np.array([-1, 1]), zlim=(0, 2),
               title=f"t = {(stamp - t0) * 1e-9:.1f} s", xlabel="x (m)", ylabel="y (m)", zlabel="z (m)")
        ax.legend(loc="upper left", fontsize=7)
    ax = fig.add_subplot(2, 4, 4)
    _top_view(ax, truth, poses, seed, scenario)
    ax = fig.add_subplot(2, 2, 3)
    _kernel_plot(ax, topics)
    ax = fig.add_subplot(2, 2, 4)
    if len(rows):
        t = (stamps - t0) * 1e-9
        ax.plot(t, rows[:, 0] * 1e3, label="MPJPE")
        ax.plot(t, rows[:, 1] * 1e3, label="wrist error")
    if len(handover):
        ax.plot(handover[:, 0], handover[:, 1] * 1e3, ".", ms=3, label="handover target to true wrist")
        ready = handover[:, 2] > 0
        ax.plot(handover[ready, 0], handover[ready, 1] * 1e3, "o", ms=3, mfc="none", label="reachable targets")
    ax.set(xlabel="time (s)", ylabel="error (mm)", title="error over time", ylim=(0, None))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _scene(scenario: str, seed: int):
    """The scene sim_node drew with this seed (its rig: the manipulator frame, the camera)."""
    from av_pose_ros.sim.scenario import load_scenario

    return load_scenario(scenario).sample(np.random.default_rng(seed))


def _top_view(ax, truth: dict, poses: dict, seed: int, scenario: str) -> None:
    from matplotlib.patches import Rectangle

    scene = _scene(scenario, seed)
    size = np.asarray(scene.room.size_m, dtype=float)
    ax.add_patch(Rectangle(-np.asarray(scene.base_in_room, dtype=float)[:2], size[0], size[1], fill=False, lw=2,
                           label="room walls"))
    speakers, mics = scene.rig.speakers_base(), scene.rig.mics_base()
    ax.scatter(speakers[:, 0], speakers[:, 1], marker="s", label="speakers")
    ax.scatter(mics[:, 0], mics[:, 1], marker="^", label="mics")
    ax.scatter([0], [0], marker="*", s=150, color="k", label="base_link")
    if scene.rig.manipulator_frame:
        arm = scene.rig.manipulator_position()
        ax.scatter([arm[0]], [arm[1]], marker="P", s=90, color="tab:purple", label=scene.rig.manipulator_frame)
    for track, colour, label in ((truth, "tab:green", "true mid-hip"), (poses, "tab:red", "lifted mid-hip")):
        if track:
            hips = np.array([0.5 * (j[LEFT_HIP] + j[RIGHT_HIP]) for _, j in sorted(track.items())])
            ax.plot(hips[:, 0], hips[:, 1], ".", color=colour, ms=3, label=label)
    ax.set(aspect="equal", xlabel="x (m)", ylabel="y (m)", title="top view (base_link)")
    ax.legend(fontsize=7)


def _kernel_plot(ax, topics: dict) -> None:
    kernels = topics.get("audio/pose_kernel", [])
    if not kernels:
        ax.set_title("no pose kernel recorded")
        return
    msg = kernels[len(kernels) // 2][1]
    data = np.asarray(msg.data, dtype=float).reshape(msg.num_pairs, msg.num_taps)
    path_m = np.arange(msg.num_taps) / msg.sample_rate * msg.speed_of_sound / 2.0
    for p in range(msg.num_pairs):
        ax.plot(path_m, data[p] + p * data.max() * 0.6, label=f"{msg.speaker_frames[p]} -> {msg.mic_frames[p]}")
    ax.set(xlabel="one-way range c·t/2 (m)", ylabel="envelope (offset per pair)", title="pose kernel (mid-run)")
    ax.legend(fontsize=7)


def write_report(bag: Path, out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    topics = read_bag(bag)
    errors = pose_errors(topics)
    handover = handover_errors(topics, errors["truth"])
    summary, figure = out_dir / "summary.md", out_dir / "demo.png"
    write_summary(topics, errors, handover, summary, _scene("handover", seed).rig)
    write_figure(topics, errors, handover, figure, seed)
    return summary, figure
