"""Rotated image pairs with exact ground truth.

A photograph is treated as the image plane of a wide pinhole camera (principal point at the centre, an assumed
horizontal field of view). Two virtual pinhole cameras at the same centre, each with the head camera's intrinsics,
see it through the homography ``K_src * R_view * K^-1``; the views differ by a yaw about the vertical axis (plus a
shared tilt and, optionally, a tiny independent pitch jitter), so their relative yaw is known exactly.

Sources: real photographs shipped inside scikit-image (split into a training and a held-out evaluation set) and
procedural indoor-like scenes (walls, floor, doors, windows, pictures, shelves, furniture, lamps and textures).
Conventions: yaw positive = the head turned left (counter-clockwise seen from above, REP-103); when the head turns
left the scene moves right in the image.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..primitives.geometry import OPTICAL_FROM_LINK_R, rot_y, rot_z
from .constants import CAMERA_FOV_DEG

# Real photographs from scikit-image's data directory (files inside the wheel, no download).
REAL_TRAIN = ["astronaut.png", "camera.png", "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png",
              "coins.png", "clock_motion.png", "ihc.png", "retina.jpg", "moon.png", "page.png", "text.png",
              "cell.png", "color.png"]
REAL_EVAL = ["coffee.png", "rocket.jpg", "motorcycle_left.png", "chelsea.png"]
# motorcycle_right.png is a near-duplicate of motorcycle_left.png: kept out of training.


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """3x3 pinhole K with the principal point at the image centre and the given horizontal field of view."""
    f = (width / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def optical_rotation(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """Orientation of a camera (optical frame) that is turned by ``yaw`` about the vertical (+ left) and tilted by
    ``pitch`` (+ down) relative to the reference camera, expressed in the reference camera's optical frame."""
    link = rot_z(yaw) @ rot_y(pitch)  # body frame x forward, y left, z up: +pitch about y tilts x downwards
    return OPTICAL_FROM_LINK_R @ link @ OPTICAL_FROM_LINK_R.T


def yaw_from_optical_rotation(r_rel: np.ndarray) -> float:
    """Yaw (+ left) of a relative rotation expressed in an optical frame (the view's x axis direction)."""
    link = OPTICAL_FROM_LINK_R.T @ r_rel @ OPTICAL_FROM_LINK_R
    return float(np.arctan2(link[1, 0], link[0, 0]))


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img.astype(np.uint8))


def load_real_photos(split: str = "train") -> list:
    """RGB uint8 photographs from scikit-image's bundled samples (``train`` or ``eval`` split)."""
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - dependency problem
        raise RuntimeError("scikit-image is needed for the real photographs (pip install scikit-image)") from exc
    base = os.path.dirname(skimage.data.__file__)
    names = REAL_TRAIN if split == "train" else REAL_EVAL
    out = []
    for name in names:
        path = os.path.join(base, name)
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            continue
        if img.ndim == 3:
            img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
        out.append(_to_rgb(img))
    if not out:
        raise RuntimeError("no scikit-image sample photographs found")
    return out


# ----------------------------------------------------------------------------------------------- procedural scenes

def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random texture in [0, 1] (sum of blurred noises at a few scales, sometimes stripes)."""
    tex = np.zeros((h, w), np.float32)
    for scale in rng.choice([2, 4, 8, 16, 32], size=int(rng.integers(1, 4)), replace=False):
        small = rng.random((max(h // scale, 2), max(w // scale, 2))).astype(np.float32)
        tex += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(0.3, 1.0)
    if rng.random() < 0.35:
        period = rng.uniform(4, 30)
        ang = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        tex += 0.6 * (np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / period) > 0)
    tex -= tex.min()
    return tex / (tex.max() + 1e-6)


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3)


def _paint(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, rng: np.random.Generator) -> None:
    """Fill a rectangle with a colour, a gradient and a texture."""
    h, w = canvas.shape[:2]
    x0, x1 = sorted((int(np.clip(x0, 0, w)), int(np.clip(x1, 0, w))))
    y0, y1 = sorted((int(np.clip(y0, 0, h)), int(np.clip(y1, 0, h))))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    hh, ww = y1 - y0, x1 - x0
    c0, c1 = _color(rng), _color(rng) if rng.random() < 0.5 else None
    base = np.broadcast_to(c0, (hh, ww, 3)).astype(np.float32)
    if c1 is not None:
        t = np.linspace(0, 1, hh if rng.random() < 0.5 else ww, dtype=np.float32)
        t = t[:, None, None] if t.size == hh else t[None, :, None]
        base = base * (1 - t) + c1 * t
    tex = _texture(rng, hh, ww)[:, :, None]
    amp = rng.uniform(0.05, 0.5)
    canvas[y0:y1, x0:x1] = np.clip(base * (1 - amp + 2 * amp * tex), 0, 255)


def procedural_scene(rng: np.random.Generator, width: int = 800, height: int = 560) -> np.ndarray:
    """An RGB uint8 indoor-like scene: walls with a corner, floor, skirting, doors, windows, pictures, shelves with
    books, tables, lamps and clutter."""
    img = np.zeros((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.5, 0.7))
    corner = int(width * rng.uniform(0.15, 0.85)) if rng.random() < 0.7 else None
    if corner is not None:
        _paint(img, 0, 0, corner, horizon, rng)
        _paint(img, corner, 0, width, horizon, rng)
    else:
        _paint(img, 0, 0, width, horizon, rng)
    _paint(img, 0, horizon, width, height, rng)
    if rng.random() < 0.6:  # floor tiles / boards
        step = int(rng.uniform(20, 60))
        col = _color(rng) * 0.5
        for x in range(0, width, step):
            cv2.line(img, (x, horizon), (int(width / 2 + (x - width / 2) * 3), height), col.tolist(), 1)
        y, gap = horizon, 6.0
        while y < height:
            cv2.line(img, (0, int(y)), (width, int(y)), col.tolist(), 1)
            y += gap
            gap *= 1.35
    cv2.rectangle(img, (0, horizon - 8), (width, horizon), _color(rng).tolist(), -1)
    for _ in range(int(rng.integers(2, 6))):  # doors, windows, pictures
        w = int(rng.uniform(0.05, 0.2) * width)
        h = int(rng.uniform(0.15, 0.6) * horizon)
        x = int(rng.uniform(0, width - w))
        y = int(rng.uniform(0.05 * horizon, horizon - h))
        cv2.rectangle(img, (x - 4, y - 4), (x + w + 4, y + h + 4), _color(rng).tolist(), -1)
        _paint(img, x, y, x + w, y + h, rng)
        if rng.random() < 0.4:  # window panes
            cv2.line(img, (x + w // 2, y), (x + w // 2, y + h), _color(rng).tolist(), 3)
            cv2.line(img, (x, y + h // 2), (x + w, y + h // 2), _color(rng).tolist(), 3)
    for _ in range(int(rng.integers(1, 4))):  # shelves with books
        w = int(rng.uniform(0.08, 0.25) * width)
        h = int(rng.uniform(0.2, 0.5) * height)
        x = int(rng.uniform(0, width - w))
        y = int(min(horizon + rng.uniform(-0.1, 0.15) * height, height - 5) - h)
        _paint(img, x, y, x + w, y + h, rng)
        n_shelves = int(rng.integers(2, 5))
        for s in range(n_shelves):
            sy = y + int((s + 1) * h / (n_shelves + 1))
            cv2.line(img, (x, sy), (x + w, sy), _color(rng).tolist(), 3)
            bx = x + 3
            while bx < x + w - 6 and rng.random() < 0.9:
                bw = int(rng.uniform(3, 10))
                bh = int(rng.uniform(0.4, 0.9) * h / (n_shelves + 1))
                cv2.rectangle(img, (bx, sy - bh), (bx + bw, sy - 2), _color(rng).tolist(), -1)
                bx += bw + 1
    for _ in range(int(rng.integers(1, 4))):  # tables, sofas, boxes
        w = int(rng.uniform(0.1, 0.35) * width)
        h = int(rng.uniform(0.05, 0.25) * height)
        x = int(rng.uniform(0, width - w))
        y = int(rng.uniform(horizon - 0.05 * height, height - h))
        _paint(img, x, y, x + w, y + h, rng)
        legs = _color(rng).tolist()
        cv2.rectangle(img, (x + 3, y + h), (x + 8, min(y + h + 40, height)), legs, -1)
        cv2.rectangle(img, (x + w - 8, y + h), (x + w - 3, min(y + h + 40, height)), legs, -1)
    for _ in range(int(rng.integers(0, 4))):  # lamps, plates, plants
        c = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(5, 40)), int(rng.uniform(5, 40)))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, _color(rng).tolist(), -1)
    for _ in range(int(rng.integers(5, 25))):  # clutter: small marks and lines
        p0 = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        p1 = (p0[0] + int(rng.normal(0, 25)), p0[1] + int(rng.normal(0, 25)))
        if rng.random() < 0.5:
            cv2.line(img, p0, p1, _color(rng).tolist(), int(rng.integers(1, 4)))
        else:
            cv2.rectangle(img, p0, p1, _color(rng).tolist(), -1)
    if rng.random() < 0.7:  # light falloff
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy = rng.uniform(0, width), rng.uniform(0, horizon)
        fall = 1.0 - rng.uniform(0.1, 0.5) * np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / width
        img *= np.clip(fall, 0.3, 1.0)[:, :, None]
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- pair sampling

def render_view(src: np.ndarray, k_src: np.ndarray, yaw: float, pitch: float, width: int, height: int,
                fov_deg: float = CAMERA_FOV_DEG, supersample: int = 2) -> np.ndarray:
    """View of the source photo by a camera turned ``yaw`` (+ left) and tilted ``pitch`` (+ down)."""
    ss = max(int(supersample), 1)
    k_view = intrinsics(width * ss, height * ss, fov_deg)
    h = k_src @ optical_rotation(yaw, pitch) @ np.linalg.inv(k_view)
    out = cv2.warpPerspective(src, h, (width * ss, height * ss), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)
    if ss > 1:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    return out


def _view_fits(src_shape, k_src, yaw, pitch, width, height, fov_deg, margin=2.0) -> bool:
    k_view = intrinsics(width, height, fov_deg)
    h = k_src @ optical_rotation(yaw, pitch) @ np.linalg.inv(k_view)
    xs = np.linspace(0, width - 1, 9)
    ys = np.linspace(0, height - 1, 7)
    border = np.array([[x, y, 1.0] for x in xs for y in (ys[0], ys[-1])] + [[x, y, 1.0] for x in (xs[0], xs[-1])
                                                                          for y in ys])
    p = border @ h.T
    if np.any(p[:, 2] <= 1e-6):
        return False
    u, v = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    return bool(np.all(u >= margin) and np.all(u <= src_shape[1] - 1 - margin) and np.all(v >= margin)
                and np.all(v <= src_shape[0] - 1 - margin))


def photometric(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Independent brightness, contrast, gamma, colour gain, blur and sensor noise."""
    x = img.astype(np.float32) / 255.0
    if strength > 0:
        x = x * rng.uniform(1 - 0.25 * strength, 1 + 0.25 * strength)
        x = (x - x.mean()) * rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength) + x.mean()
        x = x * rng.uniform(1 - 0.06 * strength, 1 + 0.06 * strength, size=(1, 1, 3))
        x = np.clip(x, 0, 1) ** rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength)
        if rng.random() < 0.3 * strength:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 0.9))
        x = x + rng.normal(0, rng.uniform(0, 0.02 * strength), x.shape)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def sample_pair(src: np.ndarray, rel_yaw: float, rng: np.random.Generator, width: int = 128, height: int = 96,
                fov_deg: float = CAMERA_FOV_DEG, tilt_deg: float = 5.0, pitch_jitter_deg: float = 0.3,
                photometric_strength: float = 1.0, src_fov_range=(80.0, 110.0)):
    """Two views (RGB uint8, ``height x width``) of one photo whose cameras differ by ``rel_yaw`` (rad, + left from
    view a to view b). Returns ``(img_a, img_b)``; the ground truth is ``rel_yaw`` exactly."""
    hs, ws = src.shape[:2]
    tilt = np.deg2rad(rng.uniform(-tilt_deg, tilt_deg))
    pa = tilt + np.deg2rad(rng.normal(0, pitch_jitter_deg))
    pb = tilt + np.deg2rad(rng.normal(0, pitch_jitter_deg))
    src_fov = rng.uniform(*src_fov_range)
    for _ in range(40):
        k_src = intrinsics(ws, hs, src_fov)
        centre = rng.uniform(-0.5, 0.5) * np.deg2rad(max(src_fov - fov_deg - abs(np.rad2deg(rel_yaw)), 0.0))
        ya, yb = centre - rel_yaw / 2, centre + rel_yaw / 2
        if _view_fits(src.shape, k_src, ya, pa, width, height, fov_deg) and \
                _view_fits(src.shape, k_src, yb, pb, width, height, fov_deg):
            break
        src_fov = min(src_fov + 4.0, 170.0)  # treat the photo as wider until both views fit inside it
    a = render_view(src, k_src, ya, pa, width, height, fov_deg)
    b = render_view(src, k_src, yb, pb, width, height, fov_deg)
    return photometric(a, rng, photometric_strength), photometric(b, rng, photometric_strength)


class ImageBank:
    """Source pictures for pairs: real photographs and procedural scenes (generated once per bank)."""

    def __init__(self, real: list, n_procedural: int = 0, seed: int = 0, p_real: float = 0.3):
        rng = np.random.default_rng(seed)
        self.real = list(real)
        self.procedural = [procedural_scene(rng) for _ in range(n_procedural)]
        self.p_real = p_real if self.real and self.procedural else (1.0 if self.real else 0.0)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        pool = self.real if rng.random() < self.p_real else self.procedural
        img = pool[int(rng.integers(0, len(pool)))]
        if rng.random() < 0.5:
            img = img[:, ::-1]  # mirrored pictures are equally valid scenes
        return np.ascontiguousarray(img)
