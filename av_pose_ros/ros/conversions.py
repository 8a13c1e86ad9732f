"""numpy <-> ROS message conversions for every custom message and for sensor_msgs/Image.

Unpacking validates: a size mismatch, a non-finite value or an unknown encoding raises `MessageError`, the one
exception type nodes turn into a throttled warning and a diagnostic. Arrays cross as flat `array.array` buffers,
which is what rosidl stores, so large audio frames convert without per-element Python loops.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import Header

from av_pose_ros.msg import (
    AudioFrame,
    HandoverTarget,
    HeadRotation,
    HumanPose3D,
    Keypoints2D,
    PoseKernel,
    SoundDirection,
)
from av_pose_ros.primitives.skeleton import COCO17_JOINTS


class MessageError(ValueError):
    """A message that cannot be used: wrong sizes, non-finite values, unknown encoding."""


# -- headers and stamps -------------------------------------------------------------------------------------------

def time_from_ns(stamp_ns: int) -> Time:
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def ns_from_time(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=time_from_ns(stamp_ns), frame_id=frame_id)


def _f32(values) -> array.array:
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def _f64(values) -> array.array:
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def _f32_scalar(value) -> float:
    """A float exactly as a float32 message field will carry it, so messages compare equal after transport."""
    return float(np.float32(value))


def _read(buffer, dtype, expected: int, what: str) -> np.ndarray:
    values = np.frombuffer(buffer, dtype=dtype) if len(buffer) else np.zeros(0, dtype=dtype)
    if values.size != expected:
        raise MessageError(f"{what}: {values.size} values, header says {expected}")
    if not np.all(np.isfinite(values)):
        raise MessageError(f"{what}: contains NaN or Inf")
    return values


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MessageError(message)


# -- AudioFrame ---------------------------------------------------------------------------------------------------

@dataclass
class Audio:
    """Unpacked AudioFrame: audio (channels, samples) and probe (speakers, probe_samples), float32."""

    stamp_ns: int
    frame_id: str
    audio: np.ndarray
    sample_rate: int
    mic_frames: list[str]
    probe: np.ndarray
    speaker_frames: list[str]
    probe_type: str = "chirp"
    sequence: int = 0


def audio_to_msg(a: Audio) -> AudioFrame:
    audio = np.atleast_2d(np.asarray(a.audio, dtype=np.float32))
    probe = np.atleast_2d(np.asarray(a.probe, dtype=np.float32)) if np.size(a.probe) else np.zeros((0, 0))
    return AudioFrame(header=make_header(a.stamp_ns, a.frame_id), sequence=int(a.sequence),
                      sample_rate=int(a.sample_rate), num_channels=audio.shape[0], num_samples=audio.shape[1],
                      mic_frames=list(a.mic_frames), data=_f32(audio), probe_type=a.probe_type,
                      speaker_frames=list(a.speaker_frames), probe_num_samples=probe.shape[1] if probe.size else 0,
                      probe=_f32(probe))


def audio_from_msg(msg: AudioFrame) -> Audio:
    c, n = msg.num_channels, msg.num_samples
    _require(msg.sample_rate > 0, "AudioFrame: sample_rate must be positive")
    _require(c > 0 and n > 0, f"AudioFrame: empty ({c} channels x {n} samples)")
    _require(len(msg.mic_frames) == c, f"AudioFrame: {len(msg.mic_frames)} mic_frames for {c} channels")
    audio = _read(msg.data, np.float32, c * n, "AudioFrame.data").reshape(c, n)
    s, p = len(msg.speaker_frames), msg.probe_num_samples
    probe = _read(msg.probe, np.float32, s * p, "AudioFrame.probe").reshape(s, p)
    return Audio(ns_from_time(msg.header.stamp), msg.header.frame_id, audio, int(msg.sample_rate),
                 list(msg.mic_frames), probe, list(msg.speaker_frames), msg.probe_type, int(msg.sequence))


# -- PoseKernel ---------------------------------------------------------------------------------------------------

@dataclass
class Kernels:
    """Unpacked PoseKernel: kernels (pairs, taps) float32, tap k = delay k / sample_rate after emission."""

    stamp_ns: int
    frame_id: str
    kernels: np.ndarray
    sample_rate: int
    speaker_frames: list[str]
    mic_frames: list[str]
    speed_of_sound: float = 343.0
    empty_room_subtracted: bool = True
    snr_db: float = 0.0
    sequence: int = 0


def kernels_to_msg(k: Kernels) -> PoseKernel:
    kernels = np.atleast_2d(np.asarray(k.kernels, dtype=np.float32))
    return PoseKernel(header=make_header(k.stamp_ns, k.frame_id), sequence=int(k.sequence),
                      sample_rate=int(k.sample_rate), num_pairs=kernels.shape[0], num_taps=kernels.shape[1],
                      speaker_frames=list(k.speaker_frames), mic_frames=list(k.mic_frames), data=_f32(kernels),
                      speed_of_sound=_f32_scalar(k.speed_of_sound),
                      empty_room_subtracted=bool(k.empty_room_subtracted), snr_db=_f32_scalar(k.snr_db))


def kernels_from_msg(msg: PoseKernel) -> Kernels:
    p, t = msg.num_pairs, msg.num_taps
    _require(msg.sample_rate > 0, "PoseKernel: sample_rate must be positive")
    _require(p > 0 and t > 0, f"PoseKernel: empty ({p} pairs x {t} taps)")
    _require(len(msg.speaker_frames) == p and len(msg.mic_frames) == p,
             f"PoseKernel: {len(msg.speaker_frames)} speaker and {len(msg.mic_frames)} mic frames for {p} pairs")
    _require(np.isfinite(msg.speed_of_sound) and msg.speed_of_sound > 0, "PoseKernel: speed_of_sound invalid")
    kernels = _read(msg.data, np.float32, p * t, "PoseKernel.data").reshape(p, t)
    return Kernels(ns_from_time(msg.header.stamp), msg.header.frame_id, kernels, int(msg.sample_rate),
                   list(msg.speaker_frames), list(msg.mic_frames), float(msg.speed_of_sound),
                   bool(msg.empty_room_subtracted), float(msg.snr_db), int(msg.sequence))


# -- Keypoints2D --------------------------------------------------------------------------------------------------

@dataclass
class Keypoints:
    """Unpacked Keypoints2D: keypoints (people, joints, 3) as u, v (pixels), confidence."""

    stamp_ns: int
    frame_id: str
    keypoints: np.ndarray
    image_width: int
    image_height: int
    body_ids: list[str]
    undistorted: bool = True
    joint_names: list[str] = field(default_factory=lambda: list(COCO17_JOINTS))


def keypoints_to_msg(k: Keypoints) -> Keypoints2D:
    kp = np.array(k.keypoints, dtype=np.float32).reshape(len(k.body_ids), len(k.joint_names), 3)
    missed = ~np.all(np.isfinite(kp), axis=-1) | (kp[..., 2] <= 0)
    kp[missed] = 0.0  # a missed joint travels as (0, 0) with confidence 0, never as NaN
    return Keypoints2D(header=make_header(k.stamp_ns, k.frame_id), image_width=int(k.image_width),
                       image_height=int(k.image_height), undistorted=bool(k.undistorted), num_people=kp.shape[0],
                       num_joints=kp.shape[1], joint_names=list(k.joint_names), body_ids=list(k.body_ids),
                       u=_f32(kp[..., 0]), v=_f32(kp[..., 1]), confidence=_f32(kp[..., 2]))


def keypoints_from_msg(msg: Keypoints2D) -> Keypoints:
    p, j = msg.num_people, msg.num_joints
    _require(len(msg.joint_names) == j, f"Keypoints2D: {len(msg.joint_names)} joint_names for {j} joints")
    _require(len(msg.body_ids) == p, f"Keypoints2D: {len(msg.body_ids)} body_ids for {p} people")
    _require(msg.image_width > 0 and msg.image_height > 0, "Keypoints2D: image size must be positive")
    u = _read(msg.u, np.float32, p * j, "Keypoints2D.u")
    v = _read(msg.v, np.float32, p * j, "Keypoints2D.v")
    c = _read(msg.confidence, np.float32, p * j, "Keypoints2D.confidence")
    _require(bool(np.all((c >= 0) & (c <= 1))), "Keypoints2D.confidence: values outside [0, 1]")
    kp = np.stack([u, v, c], axis=-1).reshape(p, j, 3)
    return Keypoints(ns_from_time(msg.header.stamp), msg.header.frame_id, kp, int(msg.image_width),
                     int(msg.image_height), list(msg.body_ids), bool(msg.undistorted), list(msg.joint_names))


# -- HumanPose3D --------------------------------------------------------------------------------------------------

@dataclass
class Pose3D:
    """Unpacked HumanPose3D: joints (J, 3) metres, confidence (J,), covariance (J, 3, 3) m^2."""

    stamp_ns: int
    frame_id: str
    body_id: str
    joints: np.ndarray
    confidence: np.ndarray
    covariance: np.ndarray | None = None
    source: str = "cnn"
    joint_names: list[str] = field(default_factory=lambda: list(COCO17_JOINTS))


def pose3d_to_msg(p: Pose3D) -> HumanPose3D:
    joints = np.asarray(p.joints, dtype=np.float64).reshape(-1, 3)
    cov = np.zeros((len(joints), 3, 3)) if p.covariance is None else np.asarray(p.covariance, dtype=np.float64)
    return HumanPose3D(header=make_header(p.stamp_ns, p.frame_id), body_id=p.body_id,
                       joint_names=list(p.joint_names),
                       positions=[Point(x=float(x), y=float(y), z=float(z)) for x, y, z in joints],
                       confidence=_f32(p.confidence), position_covariance=_f64(cov.reshape(-1)), source=p.source)


def pose3d_from_msg(msg: HumanPose3D) -> Pose3D:
    j = len(msg.joint_names)
    _require(j > 0, "HumanPose3D: no joints")
    _require(len(msg.positions) == j, f"HumanPose3D: {len(msg.positions)} positions for {j} joint_names")
    joints = np.array([[q.x, q.y, q.z] for q in msg.positions], dtype=np.float64)
    _require(bool(np.all(np.isfinite(joints))), "HumanPose3D.positions: contains NaN or Inf")
    conf = _read(msg.confidence, np.float32, j, "HumanPose3D.confidence")
    cov = _read(msg.position_covariance, np.float64, 9 * j, "HumanPose3D.position_covariance").reshape(j, 3, 3)
    return Pose3D(ns_from_time(msg.header.stamp), msg.header.frame_id, msg.body_id, joints, conf, cov, msg.source,
                  list(msg.joint_names))


# -- HandoverTarget -----------------------------------------------------------------------------------------------

@dataclass
class Handover:
    """Unpacked HandoverTarget: position (3,), orientation (x, y, z, w), velocity (3,)."""

    stamp_ns: int
    frame_id: str
    body_id: str
    hand: str
    position: np.ndarray
    orientation: np.ndarray
    velocity: np.ndarray
    confidence: float
    reachable: bool
    distance: float


def pose_msg(position, orientation) -> Pose:
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in orientation)
    return Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def handover_to_msg(h: Handover) -> HandoverTarget:
    vx, vy, vz = (float(v) for v in h.velocity)
    return HandoverTarget(header=make_header(h.stamp_ns, h.frame_id), body_id=h.body_id, hand=h.hand,
                          pose=pose_msg(h.position, h.orientation), velocity=Vector3(x=vx, y=vy, z=vz),
                          confidence=_f32_scalar(h.confidence), reachable=bool(h.reachable),
                          distance=_f32_scalar(h.distance))


def handover_from_msg(msg: HandoverTarget) -> Handover:
    _require(msg.hand in ("left", "right"), f"HandoverTarget.hand: '{msg.hand}' is not 'left' or 'right'")
    p, o, v = msg.pose.position, msg.pose.orientation, msg.velocity
    values = np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w, v.x, v.y, v.z, msg.confidence, msg.distance])
    _require(bool(np.all(np.isfinite(values))), "HandoverTarget: contains NaN or Inf")
    return Handover(ns_from_time(msg.header.stamp), msg.header.frame_id, msg.body_id, msg.hand, values[:3],
                    values[3:7], values[7:10], float(msg.confidence), bool(msg.reachable), float(msg.distance))


# -- SoundDirection and HeadRotation ------------------------------------------------------------------------------

def sound_direction_to_msg(stamp_ns: int, frame_id: str, azimuth: float, confidence: float,
                           elevation: float = 0.0, front_back_folded: bool = True,
                           front_back_confidence: float = 0.5) -> SoundDirection:
    direction = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                          np.sin(elevation)])
    return SoundDirection(header=make_header(stamp_ns, frame_id), azimuth=_f32_scalar(azimuth),
                          elevation=_f32_scalar(elevation),
                          direction=Vector3(x=float(direction[0]), y=float(direction[1]), z=float(direction[2])),
                          front_back_folded=bool(front_back_folded), confidence=_f32_scalar(confidence),
                          front_back_confidence=_f32_scalar(front_back_confidence))


def sound_direction_from_msg(msg: SoundDirection) -> tuple[float, float, float]:
    """(azimuth, elevation, confidence) in radians / 0..1."""
    values = (float(msg.azimuth), float(msg.elevation), float(msg.confidence))
    _require(bool(np.all(np.isfinite(values))), "SoundDirection: contains NaN or Inf")
    return values


def head_rotation_to_msg(stamp_ns: int, previous_stamp_ns: int, frame_id: str, relative_yaw: float,
                         integrated_yaw: float, confidence: float) -> HeadRotation:
    return HeadRotation(header=make_header(stamp_ns, frame_id), previous_stamp=time_from_ns(previous_stamp_ns),
                        relative_yaw=_f32_scalar(relative_yaw), integrated_yaw=float(integrated_yaw),
                        confidence=_f32_scalar(confidence))


def head_rotation_from_msg(msg: HeadRotation) -> tuple[float, float, float]:
    """(relative_yaw, integrated_yaw, confidence)."""
    values = (float(msg.relative_yaw), float(msg.integrated_yaw), float(msg.confidence))
    _require(bool(np.all(np.isfinite(values))), "HeadRotation: contains NaN or Inf")
    return values
