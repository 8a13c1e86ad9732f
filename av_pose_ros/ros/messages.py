"""Every output message the stages publish, built from the stage handlers' results: the one place nodes and
`av-pose reprocess` get their messages from, so live and offline output cannot differ in form.

The field-level packing (numpy arrays <-> flat message buffers, validation on unpacking) is in `conversions`; this
module assembles whole messages from handler outputs."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, PoseStamped
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from av_pose_ros.msg import HandoverTarget, HumanPose3D, Keypoints2D, PoseKernel
from av_pose_ros.primitives.geometry import make_transform
from av_pose_ros.primitives.skeleton import (
    BONE_INDICES,
    COCO17_JOINTS,
    LEFT_HIP,
    RIGHT_HIP,
    rep155_body_frame,
    rep155_joint_frame,
)
from av_pose_ros.ros.conversions import (
    Handover,
    Kernels,
    Keypoints,
    handover_to_msg,
    kernels_to_msg,
    keypoints_to_msg,
    make_header,
    pose3d_to_msg,
    pose_msg,
)
from av_pose_ros.ros.tf import transform_msg

# -- pose kernel stage ----------------------------------------------------------------------------------------------

def kernel_msg(out) -> PoseKernel:
    """audio/pose_kernel for one processed window (`pipeline.kernel.KernelOutput` with kernels)."""
    return kernels_to_msg(Kernels(out.stamp_ns, out.frame_id, out.kernels, out.sample_rate, out.speaker_frames,
                                  out.mic_frames, speed_of_sound=out.speed_of_sound,
                                  empty_room_subtracted=out.subtracted, snr_db=out.snr_db, sequence=out.sequence))


def point_cloud_msg(points: np.ndarray, intensity: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud2:
    """PointCloud2 with float32 x, y, z, intensity (16-byte points, little-endian, one row)."""
    data = np.empty((len(points), 4), dtype="<f4")
    data[:, :3] = points
    data[:, 3] = intensity
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate(("x", "y", "z", "intensity"))]
    return PointCloud2(header=make_header(stamp_ns, frame_id), height=1, width=len(points), fields=fields,
                       is_bigendian=False, point_step=16, row_step=16 * len(points), data=data.tobytes(),
                       is_dense=True)


# -- keypoint stage -------------------------------------------------------------------------------------------------

def keypoints_msg(out, stamp_ns: int, frame_id: str, width: int, height: int) -> Keypoints2D:
    """human/keypoints_2d for one image (`pipeline.keypoints.KeypointOutput`, or the simulator's detections)."""
    return keypoints_to_msg(Keypoints(stamp_ns, frame_id, out.people, width, height, out.body_ids,
                                      undistorted=out.undistorted))


def camera_info_msg(camera, stamp_ns: int, frame: str) -> CameraInfo:
    """CameraInfo of a `vision.camera.CameraModel` (rectified projection = K, no rotation)."""
    msg = CameraInfo(header=make_header(stamp_ns, frame), width=int(camera.width), height=int(camera.height),
                     distortion_model=camera.distortion_model)
    msg.k = [float(v) for v in np.asarray(camera.K).ravel()]
    msg.d = [float(v) for v in np.asarray(camera.D).ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(v) for v in np.hstack([np.asarray(camera.K), np.zeros((3, 1))]).ravel()]
    return msg


# -- lifter stage ---------------------------------------------------------------------------------------------------

def confidence_colour(confidence: float) -> ColorRGBA:
    """Red (unsure) to green (sure)."""
    c = float(np.clip(confidence, 0.0, 1.0))
    return ColorRGBA(r=1.0 - c, g=c, b=0.1, a=1.0)


def skeleton_markers(joints: np.ndarray, confidence: np.ndarray, frame: str, stamp_ns: int, body_id: str,
                     min_confidence: float) -> MarkerArray:
    """Joint spheres and bone lines coloured by confidence (joints below `min_confidence` left out)."""
    header = make_header(stamp_ns, frame)
    life = Duration(sec=0, nanosec=500_000_000)
    spheres = Marker(header=header, ns=f"body_{body_id}/joints", id=0, type=Marker.SPHERE_LIST,
                     action=Marker.ADD, lifetime=life)
    spheres.scale.x = spheres.scale.y = spheres.scale.z = 0.06
    spheres.pose.orientation.w = 1.0
    bones = Marker(header=header, ns=f"body_{body_id}/bones", id=1, type=Marker.LINE_LIST, action=Marker.ADD,
                   lifetime=life)
    bones.scale.x = 0.02
    bones.pose.orientation.w = 1.0
    shown = confidence >= min_confidence
    for j in np.flatnonzero(shown):
        spheres.points.append(Point(x=float(joints[j, 0]), y=float(joints[j, 1]), z=float(joints[j, 2])))
        spheres.colors.append(confidence_colour(confidence[j]))
    for a, b in BONE_INDICES:
        if shown[a] and shown[b]:
            for j in (a, b):
                bones.points.append(Point(x=float(joints[j, 0]), y=float(joints[j, 1]), z=float(joints[j, 2])))
                bones.colors.append(confidence_colour(min(confidence[a], confidence[b])))
    return MarkerArray(markers=[spheres, bones])


def pose_transforms(joints, confidence, frame: str, stamp_ns: int, body_id: str, min_confidence: float) -> list:
    """REP-155 `body_<id>` (mid-hip) and the confident joints' frames under `frame`."""
    mid_hip = 0.5 * (joints[LEFT_HIP] + joints[RIGHT_HIP])
    transforms = [transform_msg(frame, rep155_body_frame(body_id), make_transform(None, mid_hip), stamp_ns)]
    for j, name in enumerate(COCO17_JOINTS):
        if confidence[j] >= min_confidence:
            transforms.append(transform_msg(frame, rep155_joint_frame(name, body_id),
                                            make_transform(None, joints[j]), stamp_ns))
    return transforms


def pose_messages(pose, min_confidence: float, with_tf: bool) -> tuple[HumanPose3D, MarkerArray, list]:
    """human/pose_3d, human/markers and the REP-155 transforms (empty unless `with_tf`) of one lifted pose
    (`pipeline.lifter.PoseOutput`)."""
    args = (pose.joints, pose.confidence, pose.frame_id, pose.stamp_ns, pose.body_id, min_confidence)
    return (pose3d_to_msg(pose), skeleton_markers(*args), pose_transforms(*args) if with_tf else [])


# -- handover stage -------------------------------------------------------------------------------------------------

def handover_msgs(target, pose, base_frame: str) -> tuple[PoseStamped, HandoverTarget]:
    """handover/target and handover/target_info for one tracker result (`pipeline.handover.HandoverResult`)."""
    info = Handover(pose.stamp_ns, base_frame, pose.body_id, target.hand, target.position, target.orientation,
                    target.velocity, target.confidence, target.reachable, target.distance)
    info_msg = handover_to_msg(info)
    info_msg.state = target.state
    info_msg.held_s = float(target.held_s)
    info_msg.position_std = float(target.position_std_m)
    return (PoseStamped(header=make_header(pose.stamp_ns, base_frame), pose=pose_msg(target.position,
                                                                                    target.orientation)),
            info_msg)
