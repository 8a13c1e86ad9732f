"""Non-learned baselines printed beside the CNN by every evaluation (DESIGN section 6).

* ``vision_only``: the PoseKernelLifter baseline. Without sound the only scale cue is an assumed body size: a
  1.7 m person. The body is taken to stand in a vertical plane facing the camera (perpendicular to the horizontal
  part of the box-centre ray); its distance is the one at which the canonical 1.7 m skeleton's frontal bone lengths
  match the bones cut out of that plane by the keypoint rays (a low quantile of the per-bone estimates, because
  foreshortening only ever shortens a bone), and every joint is placed where its ray meets the plane. Exact (up to
  the pose's own depth relief) for a 1.7 m person standing in the canonical pose facing the camera; the scale
  error is (true stature / 1.7) for everyone else.
* ``tof``: time of flight only. Every joint sits on its keypoint ray at the distance whose point best explains all
  pairs' kernels (geometric mean of the pairs' normalised kernels at that point's bistatic delays), searched
  around the coarse range of the body, plus a fixed offset from the echoing surface to the joint centre.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from av_pose_ros.acoustics.encoding import DelayTable
from av_pose_ros.primitives.skeleton import BONE_INDICES

from .features import (
    LiftingInputError,
    box_centre_ray,
    check_inputs,
    coarse_locate,
    keypoint_rays,
    normalise_kernels,
    valid_keypoints,
)

ASSUMED_STATURE_M = 1.7
BONE_QUANTILE = 0.3
SURFACE_TO_JOINT_M = 0.05     # echoing surface lies about a limb radius in front of the joint centre
TOF_WINDOW_M = (-0.6, 0.8)    # search window around the coarse reflector range
TOF_STEP_M = 0.01


@lru_cache(maxsize=4)
def canonical_frontal_bones(stature_m: float = ASSUMED_STATURE_M) -> np.ndarray:
    """(bones,) lengths of the canonical standing skeleton's bones seen from the front (body y-z plane)."""
    from av_pose_ros.sim.body import body_joints

    j = body_joints(stature_m, "standing")
    a, b = np.array(BONE_INDICES).T
    return np.linalg.norm(j[a][:, 1:] - j[b][:, 1:], axis=1)


def _fallback(joints: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """Joints without a usable keypoint take the mean of the placed ones."""
    out = joints.copy()
    if np.any(placed) and not np.all(placed):
        out[~placed] = joints[placed].mean(axis=0)
    return out


def vision_only(keypoints, K, world_from_camera, stature_m: float = ASSUMED_STATURE_M) -> np.ndarray:
    """(17, 3) world joints from 2D keypoints alone, assuming a person of ``stature_m``."""
    keypoints = np.asarray(keypoints, float)
    K = np.asarray(K, float)
    world_from_camera = np.asarray(world_from_camera, float)
    origin, central, _, _ = box_centre_ray(keypoints, K, world_from_camera)
    _, dirs = keypoint_rays(keypoints, K, world_from_camera)
    # the body is taken to stand in a vertical plane facing the camera: points at horizontal distance 1 along rays
    facing = np.array([central[0], central[1], 0.0])
    facing /= max(np.linalg.norm(facing), 1e-9)
    along = np.einsum("jd,d->j", np.nan_to_num(dirs), facing)
    valid = valid_keypoints(keypoints) & (along > 0.05)
    plane = np.nan_to_num(dirs) / np.where(valid, along, 1.0)[:, None]
    canon = canonical_frontal_bones(float(stature_m))
    estimates = []
    for (a, b), length in zip(BONE_INDICES, canon):
        if valid[a] and valid[b]:
            seen = np.linalg.norm(plane[a] - plane[b])      # bone length at distance 1
            if seen > 1e-4 and length > 0.05:
                estimates.append(length / seen)
    if not estimates:
        raise LiftingInputError("vision_only: no bone with both keypoints visible")
    distance = float(np.quantile(estimates, BONE_QUANTILE))
    joints = np.zeros((17, 3))
    joints[valid] = origin + distance * plane[valid]
    return _fallback(joints, valid)


def tof(keypoints, K, world_from_camera, kernels, speakers, mics, fs, speed_of_sound: float = 343.0,
        coarse_range_m: float | None = None) -> np.ndarray:
    """(17, 3) world joints: each on its keypoint ray at the distance that best explains the kernels."""
    keypoints, K, world_from_camera, kernels, speakers, mics = check_inputs(keypoints, K, world_from_camera, kernels,
                                                                             speakers, mics)
    if coarse_range_m is None:
        coarse_range_m = coarse_locate(keypoints, K, world_from_camera, kernels, speakers, mics, fs,
                                       speed_of_sound).range_m
    origin, dirs = keypoint_rays(keypoints, K, world_from_camera)
    valid = valid_keypoints(keypoints)
    t = np.arange(max(0.3, coarse_range_m + TOF_WINDOW_M[0]), coarse_range_m + TOF_WINDOW_M[1], TOF_STEP_M)
    idx = np.flatnonzero(valid)
    points = (origin + t[None, :, None] * dirs[idx][:, None, :]).reshape(-1, 3)
    table = DelayTable(points, speakers, mics, fs, speed_of_sound, kernels.shape[-1], voxel_size_m=2 * TOF_STEP_M)
    enc = table.encode(normalise_kernels(kernels)).reshape(len(speakers), len(idx), len(t))
    peak = np.maximum(normalise_kernels(kernels).max(axis=1), 1e-12)[:, None, None]
    score = np.exp(np.mean(np.log(np.maximum(enc / peak, 1e-9)), axis=0))        # (joints, steps)
    best = t[np.argmax(score, axis=1)] + SURFACE_TO_JOINT_M
    joints = np.zeros((17, 3))
    joints[idx] = origin + best[:, None] * dirs[idx]
    return _fallback(joints, valid)
