"""`av-pose reprocess`: the pose kernel, lifter and handover stages re-run offline on a recorded bag, message by
message in bag order and as fast as the CPU allows, with the nodes' own per-message code (`av_pose_ros.stages`,
the nodes' message builders, `sync.NearestPairer`, `tf_tree.TransformTree`). Differences from the live nodes are
deliberate: every keypoint/kernel pair is lifted (a live lifter that falls behind drops pairs), and time is the
messages' stamps rather than arrival time."""

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
           "handover": ("/handover/target", "/handover/target_info")}
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
        value = values[spec.name]
        problem = spec.check(value)
        if problem is None and spec.min is not None and isinstance(value, (int, float)) and not (
                spec.min <= value <= spec.max):
            problem = f"{spec.name}={value} is outside [{spec.min}, {spec.max}]"
        if problem:
            raise ReprocessError(f"{node}: {problem}")
    return SimpleNamespace(**values)


def _lifter_tf_message(msg) -> bool:
    """A /tf message the lifter published (only REP-155 body and joint frames): re-created when the lifter runs."""
    from av_pose_ros.primitives.skeleton import COCO17_JOINTS, rep155_joint_frame

    prefixes = ("body_",) + tuple(rep155_joint_frame(j, "") for j in COCO17_JOINTS)
    return bool(msg.transforms) and all(t.child_frame_id.startswith(prefixes) for t in msg.transforms)


def reprocess(bag: BagReader, out: Path, stages: list[str], model_path: str | None = None,
              params: list[str] | None = None, storage: str = "mcap", progress: bool = True) -> Summary:
    stages = [s.strip() for s in stages if s.strip()]
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

    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.rosbag2 import Writer
    from sensor_msgs.msg import CameraInfo
    from tf2_msgs.msg import TFMessage
    from tqdm import tqdm

    from av_pose_ros.acoustics.kernel import AudioInputError
    from av_pose_ros.bag.qos import to_bag_qos
    from av_pose_ros.bag.recorder import STORAGE
    from av_pose_ros.bag.typestore import message_class, typestore
    from av_pose_ros.msg import HumanPose3D, Keypoints2D, PoseKernel
    from av_pose_ros.nodes import handover_node, lifter_node, pose_kernel_node
    from av_pose_ros.pipeline.common import StageError
    from av_pose_ros.pipeline.handover import HandoverTracker
    from av_pose_ros.pipeline.kernel import KernelStage
    from av_pose_ros.pipeline.lifter import camera_matrix, lift_pose
    from av_pose_ros.primitives.pairing import NearestPairer
    from av_pose_ros.primitives.paths import package_file
    from av_pose_ros.primitives.transform_tree import TransformError, TransformTree
    from av_pose_ros.ros.conversions import (
        Pose3D,
        audio_from_msg,
        kernels_from_msg,
        keypoints_from_msg,
        ns_from_time,
        pose3d_from_msg,
        pose3d_to_msg,
    )
    from av_pose_ros.ros.qos import RESULT_QOS, SENSOR_QOS
    from av_pose_ros.ros.tf import TF_QOS, matrix_from_transform_msg

    p = {s: load_parameters(NODES[s], module.PARAMS, params or [])
         for s, module in (("kernel", pose_kernel_node), ("lifter", lifter_node), ("handover", handover_node))}
    if model_path:  # a path the user typed is relative to where they are, not to the package
        p["lifter"].model_path = str(Path(model_path).resolve()) if Path(model_path).exists() else model_path
    lifter = None
    if "lifter" in stages:
        from av_pose_ros.lifting import Lifter

        path = package_file(p["lifter"].model_path)
        try:
            lifter = Lifter.load(path, threads=p["lifter"].torch_threads, device=p["lifter"].device)
        except (OSError, ValueError, RuntimeError) as err:
            raise ReprocessError(f"cannot load lifter weights {path}: {err}") from err

    summary = Summary(out, stages)
    tree = TransformTree(cache_s=10.0)
    kernel_stage = KernelStage(p["kernel"], tree.lookup)
    pairer = NearestPairer(int(p["lifter"].sync_slop_s * 1e9))
    tracker = HandoverTracker(p["handover"])
    camera_info = [None]
    replaced = {t for s in stages for t in OUTPUTS[s]}

    store = typestore()
    writer = Writer(out, version=9, storage_plugin=STORAGE[storage])
    writer.open()
    connections: dict[str, object] = {}

    def write(topic: str, msgtype: str, stamp: int, data: bytes, qos=None) -> None:
        conn = connections.get(topic)
        if conn is None:
            info = bag.topics.get(topic)
            offered = info.qos if info is not None and topic not in replaced else [to_bag_qos(qos)] if qos else []
            conn = connections[topic] = writer.add_connection(topic, msgtype, typestore=store,
                                                              offered_qos_profiles=offered)
        writer.write(conn, stamp, data)
        summary.written[topic] = summary.written.get(topic, 0) + 1

    def emit(topic: str, msg, stamp: int, qos) -> None:
        write(topic, type(msg).__module__.split(".")[0] + "/msg/" + type(msg).__name__, stamp,
              serialize_message(msg), qos)

    def handover(pose, stamp: int) -> None:
        hp = p["handover"]
        try:
            base_from_pose = tree.lookup(hp.base_frame, pose.frame_id, pose.stamp_ns)
            target = tracker.update(pose, base_from_pose)
        except TransformError as err:
            summary.problem("tf", f"no transform {pose.frame_id} -> {hp.base_frame}: {err}")
            return
        except StageError as err:
            summary.problem(err.code, str(err))
            return
        if target is not None:
            target_msg, info_msg = handover_node.handover_msgs(target, pose, hp.base_frame)
            emit("/handover/target", target_msg, stamp, RESULT_QOS)
            emit("/handover/target_info", info_msg, stamp, RESULT_QOS)

    def lift_ready(stamp: int, flush: bool = False) -> None:
        if flush:
            pairer.newest_ns += pairer.max_wait_ns + 1  # the bag has ended: nothing better can arrive
        pairs, unmatched = pairer.pop_ready()
        if unmatched:
            summary.problem("no_audio", f"keypoint frame at {unmatched[0].stamp_ns * 1e-9:.3f} s without a pose "
                                        f"kernel within {p['lifter'].sync_slop_s * 1e3:.0f} ms")
        lp = p["lifter"]
        for lead, follow in pairs:
            kp, kernels = lead.item, follow.item
            info = camera_info[0]
            if info is None or abs(kp.stamp_ns - ns_from_time(info.header.stamp)) * 1e-9 > lp.camera_info_timeout_s:
                summary.problem("no_camera_info", "no camera/camera_info near the keypoints' stamp: cannot lift")
                continue
            if kp.keypoints.shape[0] == 0:
                continue
            try:
                K = camera_matrix(info.k)
                joints, confidence, covariance = lift_pose(lifter, kp, kernels, K, tree.lookup, lp.output_frame,
                                                           lp.position_std_m)
            except StageError as err:
                summary.problem(err.code, str(err))
                continue
            body_id = kp.body_ids[0]
            pose = Pose3D(kp.stamp_ns, lp.output_frame, body_id, joints, confidence, covariance, "cnn")
            emit("/human/pose_3d", pose3d_to_msg(pose), stamp, RESULT_QOS)
            emit("/human/markers", lifter_node.skeleton_markers(joints, confidence, lp.output_frame, kp.stamp_ns,
                                                                body_id, lp.min_joint_confidence), stamp, RESULT_QOS)
            if lp.publish_tf:
                emit("/tf", TFMessage(transforms=lifter_node.pose_transforms(
                    joints, confidence, lp.output_frame, kp.stamp_ns, body_id, lp.min_joint_confidence)), stamp, TF_QOS)
            if "handover" in stages:
                handover(pose, stamp)

    start = time.monotonic()
    last_stamp = bag.start_ns
    messages = bag.messages()
    bar = tqdm(messages, total=bag.message_count, unit="msg", disable=not progress, desc="reprocess")
    try:
        for topic, stamp, data in bar:
            summary.read += 1
            last_stamp = stamp
            info = bag.topics[topic]
            if topic in replaced and topic != "/tf":
                continue
            try:
                if topic in ("/tf", "/tf_static"):
                    msg = deserialize_message(data, TFMessage)
                    if topic == "/tf" and "lifter" in stages and _lifter_tf_message(msg):
                        continue
                    for t in msg.transforms:
                        try:
                            tree.set_transform(t.header.frame_id, t.child_frame_id, matrix_from_transform_msg(t),
                                               ns_from_time(t.header.stamp), topic == "/tf_static")
                        except TransformError as err:
                            summary.problem("tf", f"ignoring transform: {err}")
                elif topic == "/audio/frames" and "kernel" in stages:
                    audio = audio_from_msg(deserialize_message(data, message_class(info.msgtype)))
                    try:
                        built = kernel_stage.ensure_pipeline(audio)
                        window = kernel_stage.process(audio, audio.stamp_ns * 1e-9)
                    except TransformError as err:
                        summary.problem("tf", f"no transform for the rig frames in '{audio.frame_id}': {err}")
                        built = window = None
                    except AudioInputError as err:
                        summary.problem(f"input_{err.reason}", str(err))
                        built = window = None
                    if built:
                        summary.notes.append(built)  # once per rebuild, like the node's log line
                    if window is not None and window.kernels is not None:
                        msg = pose_kernel_node.kernel_msg(kernel_stage, audio, window)
                        emit("/audio/pose_kernel", msg, stamp, SENSOR_QOS)
                        if "lifter" in stages and window.subtracted:
                            k = kernels_from_msg(msg)
                            pairer.add_following(k.stamp_ns, k)
                            lift_ready(stamp)
                elif topic == "/human/keypoints_2d" and ("kernel" in stages or "lifter" in stages):
                    kp = keypoints_from_msg(deserialize_message(data, Keypoints2D))
                    if "kernel" in stages and p["kernel"].empty_room_update == "keypoints":
                        kernel_stage.presence.report(kp.keypoints.shape[0] > 0, kp.stamp_ns * 1e-9)
                    if "lifter" in stages:
                        if not kp.undistorted:
                            summary.problem("input_keypoints", "keypoints are distorted pixels")
                        else:
                            pairer.add_leading(kp.stamp_ns, kp)
                            lift_ready(stamp)
                elif topic == "/person_present" and "kernel" in stages and \
                        p["kernel"].empty_room_update == "person_present":
                    kernel_stage.presence.report(bool(deserialize_message(data, message_class(info.msgtype)).data),
                                                 stamp * 1e-9)
                elif topic == "/audio/pose_kernel" and "lifter" in stages and "kernel" not in stages:
                    k = kernels_from_msg(deserialize_message(data, PoseKernel))
                    if k.empty_room_subtracted:
                        pairer.add_following(k.stamp_ns, k)
                        lift_ready(stamp)
                elif topic == "/camera/camera_info" and "lifter" in stages:
                    camera_info[0] = deserialize_message(data, CameraInfo)
                elif topic == "/human/pose_3d" and "handover" in stages and "lifter" not in stages:
                    handover(pose3d_from_msg(deserialize_message(data, HumanPose3D)), stamp)
            except Exception as err:  # noqa: BLE001 - one bad message is counted and reported, never fatal
                summary.problem(f"input_{topic.strip('/').replace('/', '_')}", f"{type(err).__name__}: {err}")
            write(topic, info.msgtype, stamp, data)
        if "lifter" in stages:
            lift_ready(last_stamp, flush=True)
    finally:
        bar.close()
        writer.close()
    summary.error = bag.error
    summary.seconds = time.monotonic() - start
    summary.bag_span_s = (bag.end_ns - bag.start_ns) * 1e-9
    return summary
