"""`av-pose reprocess`: the pose kernel, lifter and handover stages re-run offline on a recorded bag, message by
message in bag order and as fast as the CPU allows, with the nodes' own handlers (`av_pose_ros.pipeline`), message
builders (`av_pose_ros.ros.messages`) and an offline `TransformTree`. "Now" is the time the recorder received each
message (where the nodes use their clock at arrival), so camera-info freshness and presence are judged the same way,
and handover_node's 10 Hz timer (body timeouts, withdrawn -> idle) ticks on it; the handover stage writes
`/handover/target`, `/handover/target_info` and every `/handover/state` change, as the node publishes them. When the
stamps go back (a recording across a simulator restart) every handler and the TF history reset, as the
nodes do. One difference is deliberate: every keypoint/kernel pair is lifted (a live lifter that falls behind drops
pairs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml

from av_pose_ros.bag.reader import BagReader

STAGES = ("kernel", "lifter", "handover")
NODES = {"kernel": "pose_kernel_node", "lifter": "lifter_node", "handover": "handover_node"}
# Recorded topics each stage re-creates (dropped from the copy of the inputs when the stage runs).
OUTPUTS = {"kernel": ("/audio/pose_kernel", "/audio/encoding"), "lifter": ("/human/pose_3d", "/human/markers"),
           "handover": ("/handover/target", "/handover/target_info", "/handover/state")}
INPUTS = {"kernel": ("/audio/frames",), "lifter": ("/human/keypoints_2d", "/camera/camera_info"),
          "handover": ()}


class ReprocessError(Exception):
    """The bag or the options cannot be reprocessed; the message says why."""


@dataclass
class Summary:
    out: Path
    stages: list[str]
    read: int = 0
    written: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list] = field(default_factory=dict)  # code -> [count, first message]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bag_span_s: float = 0.0
    error: str | None = None

    def problem(self, code: str, text: str) -> None:
        entry = self.problems.setdefault(code, [0, text])
        entry[0] += 1

    def text(self) -> str:
        lines = [f"[reprocess] {self.read} messages in {self.seconds:.1f} s "
                 f"({self.bag_span_s / max(self.seconds, 1e-9):.1f}x the recording's pace), stages "
                 f"{', '.join(self.stages)}; wrote {self.out}:"]
        lines += [f"  {t}  {n}" for t, n in sorted(self.written.items())]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  problem {code}: {n} x, e.g. {text}" for code, (n, text) in sorted(self.problems.items())]
        if self.error:
            lines.append(f"[reprocess] error: the input bag is damaged; processed its readable part and stopped at "
                         f"{self.error}")
        return "\n".join(lines)


def _ros_params_file(path: Path, node: str) -> dict:
    """The `ros__parameters` of `node` (or of `/**`) in a ROS 2 parameter YAML."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ReprocessError(f"cannot read parameter file {path}: {err}") from err
    out: dict = {}
    for key in ("/**", node, f"/{node}"):
        section = data.get(key) if isinstance(data, dict) else None
        if isinstance(section, dict):
            out.update(section.get("ros__parameters") or {})
    return out


def stage_params(stage: str) -> list:
    """The parameter specs of a stage's node, from its pipeline module (never from the node module: reprocess does
    not import nodes)."""
    import importlib

    return list(importlib.import_module(f"av_pose_ros.pipeline.{stage}").PARAMS)


def load_parameters(node: str, specs, extra: list[str]) -> SimpleNamespace:
    """A node's parameters as it would get them from `av-pose launch`: defaults, config/<node>.yaml, then the
    user's files and `node.name:=value` overrides, checked against the node's declared ranges and choices."""
    from av_pose_ros.primitives.paths import package_file

    values = {s.name: s.default for s in specs}
    files = [package_file(f"config/{node}.yaml")] + [Path(e) for e in extra if ":=" not in e]
    for path in files:
        if path.exists():
            values.update({k: v for k, v in _ros_params_file(path, node).items() if k in values})
        elif path != files[0]:
            raise ReprocessError(f"parameter file {path} does not exist")
    for item in extra:
        name, sep, value = item.partition(":=")
        if not sep:
            continue
        target, _, param = name.rpartition(".")
        if target not in NODES.values():
            raise ReprocessError(f"override '{item}' must be <node>.<parameter>:=value with node one of "
                                 f"{', '.join(NODES.values())}")
        if target == node:
            if param not in values:
                raise ReprocessError(f"{node} has no parameter '{param}'")
            values[param] = yaml.safe_load(value)
    for spec in specs:
        problem = spec.check_range(values[spec.name])
        if problem:
            raise ReprocessError(f"{node}: {problem}")
    return SimpleNamespace(**values)


def _lifter_tf_message(msg) -> bool:
    """A /tf message the lifter published (only REP-155 body and joint frames): re-created when the lifter runs."""
    from av_pose_ros.primitives.skeleton import COCO17_JOINTS, rep155_joint_frame

    prefixes = ("body_",) + tuple(rep155_joint_frame(j, "") for j in COCO17_JOINTS)
    return bool(msg.transforms) and all(t.child_frame_id.startswith(prefixes) for t in msg.transforms)


def _check_inputs(bag: BagReader, stages: list[str], out: Path) -> None:
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        raise ReprocessError(f"unknown stage(s) {', '.join(unknown) or '(none given)'}; choose from "
                             f"{', '.join(STAGES)}")
    if out.exists():
        raise ReprocessError(f"{out} already exists; choose a new --out folder")
    missing = [t for s in stages for t in INPUTS[s] if t not in bag.topics]
    if "lifter" in stages and "kernel" not in stages and "/audio/pose_kernel" not in bag.topics:
        missing.append("/audio/pose_kernel")
    if "handover" in stages and "lifter" not in stages and "/human/pose_3d" not in bag.topics:
        missing.append("/human/pose_3d")
    if "/tf_static" not in bag.topics and "/tf" not in bag.topics:
        missing.append("/tf_static or /tf")
    if missing:
        raise ReprocessError(f"{bag.path} lacks what the stages {', '.join(stages)} need: {', '.join(missing)} "
                             f"(topics in the bag: {', '.join(sorted(bag.topics)) or 'none'})")


class _Output:
    """The output bag: inputs copied with their recorded QoS, re-created topics with the nodes' QoS."""

    def __init__(self, bag: BagReader, out: Path, storage: str, replaced: set[str], summary: Summary):
        from rosbags.rosbag2 import Writer

        from av_pose_ros.bag.recorder import STORAGE
        from av_pose_ros.bag.typestore import typestore

        self.bag, self.replaced, self.summary = bag, replaced, summary
        self.store = typestore()
        self.writer = Writer(out, version=9, storage_plugin=STORAGE[storage])
        self.writer.open()
        self.connections: dict[str, object] = {}

    def write(self, topic: str, msgtype: str, stamp: int, data: bytes, qos=None) -> None:
        from av_pose_ros.bag.qos import to_bag_qos

        conn = self.connections.get(topic)
        if conn is None:
            info = self.bag.topics.get(topic)
            offered = info.qos if info is not None and topic not in self.replaced else [to_bag_qos(qos)] if qos else []
            conn = self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store,
                                                                        offered_qos_profiles=offered)
        self.writer.write(conn, stamp, data)
        self.summary.written[topic] = self.summary.written.get(topic, 0) + 1

    def emit(self, topic: str, msg, stamp: int, qos) -> None:
        from rclpy.serialization import serialize_message

        self.write(topic, type(msg).__module__.split(".")[0] + "/msg/" + type(msg).__name__, stamp,
                   serialize_message(msg), qos)

    def close(self) -> None:
        self.writer.close()


class _Pipeline:
    """The stage handlers of the chosen stages, fed message by message; `stamp` is the message's log time."""

    def __init__(self, stages: list[str], p: dict, lifter, output: _Output, summary: Summary, fallback=None):
        from av_pose_ros.pipeline.common import BackwardsTime
        from av_pose_ros.pipeline.handover import HandoverTracker
        from av_pose_ros.pipeline.kernel import KernelHandler
        from av_pose_ros.pipeline.lifter import LifterHandler
        from av_pose_ros.primitives.transform_tree import TransformTree

        self.stages, self.p, self.output, self.summary = stages, p, output, summary
        self.tree = TransformTree(cache_s=10.0)
        self.kernel = KernelHandler(p["kernel"], self.tree.lookup)
        self.lifter = LifterHandler(p["lifter"], self.tree.lookup, lifter, fallback)
        self.handover = HandoverTracker(p["handover"])
        self.back = BackwardsTime()
        self.next_tick: int | None = None   # handover_node's 10 Hz timer, on the recording's clock

    def tick(self, stamp: int) -> None:
        """handover_node's timer (every 0.1 s, on_clock) replayed on the log times up to `stamp`; its first call
        publishes the initial state, as the node does when it starts."""
        if "handover" not in self.stages:
            return
        if self.next_tick is None:
            self.emit_state(self.handover.state, stamp)
            self.next_tick = stamp
        while self.next_tick <= stamp:
            out = self.handover.on_clock(self.next_tick)
            if out.state_changed:
                self.emit_state(out.state, self.next_tick)
            self.next_tick += 100_000_000

    def emit_state(self, state: str, stamp: int) -> None:
        from std_msgs.msg import String

        from av_pose_ros.ros.qos import STATIC_QOS

        self.output.emit("/handover/state", String(data=state), stamp, STATIC_QOS)

    def time(self, stamp: int) -> None:
        """The recording's clock went back (a simulator restart inside one bag): reset as a node would."""
        if self.back.jumped(stamp):
            self.summary.notes.append(f"time went back at {stamp * 1e-9:.3f} s: handlers and TF history reset")
            for handler in (self.kernel, self.lifter, self.handover):
                handler.reset()
            self.tree.clear()
            if "handover" in self.stages:
                self.emit_state(self.handover.state, stamp)   # as handover_node's time-jump handler does
                self.next_tick = stamp

    def on_tf(self, msg, static: bool) -> None:
        from av_pose_ros.primitives.transform_tree import TransformError
        from av_pose_ros.ros.conversions import ns_from_time
        from av_pose_ros.ros.tf import matrix_from_transform_msg

        for t in msg.transforms:
            try:
                self.tree.set_transform(t.header.frame_id, t.child_frame_id, matrix_from_transform_msg(t),
                                        ns_from_time(t.header.stamp), static)
            except TransformError as err:
                self.summary.problem("tf", f"ignoring transform: {err}")

    def on_audio(self, audio, stamp: int) -> None:
        from av_pose_ros.ros.messages import kernel_msg
        from av_pose_ros.ros.qos import SENSOR_QOS

        out = self.kernel.on_audio(audio, stamp * 1e-9)
        if out.note:
            self.summary.notes.append(out.note)  # once per rebuild, like the node's log line
        if out.kernels is None:
            return
        msg = kernel_msg(out)
        self.output.emit("/audio/pose_kernel", msg, stamp, SENSOR_QOS)
        if "lifter" in self.stages and out.subtracted:
            from av_pose_ros.ros.conversions import kernels_from_msg

            self.on_kernels(kernels_from_msg(msg), stamp)  # as the lifter node receives it (float32 fields)

    def on_keypoints(self, kp, stamp: int) -> None:
        if "kernel" in self.stages:
            self.kernel.on_presence("keypoints", kp.keypoints.shape[0] > 0, stamp * 1e-9)
        if "lifter" in self.stages:
            self.lift(*self.lifter.on_keypoints(kp), stamp)

    def on_kernels(self, kernels, stamp: int) -> None:
        self.lift(*self.lifter.on_kernels(kernels), stamp)

    def lift(self, pairs: list, report, stamp: int) -> None:
        from tf2_msgs.msg import TFMessage

        from av_pose_ros.pipeline.common import StageError
        from av_pose_ros.ros.messages import pose_messages
        from av_pose_ros.ros.qos import RESULT_QOS
        from av_pose_ros.ros.tf import TF_QOS

        for code, text in report.problems.items():
            self.summary.problem(code, text)
        lp = self.p["lifter"]
        for kp, kernels in pairs:
            try:
                pose = self.lifter.lift(kp, kernels, stamp, timeout_s=0.0)
            except StageError as err:
                self.summary.problem(err.code, str(err))
                continue
            if pose is None:
                continue
            pose_msg, markers, transforms = pose_messages(pose, lp.min_joint_confidence, lp.publish_tf)
            self.output.emit("/human/pose_3d", pose_msg, stamp, RESULT_QOS)
            self.output.emit("/human/markers", markers, stamp, RESULT_QOS)
            if transforms:
                self.output.emit("/tf", TFMessage(transforms=transforms), stamp, TF_QOS)
            if "handover" in self.stages:
                self.on_pose(pose, stamp)

    def on_pose(self, pose, stamp: int) -> None:
        from av_pose_ros.pipeline.common import StageError
        from av_pose_ros.ros.messages import handover_msgs
        from av_pose_ros.ros.qos import RESULT_QOS

        try:
            out = self.handover.on_pose(pose, self.tree.lookup)
        except StageError as err:
            self.summary.problem(err.code, str(err))
            return
        if out.note:
            self.summary.problem("tf_camera", out.note)
        if out.target is not None:
            target_msg, info_msg = handover_msgs(out.target, pose, self.p["handover"].base_frame)
            self.output.emit("/handover/target", target_msg, stamp, RESULT_QOS)
            self.output.emit("/handover/target_info", info_msg, stamp, RESULT_QOS)
        if out.state_changed:
            self.emit_state(out.state, stamp)

    def flush(self, stamp: int) -> None:
        if "lifter" in self.stages:
            self.lift(*self.lifter.flush(), stamp)


def _dispatch(pipe: _Pipeline, stages: list[str], topic: str, msgtype: str, data: bytes, stamp: int) -> bool:
    """Hand one recorded message to the handlers; False when it is a lifter TF message that is re-created."""
    from rclpy.serialization import deserialize_message
    from tf2_msgs.msg import TFMessage

    from av_pose_ros.bag.typestore import message_class
    from av_pose_ros.ros.conversions import audio_from_msg, kernels_from_msg, keypoints_from_msg, pose3d_from_msg

    def msg():
        return deserialize_message(data, message_class(msgtype))

    if topic in ("/tf", "/tf_static"):
        tf = deserialize_message(data, TFMessage)
        if topic == "/tf" and "lifter" in stages and _lifter_tf_message(tf):
            return False
        pipe.on_tf(tf, topic == "/tf_static")
    elif topic == "/audio/frames" and "kernel" in stages:
        pipe.on_audio(audio_from_msg(msg()), stamp)
    elif topic == "/human/keypoints_2d" and ("kernel" in stages or "lifter" in stages):
        pipe.on_keypoints(keypoints_from_msg(msg()), stamp)
    elif topic == "/person_present" and "kernel" in stages:
        pipe.kernel.on_presence("person_present", bool(msg().data), stamp * 1e-9)
    elif topic == "/audio/pose_kernel" and "lifter" in stages and "kernel" not in stages:
        pipe.on_kernels(kernels_from_msg(msg()), stamp)
    elif topic == "/camera/camera_info" and "lifter" in stages:
        pipe.lifter.on_camera_info(msg().k, stamp)
    elif topic == "/human/pose_3d" and "handover" in stages and "lifter" not in stages:
        pipe.on_pose(pose3d_from_msg(msg()), stamp)
    return True


def reprocess(bag: BagReader, out: Path, stages: list[str], model_path: str | None = None,
              params: list[str] | None = None, storage: str = "mcap", progress: bool = True) -> Summary:
    stages = [s.strip() for s in stages if s.strip()]
    _check_inputs(bag, stages, out)
    from tqdm import tqdm

    from av_pose_ros.pipeline.common import StageError

    p = {s: load_parameters(NODES[s], stage_params(s), params or []) for s in STAGES}
    if model_path:  # a path the user typed is relative to where they are, not to the package
        p["lifter"].model_path = str(Path(model_path).resolve()) if Path(model_path).exists() else model_path
    lifter = fallback = None
    if "lifter" in stages:
        from av_pose_ros.pipeline.lifter import load_fallback, load_lifter

        try:
            lifter = load_lifter(p["lifter"])
            fallback = load_fallback(p["lifter"])
        except (OSError, ValueError, RuntimeError) as err:
            raise ReprocessError(f"cannot load the lifter's weights ({p['lifter'].model_path}, fallback "
                                 f"{p['lifter'].fallback_model_path or 'none'}): {err}") from err

    summary = Summary(out, stages)
    output = _Output(bag, out, storage, {t for s in stages for t in OUTPUTS[s]}, summary)
    pipe = _Pipeline(stages, p, lifter, output, summary, fallback)
    start = time.monotonic()
    last_stamp = bag.start_ns
    bar = tqdm(bag.messages(), total=bag.message_count, unit="msg", disable=not progress, desc="reprocess")
    try:
        for topic, stamp, data in bar:
            summary.read += 1
            last_stamp = stamp
            info = bag.topics[topic]
            if topic in output.replaced and topic != "/tf":
                continue
            pipe.time(stamp)
            pipe.tick(stamp)
            try:
                keep = _dispatch(pipe, stages, topic, info.msgtype, data, stamp)
            except StageError as err:
                summary.problem(err.code, str(err))
                keep = True
            except Exception as err:  # noqa: BLE001 - one bad message is counted and reported, never fatal
                summary.problem(f"input_{topic.strip('/').replace('/', '_')}", f"{type(err).__name__}: {err}")
                keep = True
            if keep:
                output.write(topic, info.msgtype, stamp, data)
        pipe.flush(last_stamp)
    finally:
        bar.close()
        output.close()
    summary.error = bag.error
    summary.seconds = time.monotonic() - start
    summary.bag_span_s = (bag.end_ns - bag.start_ns) * 1e-9
    return summary
