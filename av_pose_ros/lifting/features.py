"""Geometry shared by the lifter, its training data and the baselines: keypoint rays, the coarse person locator
and the person-centred fine grid with its ray and audio encodings.

Frames: every input is in one *world* frame (the node passes ``base_link``) whose z axis points up (REP-103).
``world_from_camera`` maps optical-frame points into it. The fine grid is a cube in a *person frame*: origin at the
coarse person centre, x along the horizontal direction from the camera to the person, z up, y = z cross x. Using
that frame (instead of world axes) makes the network's task the same at every azimuth and camera yaw.

Coarse localisation (non-learned, DESIGN section 6): candidate voxels of a 0.1 m grid in front of the camera that
project inside the keypoints' bounding box are scored by (best keypoint-ray agreement) x (geometric mean over
pairs of the smoothed, normalised pose-kernel encodings) x (a broad prior on the range from the keypoints'
apparent size); the best voxel gives the range of the strongest body reflector (the torso front) and the fine cube
is centred on the box-centre ray just behind it.

Why the range prior: in rooms with body-wall paths, body shadowing and imperfect direct-path removal (generator v3)
the strongest echo along the rays is often not the body: a residual of the direct paths near the rig or a ghost /
shadowed wall path 1-2 m behind the person. A 1.7 m person's apparent size (``baselines.vision_only``) gives the
range to within the stature ratio (0.55-1.2 for 0.9-2.05 m), so a log-normal weight, centred at 0.85 x that range
with sigma 0.45 in log-range, keeps every plausible range and suppresses echoes two to five times nearer or farther.
Measured on the val streams (coarse centre farther than 0.6 m from the torso): default 19 % -> 3 %, train_mix 26 % ->
17 % (people beyond the kernel's 4.2 m remain), train_close 1 % -> 4 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from av_pose_ros.acoustics.encoding import DelayTable, fuse_pairs
from av_pose_ros.primitives.geometry import invert_transform
from av_pose_ros.vision.rays import ray_encoding

MIN_KEYPOINT_CONFIDENCE = 1e-3
BODY_HALF_DEPTH_M = 0.10     # fine-cube centre sits this far behind the strongest (front) reflector
RANGE_PRIOR_FACTOR = 0.85    # range prior centre: this x the range at which a 1.7 m person looks this size
RANGE_PRIOR_SIGMA = 0.45     # its width in natural-log range (module docstring); 0 switches the prior off


class LiftingInputError(ValueError):
    """Inputs the lifter cannot use (wrong shapes, too few keypoints, no echo); the message says which."""


@dataclass(frozen=True)
class FineGrid:
    """A cube of ``n``^3 voxels and side ``size_m`` in the person frame (``centre``, ``rotation`` columns = axes)."""

    centre: np.ndarray      # (3,) world
    rotation: np.ndarray    # (3, 3) world_from_person rotation
    size_m: float
    n: int

    @property
    def spacing_m(self) -> float:
        return self.size_m / self.n

    def local_axis(self) -> np.ndarray:
        """(n,) voxel-centre coordinates along one axis, metres from the centre."""
        return (np.arange(self.n) - (self.n - 1) / 2) * self.spacing_m

    def local_points(self) -> np.ndarray:
        a = self.local_axis()
        return np.stack(np.meshgrid(a, a, a, indexing="ij"), axis=-1).reshape(-1, 3)

    def points(self) -> np.ndarray:
        """(n^3, 3) world voxel centres, C order (person x slowest)."""
        return self.local_points() @ self.rotation.T + self.centre

    def to_local(self, world: np.ndarray) -> np.ndarray:
        return (np.asarray(world, float) - self.centre) @ self.rotation

    def to_world(self, local: np.ndarray) -> np.ndarray:
        return np.asarray(local, float) @ self.rotation.T + self.centre


def check_inputs(keypoints, K, world_from_camera, kernels, speakers, mics):
    """Arrays of the right shapes and dtypes, or ``LiftingInputError`` naming the offender."""
    keypoints = np.asarray(keypoints, float)
    K = np.asarray(K, float)
    world_from_camera = np.asarray(world_from_camera, float)
    kernels = np.asarray(kernels, np.float32)
    speakers = np.asarray(speakers, float)
    mics = np.asarray(mics, float)
    if keypoints.shape != (17, 3):
        raise LiftingInputError(f"keypoints must be (17, 3) [u, v, confidence], got {keypoints.shape}")
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise LiftingInputError(f"K must be a finite 3x3 intrinsic matrix, got {K.shape}")
    if world_from_camera.shape != (4, 4) or not np.all(np.isfinite(world_from_camera)):
        raise LiftingInputError(f"world_from_camera must be a finite 4x4 transform, got {world_from_camera.shape}")
    if kernels.ndim != 2 or kernels.shape[0] < 1 or not np.all(np.isfinite(kernels)):
        raise LiftingInputError(f"kernels must be a finite (pairs, taps) array, got {kernels.shape}")
    if speakers.shape != (kernels.shape[0], 3) or mics.shape != (kernels.shape[0], 3):
        raise LiftingInputError(f"speakers {speakers.shape} and mics {mics.shape} must be (pairs, 3) with "
                                f"pairs = {kernels.shape[0]} (one row per kernel)")
    return keypoints, K, world_from_camera, kernels, speakers, mics


def valid_keypoints(keypoints: np.ndarray) -> np.ndarray:
    return (np.isfinite(keypoints).all(axis=1)) & (np.nan_to_num(keypoints[:, 2]) > MIN_KEYPOINT_CONFIDENCE)


def keypoint_rays(keypoints: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray):
    """Camera centre (3,) and unit world directions (17, 3) of the keypoints' viewing rays (NaN where missing)."""
    uv = np.asarray(keypoints, float)[:, :2]
    d = np.column_stack([uv, np.ones(len(uv))]) @ np.linalg.inv(K).T
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return world_from_camera[:3, 3].copy(), d @ world_from_camera[:3, :3].T


def optical_depth(points: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    cam = invert_transform(world_from_camera)
    return np.asarray(points, float) @ cam[2, :3] + cam[2, 3]


def normalise_kernels(kernels: np.ndarray) -> np.ndarray:
    """Kernels divided by their largest value over all pairs (keeps the pairs' relative strengths)."""
    kernels = np.asarray(kernels, np.float32)
    peak = float(np.max(kernels)) if kernels.size else 0.0
    return kernels / peak if peak > 0 else kernels


def person_frame(direction: np.ndarray) -> np.ndarray:
    """world_from_person rotation: x = horizontal part of ``direction``, z = world up."""
    fwd = np.array([direction[0], direction[1], 0.0])
    if np.linalg.norm(fwd) < 1e-6:
        fwd = np.array([1.0, 0.0, 0.0])
    fwd /= np.linalg.norm(fwd)
    up = np.array([0.0, 0.0, 1.0])
    return np.stack([fwd, np.cross(up, fwd), up], axis=1)


@dataclass
class CoarseResult:
    centre: np.ndarray          # (3,) fine-cube centre, world
    rotation: np.ndarray        # (3, 3) world_from_person
    reflector: np.ndarray       # (3,) best coarse voxel (strongest body reflector)
    range_m: float              # camera -> reflector distance
    score: float                # fused score at the best voxel (0 means no echo agreed with the rays)


def box_centre_ray(keypoints, K, world_from_camera):
    valid = valid_keypoints(keypoints)
    if valid.sum() < 3:
        raise LiftingInputError(f"only {int(valid.sum())} usable keypoints (need 3)")
    uv = keypoints[valid, :2]
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    centre_px = np.array([[*(0.5 * (lo + hi)), 1.0]])
    origin, d = keypoint_rays(centre_px, K, world_from_camera)
    return origin, d[0], lo, hi


@lru_cache(maxsize=8)
def projected_coarse_grid(world_from_camera: bytes, K: bytes, spacing_m: float, min_range_m: float,
                          max_range_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World points, pixels (u, v) and optical depth of the coarse grid's voxels in front of the camera.

    The grid is camera-centred and gravity-aligned, so it depends only on the camera pose and intrinsics (passed
    as the bytes of the float64 arrays, to be hashable): a robot's fixed camera projects it once, not per frame.
    """
    world_from_camera = np.frombuffer(world_from_camera).reshape(4, 4)
    K = np.frombuffer(K).reshape(3, 3)
    xs = np.arange(min_range_m, max_range_m + 1e-9, spacing_m)
    ys = np.arange(-3.0, 3.0 + 1e-9, spacing_m)
    zs = np.arange(-2.0, 2.0 + 1e-9, spacing_m)
    local = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), axis=-1).reshape(-1, 3)
    cam_rot = person_frame(world_from_camera[:3, 2])    # camera yaw frame
    points = local @ cam_rot.T + world_from_camera[:3, 3]
    cam = invert_transform(world_from_camera)
    p = points @ cam[:3, :3].T + cam[:3, 3]
    front = p[:, 2] > 0.2
    points, p = points[front], p[front]
    z = p[:, 2]
    u = K[0, 0] * p[:, 0] / z + K[0, 1] * p[:, 1] / z + K[0, 2]
    v = K[1, 1] * p[:, 1] / z + K[1, 2]
    for a in (points, u, v, z):
        a.flags.writeable = False
    return points, u, v, z


def vision_range_prior(keypoints, K, world_from_camera, origin, central, points: np.ndarray,
                       sigma: float = RANGE_PRIOR_SIGMA, factor: float = RANGE_PRIOR_FACTOR) -> np.ndarray:
    """(V,) weight of each candidate point's range under the apparent-size prior (module docstring); all ones
    when it is off or no bone is visible."""
    from .baselines import vision_only

    if sigma <= 0:
        return np.ones(len(points))
    try:
        joints = vision_only(keypoints, K, world_from_camera)
    except LiftingInputError:
        return np.ones(len(points))
    expected = factor * max(float(np.dot(joints.mean(axis=0) - origin, central)), 0.3)
    ranges = np.maximum(np.linalg.norm(points - origin, axis=1), 1e-3)
    return np.exp(-0.5 * (np.log(ranges / expected) / sigma) ** 2)


def coarse_locate(keypoints, K, world_from_camera, kernels, speakers, mics, fs: float, c: float,
                  spacing_m: float = 0.1, max_range_m: float = 6.0, min_range_m: float = 0.4,
                  range_prior_sigma: float = RANGE_PRIOR_SIGMA) -> CoarseResult:
    """Locate the person on a coarse grid from the keypoint rays, the pose kernels and a broad range prior from
    the keypoints' apparent size (see module docstring)."""
    keypoints = np.asarray(keypoints, float)
    origin, central, lo, hi = box_centre_ray(keypoints, K, world_from_camera)
    rotation = person_frame(central)
    points, u, v, z = projected_coarse_grid(np.ascontiguousarray(world_from_camera, float).tobytes(),
                                            np.ascontiguousarray(K, float).tobytes(), spacing_m, min_range_m,
                                            max_range_m)
    pad = 0.1 * (hi - lo) + 10.0
    keep = (u >= lo[0] - pad[0]) & (u <= hi[0] + pad[0]) & (v >= lo[1] - pad[1]) & (v <= hi[1] + pad[1])
    if not np.any(keep):
        raise LiftingInputError("no coarse voxel projects into the keypoints' box")
    points, u, v, z = points[keep], u[keep], v[keep], z[keep]
    valid = valid_keypoints(keypoints)
    kp = keypoints[valid]
    sigma = 0.5 * spacing_m * K[0, 0] / z + 4.0          # a voxel's footprint in pixels
    d2 = (u[None] - kp[:, 0:1]) ** 2 + (v[None] - kp[:, 1:2]) ** 2
    ray = (np.clip(kp[:, 2:3], 0, 1) * np.exp(-0.5 * d2 / sigma[None] ** 2)).max(axis=0)  # max: no near bias
    table = DelayTable(points, speakers, mics, fs, c, kernels.shape[-1], voxel_size_m=spacing_m)
    audio = fuse_pairs(table.encode(normalise_kernels(kernels)), "product")
    score = ray / max(float(ray.max()), 1e-12) * audio
    score = score * vision_range_prior(keypoints, K, world_from_camera, origin, central, points, range_prior_sigma)
    best = int(np.argmax(score))
    range_m = float(np.linalg.norm(points[best] - origin))
    centre = origin + (range_m + BODY_HALF_DEPTH_M) * central
    return CoarseResult(centre=centre, rotation=rotation, reflector=points[best], range_m=range_m,
                        score=float(score[best]))


def vision_locate(keypoints, K, world_from_camera) -> CoarseResult:
    """Where a lifter without sound puts its fine cube: on the box-centre ray at the depth of the vision-only
    baseline's body (a 1.7 m person, ``baselines.vision_only``). The only metric cue left without audio is that
    assumed size; the learned vision-only model starts from it exactly as the audio lifter starts from
    ``coarse_locate``."""
    from .baselines import vision_only

    keypoints = np.asarray(keypoints, float)
    origin, central, _, _ = box_centre_ray(keypoints, K, world_from_camera)
    joints = vision_only(keypoints, K, world_from_camera)
    range_m = max(float(np.dot(joints.mean(axis=0) - origin, central)), 0.3)
    centre = origin + range_m * central
    return CoarseResult(centre=centre, rotation=person_frame(central), reflector=centre, range_m=range_m, score=1.0)


def ray_sigma_px(grid: FineGrid, K: np.ndarray, world_from_camera: np.ndarray, floor_px: float = 3.0) -> float:
    """Ridge width of the ray encoding: half a voxel's footprint at the grid centre (never thinner than noise)."""
    depth = max(float(optical_depth(grid.centre[None], world_from_camera)[0]), 0.3)
    return max(floor_px, 0.5 * grid.spacing_m * float(K[0, 0]) / depth)


def fine_encodings(grid: FineGrid, keypoints, K, world_from_camera, kernels, speakers, mics, fs: float, c: float,
                   image_size: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rays (17, n, n, n), audio (pairs, n, n, n)) float32 encodings on the fine grid (``kernels=None``: rays
    only, audio (0, n, n, n))."""
    points = grid.points()
    n = grid.n
    rays = ray_encoding(keypoints, K, world_from_camera, points, ray_sigma_px(grid, K, world_from_camera),
                        image_size=image_size)
    if kernels is None:
        return rays.reshape(-1, n, n, n).astype(np.float32), np.zeros((0, n, n, n), np.float32)
    return rays.reshape(-1, n, n, n).astype(np.float32), audio_encoding(grid, kernels, speakers, mics, fs, c)


def audio_encoding(grid: FineGrid, kernels, speakers, mics, fs: float, c: float) -> np.ndarray:
    """(pairs, n, n, n) float32: each pair's normalised kernel read at every voxel's bistatic delay."""
    n = grid.n
    kernels = np.asarray(kernels, np.float32)
    table = DelayTable(grid.points(), speakers, mics, fs, c, kernels.shape[-1], voxel_size_m=grid.spacing_m)
    return table.encode(normalise_kernels(kernels)).reshape(-1, n, n, n).astype(np.float32)


def closest_on_rays(points: np.ndarray, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(J, 3) closest points of (J, 3) ``points`` on their rays (origin + t d, t >= 0)."""
    t = np.maximum(np.einsum("jd,jd->j", points - origin, directions), 0.0)
    return origin + t[:, None] * directions
