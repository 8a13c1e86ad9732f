"""Views of textured 3D rooms: head-camera pairs with parallax, lens distortion and any relative yaw.

The homography pairs of `slfm.images` are exact for a camera that only rotates in front of a flat picture; a real
head camera also translates a little (its centre is off the neck's axis), sees objects at different depths (so
near and far things shift differently) and has a distorted lens. This module ray-casts a shoebox room whose six
surfaces carry textures (photographs or procedural scenes, tiled at a random scale) with textured boxes standing on
the floor, through a pinhole camera with radial distortion (plumb-bob k1, k2), so pairs of views carry all three.

Frames: room x, y horizontal, z up; a camera's body frame is x forward, y left, z up (REP-103), its optical frame
z forward, x right, y down. Yaw is about +z, + left. Everything is numpy and OpenCV (`cv2.remap` per surface).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from av_pose_ros.primitives.geometry import OPTICAL_FROM_LINK_R, rot_y, rot_z


@dataclass
class Surface:
    """An axis-aligned textured rectangle: points with coordinate ``axis`` == ``offset``, facing ``normal_sign``."""

    axis: int                  # 0, 1, 2: the plane is x, y or z = offset
    offset: float
    lo: np.ndarray             # (2,) bounds of the two other coordinates (in increasing axis order)
    hi: np.ndarray
    texture: np.ndarray        # (H, W, 3) uint8
    metres_per_texture: float  # width of one texture tile on the surface
    shift: np.ndarray = field(default_factory=lambda: np.zeros(2))  # texture offset (m)


@dataclass
class Room3D:
    dims: np.ndarray                                # (3,) m
    surfaces: list = field(default_factory=list)    # walls, floor, ceiling, box faces
    boxes: list = field(default_factory=list)       # (lo (3,), hi (3,)) per box, for the ray tests


@dataclass(frozen=True)
class Lens:
    width: int = 320
    height: int = 240
    hfov_deg: float = 90.0
    k1: float = 0.0
    k2: float = 0.0

    @property
    def K(self) -> np.ndarray:
        f = (self.width / 2.0) / np.tan(np.radians(self.hfov_deg) / 2.0)
        return np.array([[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _face_texture(bank, rng) -> tuple[np.ndarray, float]:
    return bank.draw(rng), float(rng.uniform(0.8, 3.0))


def sample_room3d(rng: np.random.Generator, bank, n_boxes=(2, 6)) -> Room3D:
    """A shoebox room (3.5-7 x 3-6 x 2.4-3.1 m), every surface textured from ``bank`` (an `images.ImageBank`),
    and a few textured boxes (0.3-1.2 m) standing on the floor."""
    dims = np.array([rng.uniform(3.5, 7.0), rng.uniform(3.0, 6.0), rng.uniform(2.4, 3.1)])
    room = Room3D(dims=dims)
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        for offset in (0.0, dims[axis]):
            tex, scale = _face_texture(bank, rng)
            room.surfaces.append(Surface(axis, float(offset), np.zeros(2), dims[others].copy(), tex, scale,
                                         rng.uniform(0, 3, 2)))
    for _ in range(int(rng.integers(n_boxes[0], n_boxes[1] + 1))):
        size = np.array([rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.5)])
        lo = np.array([rng.uniform(0.1, dims[0] - size[0] - 0.1), rng.uniform(0.1, dims[1] - size[1] - 0.1), 0.0])
        hi = lo + size
        room.boxes.append((lo, hi))
        tex, scale = _face_texture(bank, rng)
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            for offset in (lo[axis], hi[axis]):
                room.surfaces.append(Surface(axis, float(offset), lo[others].copy(), hi[others].copy(), tex,
                                             scale * 0.5, rng.uniform(0, 3, 2)))
    return room


def camera_rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """room_from_optical rotation of a camera whose body frame is turned by yaw (+ left), pitch (+ down), roll."""
    from av_pose_ros.primitives.geometry import rot_x

    body = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)
    return body @ OPTICAL_FROM_LINK_R.T


def pixel_rays(lens: Lens, supersample: int = 1) -> np.ndarray:
    """(H*s, W*s, 3) unit rays in the optical frame of every (distorted) pixel (radial model inverted by
    fixed-point iteration)."""
    s = max(int(supersample), 1)
    k = lens.K
    u, v = np.meshgrid((np.arange(lens.width * s) + 0.5) / s - 0.5, (np.arange(lens.height * s) + 0.5) / s - 0.5)
    xd, yd = (u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1]
    x, y = xd.copy(), yd.copy()
    for _ in range(8):
        r2 = x * x + y * y
        factor = 1.0 + lens.k1 * r2 + lens.k2 * r2 * r2
        x, y = xd / factor, yd / factor
    rays = np.stack([x, y, np.ones_like(x)], axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _slab(origin, d, lo, hi):
    """Entry distance of rays into an axis-aligned box (inf where missed), and the axis they enter through."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (lo[None] - origin[None]) / d
        t1 = (hi[None] - origin[None]) / d
    tmin, tmax = np.minimum(t0, t1), np.maximum(t0, t1)
    enter, leave = tmin.max(axis=1), tmax.min(axis=1)
    hit = (leave >= enter) & (enter > 1e-4)
    return np.where(hit, enter, np.inf), tmin.argmax(axis=1)


def render(room: Room3D, lens: Lens, origin: np.ndarray, room_from_optical: np.ndarray,
           supersample: int = 2) -> np.ndarray:
    """(H, W, 3) uint8 view from a camera at ``origin`` (room frame) oriented ``room_from_optical``."""
    rays = pixel_rays(lens, supersample)
    hh, ww = rays.shape[:2]
    d = rays.reshape(-1, 3) @ room_from_optical.T
    with np.errstate(divide="ignore", invalid="ignore"):
        exits = np.where(d > 0, (room.dims[None] - origin[None]) / d, -origin[None] / d)
    exits = np.where(np.isfinite(exits) & (exits > 0), exits, np.inf)
    dist, axis = exits.min(axis=1), exits.argmin(axis=1)
    is_far = np.take_along_axis(d, axis[:, None], 1)[:, 0] > 0
    surface_id = axis * 2 + is_far  # room surfaces come first, two per axis (offset 0, then the far wall)
    for b, (lo, hi) in enumerate(room.boxes):
        enter, enter_axis = _slab(origin, d, lo, hi)
        closer = enter < dist
        dist = np.where(closer, enter, dist)
        entered_far = np.take_along_axis(d, enter_axis[:, None], 1)[:, 0] < 0  # entering through the hi face
        surface_id = np.where(closer, 6 + b * 6 + enter_axis * 2 + entered_far, surface_id)
    points = origin[None] + dist[:, None] * d
    out = np.zeros((hh * ww, 3), np.float32)
    for sid in np.unique(surface_id):
        surf = room.surfaces[int(sid)]
        mask = surface_id == sid
        others = [a for a in range(3) if a != surf.axis]
        uv = (points[mask][:, others] + surf.shift[None]) / surf.metres_per_texture  # tiles
        th, tw = surf.texture.shape[:2]
        n = int(mask.sum())
        cols = 1024
        rows = -(-n // cols)
        mx = np.zeros(rows * cols, np.float32)
        my = np.zeros(rows * cols, np.float32)
        mx[:n] = np.mod(uv[:, 0] * tw, tw)  # the texture's pixels are square on the surface
        my[:n] = np.mod(-uv[:, 1] * tw, th)  # picture upright on the walls
        vals = cv2.remap(surf.texture, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_WRAP)
        out[mask] = vals.reshape(-1, 3)[:n]
    img = out.reshape(hh, ww, 3)
    if supersample > 1:
        img = cv2.resize(img, (lens.width, lens.height), interpolation=cv2.INTER_AREA)
    return np.clip(img, 0, 255).astype(np.uint8)


def _free_spot(room: Room3D, rng: np.random.Generator, clearance: float = 0.8) -> np.ndarray:
    for _ in range(200):
        p = np.array([rng.uniform(clearance, room.dims[0] - clearance),
                      rng.uniform(clearance, room.dims[1] - clearance), rng.uniform(1.1, 1.6)])
        if all(np.any(p[:2] < lo[:2] - 0.4) or np.any(p[:2] > hi[:2] + 0.4) for lo, hi in room.boxes):
            return p
    raise RuntimeError("no free spot for the camera")


def sample_pair3d(room: Room3D, rel_yaw: float, rng: np.random.Generator, lens: Lens,
                  max_translation_m: float = 0.05, pitch_jitter_deg: float = 2.0):
    """Two views of ``room`` whose cameras differ by ``rel_yaw`` (rad, + left from view a to view b), by up to
    ``max_translation_m`` of translation and by a little pitch and roll. Returns (img_a, img_b)."""
    origin = _free_spot(room, rng)
    base = rng.uniform(-np.pi, np.pi)
    tilt = np.radians(rng.uniform(-5, 5))
    jitter = np.radians(pitch_jitter_deg)
    ra = camera_rotation(base, tilt + rng.normal(0, jitter / 3), rng.normal(0, jitter / 3))
    rb = camera_rotation(base + rel_yaw, tilt + rng.normal(0, jitter / 3), rng.normal(0, jitter / 3))
    step = rng.normal(size=3) * np.array([1.0, 1.0, 0.3])
    step *= rng.uniform(0, max_translation_m) / (np.linalg.norm(step) + 1e-9)
    return render(room, lens, origin, ra), render(room, lens, origin + step, rb)


def degrade(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A hard version of a view: ``dim`` (gain 0.1-0.25 and sensor noise), ``blur`` (Gaussian, sigma 1.5-3 px of a
    320-px image), ``noise`` (sigma 0.04-0.08) or ``clean``. Each view of a pair is degraded independently."""
    x = img.astype(np.float32) / 255.0
    scale = img.shape[1] / 320.0
    if kind == "dim":
        x = x * rng.uniform(0.1, 0.25) + rng.normal(0, 0.01, x.shape)
    elif kind == "blur":
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(1.5, 3.0) * scale)
    elif kind == "noise":
        x = x + rng.normal(0, rng.uniform(0.04, 0.08), x.shape)
    elif kind != "clean":
        raise ValueError(f"unknown degradation {kind!r}")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


class LowTextureBank:
    """Wraps an image bank: every texture blurred (sigma 2 % of its width) and its contrast cut to 25 %, so the
    surfaces carry little more than their large shapes (the low-texture hard pairs)."""

    def __init__(self, bank):
        self.bank = bank

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        tex = self.bank.draw(rng).astype(np.float32)
        tex = cv2.GaussianBlur(tex, (0, 0), 0.02 * tex.shape[1])
        mean = tex.mean(axis=(0, 1), keepdims=True)
        return np.clip(mean + 0.25 * (tex - mean), 0, 255).astype(np.uint8)


def make_pairs3d(num: int, seed: int, split: str = "eval", lens_kw: dict | None = None, max_yaw_deg: float = 90.0,
                 max_translation_m: float = 0.05, low_texture: bool = False) -> dict:
    """``num`` 3D-room pairs with their relative yaw (rad), the same for a seed whichever method evaluates them
    (`evaluate_rotation_3d`, `eval_rotation3d`). Textures: ``split`` photographs (``eval``: held out, ``train``)
    and procedural scenes. Returns {"a", "b": lists of uint8 RGB, "yaw": (num,), "k1": (num,), "lens": Lens}."""
    from .images import ImageBank, load_real_photos

    bank = ImageBank(load_real_photos(split), n_procedural=20, seed=seed + (777 if split == "eval" else 991),
                     p_real=0.5)
    if low_texture:
        bank = LowTextureBank(bank)
    rng = np.random.default_rng([seed, 4243])
    out = {"a": [], "b": [], "yaw": [], "k1": []}
    lens = None
    for _ in range(num):
        kw = dict(lens_kw or {})
        kw.setdefault("k1", float(rng.uniform(-0.06, 0.04)))
        lens = Lens(**kw)
        yaw = float(np.radians(rng.uniform(-max_yaw_deg, max_yaw_deg)))
        for _ in range(20):  # a room crowded with boxes may leave no spot for the camera: draw another
            room = sample_room3d(rng, bank)
            try:
                a, b = sample_pair3d(room, yaw, rng, lens, max_translation_m)
                break
            except RuntimeError:
                continue
        out["a"].append(a)
        out["b"].append(b)
        out["yaw"].append(yaw)
        out["k1"].append(lens.k1)
    out["yaw"], out["k1"], out["lens"] = np.asarray(out["yaw"]), np.asarray(out["k1"]), lens
    return out


__all__ = ["Lens", "LowTextureBank", "Room3D", "Surface", "camera_rotation", "degrade", "evaluate_rotation_3d",
           "make_pairs3d", "render", "sample_pair3d", "sample_room3d"]


# ------------------------------------------------------------------------------------------------- evaluation

def evaluate_rotation_3d(num: int = 60, seed: int = 0, lens_kw: dict | None = None, max_yaw_deg: float = 90.0,
                         max_translation_m: float = 0.05, rotation_model: str | None = None) -> dict:
    """The shipped rotation model (its own sweep, and `WIDE_SWEEP`) and SIFT + RANSAC on the same 3D-room pairs at
    the same resolution (`make_pairs3d`: held-out photographs and procedural scenes as textures), relative yaw
    uniform in +-``max_yaw_deg``, up to ``max_translation_m`` of camera translation, radial distortion k1 in
    [-0.06, 0.04] unless ``lens_kw`` fixes it. Errors (deg) by |relative yaw| band."""
    import time

    from .baselines import feature_yaw
    from .estimators import WIDE_SWEEP, RotationEstimator, model_path

    path = rotation_model or model_path("slfm_rotation.pt")
    est, wide = RotationEstimator.load(path), RotationEstimator.load(path, sweep=WIDE_SWEEP)
    pairs = make_pairs3d(num, seed, "eval", lens_kw, max_yaw_deg, max_translation_m)
    lens = pairs["lens"]
    truth, model, model_wide, sift, ok = [], [], [], [], []
    t_model = t_sift = 0.0
    for a, b, yaw in zip(pairs["a"], pairs["b"], pairs["yaw"]):
        t = time.perf_counter()
        model.append(est.estimate(a, b, fov_deg=lens.hfov_deg))
        t_model += time.perf_counter() - t
        model_wide.append(wide.estimate(a, b, fov_deg=lens.hfov_deg))
        t = time.perf_counter()
        y, good = feature_yaw(a, b, fov_deg=lens.hfov_deg)
        t_sift += time.perf_counter() - t
        sift.append(y)
        ok.append(good)
        truth.append(yaw)
    truth, model, model_wide, sift, ok = map(np.asarray, (truth, model, model_wide, sift, ok))
    bands = {}
    for lo, hi in ((0, 30), (30, 60), (60, 90.01)):
        m = (np.abs(np.degrees(truth)) >= lo) & (np.abs(np.degrees(truth)) < hi)
        if m.any():
            row = {"n": int(m.sum()), "sift_failures": float(1.0 - ok[m].mean())}
            for name, pred in (("model", model), ("model_wide", model_wide), ("sift", sift)):
                err = np.degrees(np.abs(pred[m] - truth[m]))
                row[f"{name}_mae_deg"], row[f"{name}_median_deg"] = float(err.mean()), float(np.median(err))
            bands[f"{lo}-{int(hi)}"] = row
    return {"num": num, "seed": seed, "size": [lens.width, lens.height], "hfov_deg": lens.hfov_deg,
            "max_translation_m": max_translation_m, "bands": bands,
            "model_ms": 1000 * t_model / num, "sift_ms": 1000 * t_sift / num}


def main(argv=None) -> int:
    import argparse
    import json

    import torch

    ap = argparse.ArgumentParser(description="SLfM rotation model vs SIFT + RANSAC on 3D-room pairs")
    ap.add_argument("--num", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--hfov", type=float, default=90.0)
    ap.add_argument("--max-yaw", type=float, default=90.0)
    ap.add_argument("--translation", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w, h = (int(x) for x in args.size.lower().split("x"))
    res = evaluate_rotation_3d(args.num, args.seed, {"width": w, "height": h, "hfov_deg": args.hfov},
                               args.max_yaw, args.translation)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
