"""The body's sound-reflecting surface: capsules around the bones, a head sphere, a torso, feet and hands.

Points are sampled on the capsules with outward normals and the area each represents; points that lie inside
another capsule are removed by the visibility test (a ray from inside hits that capsule). The same capsules, as a
triangle mesh, are what open3d ray-casts against to decide which points a speaker and a mic both see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from av_pose_ros.primitives.skeleton import JOINT_INDEX as J

from .body import Proportions

# (from, to, radius as a fraction of stature); "mid_hip"/"mid_shoulder" are derived points.
_CAPSULES = (
    ("left_shoulder", "left_elbow", 0.028), ("left_elbow", "left_wrist", 0.022),
    ("right_shoulder", "right_elbow", 0.028), ("right_elbow", "right_wrist", 0.022),
    ("left_hip", "left_knee", 0.045), ("left_knee", "left_ankle", 0.032),
    ("right_hip", "right_knee", 0.045), ("right_knee", "right_ankle", 0.032),
    ("left_shoulder", "left_hip", 0.055), ("right_shoulder", "right_hip", 0.055),
    ("mid_shoulder", "mid_hip", 0.075), ("left_shoulder", "right_shoulder", 0.04), ("left_hip", "right_hip", 0.06),
    ("mid_shoulder", "head_centre", 0.03),
)
_HAND_LENGTH, _HAND_RADIUS = 0.09, 0.022     # hand continues the forearm
_FOOT_LENGTH, _FOOT_RADIUS = 0.12, 0.024     # foot points forward from the ankle


@dataclass
class BodySurface:
    points: np.ndarray      # (K, 3)
    normals: np.ndarray     # (K, 3) unit, outward
    areas: np.ndarray       # (K,) m^2 each point stands for
    capsules: np.ndarray    # (C, 7): a (3), b (3), radius
    owner: np.ndarray | None = None     # (K,) index of the capsule each point lies on


# Capsules of bare skin (neck, hands, head; see ``body_capsules``' order); the rest is clothed (shoes included).
SKIN_CAPSULES = (13, 14, 16, 18)


def is_skin(surface: BodySurface) -> np.ndarray:
    """(K,) bool: the point lies on bare skin (hard, flat reflectance) rather than on clothing."""
    return np.isin(surface.owner, SKIN_CAPSULES)


def body_capsules(joints: np.ndarray, stature_m: float, girth: float = 1.0) -> np.ndarray:
    """(C, 7) capsules [a, b, radius] of a (17, 3) skeleton (any frame with z up).

    ``girth`` scales the radii of trunk and limbs (not head, neck, hands): slim to heavy builds of one stature.
    """
    p = Proportions.for_stature(stature_m)
    named = {n: joints[i] for n, i in J.items()}
    named["mid_hip"] = 0.5 * (named["left_hip"] + named["right_hip"])
    named["mid_shoulder"] = 0.5 * (named["left_shoulder"] + named["right_shoulder"])
    named["head_centre"] = 0.5 * (named["left_ear"] + named["right_ear"])
    caps = [np.r_[named[a], named[b], r * stature_m * (1.0 if i == 13 else girth)]
            for i, (a, b, r) in enumerate(_CAPSULES)]
    for side in ("left", "right"):
        wrist, elbow = named[f"{side}_wrist"], named[f"{side}_elbow"]
        d = (wrist - elbow) / max(np.linalg.norm(wrist - elbow), 1e-9)
        caps.append(np.r_[wrist, wrist + _HAND_LENGTH * stature_m * d, _HAND_RADIUS * stature_m])
        ankle = named[f"{side}_ankle"]
        toe_dir = np.cross([0.0, 0.0, 1.0], named["left_hip"] - named["right_hip"])
        toe_dir /= max(np.linalg.norm(toe_dir), 1e-9)
        caps.append(np.r_[ankle, ankle + _FOOT_LENGTH * stature_m * toe_dir, _FOOT_RADIUS * stature_m * girth])
    # head: a sphere (a capsule of zero length) sized from the chin-to-crown length
    caps.append(np.r_[named["head_centre"], named["head_centre"], 0.42 * p.head])
    return np.array(caps)


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``axis`` and to each other."""
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def _sphere_dirs(n: int) -> np.ndarray:
    """n nearly uniform unit vectors (Fibonacci sphere)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sample_surface(capsules: np.ndarray, spacing_m: float = 0.025, rng: np.random.Generator | None = None
                   ) -> BodySurface:
    """Points every ~``spacing_m`` on each capsule's cylinder and end spheres, with normals and areas.

    A random rotation of each sampling pattern (when ``rng`` is given) keeps the regular spacing from adding the
    same coherent artefacts to every capture.
    """
    pts, nrm, area, owner = [], [], [], []
    for index, cap in enumerate(capsules):
        start = sum(len(p) for p in pts)
        a, b, r = cap[:3], cap[3:6], cap[6]
        length = np.linalg.norm(b - a)
        spin = rng.uniform(0, 2 * np.pi) if rng is not None else 0.0
        if length > 1e-6:
            axis = (b - a) / length
            u, v = _frame(axis)
            n_around = max(6, int(np.ceil(2 * np.pi * r / spacing_m)))
            n_along = max(1, int(np.ceil(length / spacing_m)))
            ang = spin + 2 * np.pi * np.arange(n_around) / n_around
            t = (np.arange(n_along) + 0.5) / n_along * length
            radial = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v          # (n_around, 3)
            p = a + t[None, :, None] * axis + r * radial[:, None, :]
            pts.append(p.reshape(-1, 3))
            nrm.append(np.repeat(radial, n_along, axis=0))
            area.append(np.full(n_around * n_along, 2 * np.pi * r * length / (n_around * n_along)))
        n_sphere = max(8, int(np.ceil(4 * np.pi * r * r / spacing_m ** 2)))
        dirs = _sphere_dirs(n_sphere) @ _rotation_about_z(spin).T
        ends = (a, b) if length > 1e-6 else (a,)
        for centre in ends:
            # each end keeps the half sphere that points away from the cylinder (the whole sphere for a ball)
            keep = np.ones(n_sphere, bool) if length <= 1e-6 else (dirs @ ((centre - (a + b) / 2) / length)) > 0
            pts.append(centre + r * dirs[keep])
            nrm.append(dirs[keep])
            area.append(np.full(keep.sum(), 4 * np.pi * r * r / n_sphere))
        owner.append(np.full(sum(len(p) for p in pts) - start, index))
    return BodySurface(np.concatenate(pts), np.concatenate(nrm), np.concatenate(area), capsules,
                       np.concatenate(owner))


def _rotation_about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _unit_meshes():
    cyl = o3d.geometry.TriangleMesh.create_cylinder(radius=1.0, height=1.0, resolution=12, split=1)
    sph = o3d.geometry.TriangleMesh.create_sphere(radius=1.0, resolution=8)
    return ((np.asarray(cyl.vertices), np.asarray(cyl.triangles)),
            (np.asarray(sph.vertices), np.asarray(sph.triangles)))


_UNIT_CYLINDER, _UNIT_SPHERE = _unit_meshes()   # cylinder along z, centred at the origin; unit sphere


def capsule_mesh(capsules: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 3) float32, triangles (T, 3) uint32) of all capsules, for ray casting."""
    verts, tris, offset = [], [], 0

    def add(v, t):
        nonlocal offset
        verts.append(v)
        tris.append(t + offset)
        offset += len(v)

    for cap in capsules:
        a, b, r = cap[:3], cap[3:6], cap[6]
        length = np.linalg.norm(b - a)
        for centre in ((a, b) if length > 1e-6 else (a,)):
            add(centre + r * _UNIT_SPHERE[0], _UNIT_SPHERE[1])
        if length > 1e-6:
            axis = (b - a) / length
            u, v = _frame(axis)
            rot = np.stack([u, v, axis], axis=1)                 # unit cylinder z -> bone axis
            scaled = _UNIT_CYLINDER[0] * np.array([r, r, length])
            add(scaled @ rot.T + (a + b) / 2, _UNIT_CYLINDER[1])
    return np.concatenate(verts).astype(np.float32), np.concatenate(tris).astype(np.uint32)


def raycaster(capsules: np.ndarray):
    """An open3d ray-casting scene of the capsules (build once, cast many times)."""
    verts, tris = capsule_mesh(capsules)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(tris))
    return scene


def visible_from(surface: BodySurface, sensors: np.ndarray, offset_m: float = 1e-3, scene=None) -> np.ndarray:
    """(sensors, K) bool: the sensor is in front of the point's surface and no capsule blocks the line between.

    ``scene``: a ``raycaster(surface.capsules)`` to reuse."""
    scene = scene if scene is not None else raycaster(surface.capsules)
    sensors = np.asarray(sensors, float).reshape(-1, 3)
    to_sensor = sensors[:, None, :] - surface.points[None, :, :]           # (S, K, 3)
    dist = np.linalg.norm(to_sensor, axis=-1)
    direction = to_sensor / dist[..., None]
    facing = np.einsum("skd,kd->sk", direction, surface.normals) > 0
    s_idx, k_idx = np.nonzero(facing)
    origins = surface.points[k_idx] + offset_m * surface.normals[k_idx]
    rays = np.concatenate([origins, direction[s_idx, k_idx]], axis=1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
    visible = np.zeros_like(facing)
    visible[s_idx, k_idx] = hit >= dist[s_idx, k_idx] - offset_m
    return visible
