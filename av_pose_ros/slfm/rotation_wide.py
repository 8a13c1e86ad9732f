"""Relative head yaw over +-90 deg for real cameras: cylinder views, a learned global correlation, photometric
refinement with the lens's distortion searched.

Why a cylinder: for a camera turning about its vertical axis, a pinhole image re-sampled onto a cylinder around that
axis moves by exactly ``yaw / step`` columns, whatever the angle. A search over every horizontal shift of the
whole view (a global correlation, one score per candidate yaw) therefore covers +-90 deg at the cost of one
``w x w`` matrix per feature map, where the earlier model's fixed sweep of a local correlation volume stopped at
+-34 deg.

Three stages (:class:`WideRotationEstimator`):

1. coarse: a small Siamese CNN (:class:`CylinderEncoder`, learned) turns both cylinder views (0.5 deg per pixel)
   into L2-normalised features at 1/4 resolution; :func:`global_correlation` scores every column shift by the mean
   cosine similarity over the overlap; shifts whose overlap is below ``min_overlap`` of the view are not
   candidates ("no overlap"). The answer is the best shift, refined by a parabola through its neighbours;
2. fine: both views re-sampled at 0.25 deg per pixel through each of a few candidate radial distortions ``k1``
   (the lens is unknown; a wrong ``k1`` bends the cylinder so that the two views' overlaps, at opposite sides of
   their images, disagree by up to a few degrees), locally normalised (gain, contrast and dimness drop out) and
   aligned by a Lucas-Kanade translation (dx, dy) started at the coarse answer. The ``k1`` whose alignment
   correlates best wins; its dx is the yaw. Sub-pixel by construction: no bias floor from a candidate grid;
3. confidence: the overlap at the answer, the normalised correlation of the aligned views and the coarse peak's
   margin over the runner-up, each mapped to [0, 1] and multiplied; below ``min_confidence`` the estimate is
   reported as unreliable (the caller keeps its previous belief).

The yaw is + left (REP-103): a camera turned left by ``yaw`` sees the scene moved right, so column ``x`` of view a
appears at column ``x + yaw / step`` of view b. No rclpy here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDE_CONFIG = {
    "coarse_deg_per_px": 0.5, "channels": [16, 32, 32], "min_overlap": 0.12, "lk_iterations": 10,
    "norm_sigma_px": 3.0, "temperature": 20.0, "n_candidates": 3, "k1_starts": [-0.05, 0.0, 0.04],
    "conf_ncc": [0.25, 0.55], "conf_overlap": [0.12, 0.3], "conf_margin": [0.0, 0.1],
}


# ----------------------------------------------------------------------------------------------- geometry

def cylinder_maps(width: int, height: int, fov_deg: float, deg_per_px: float, k1: float = 0.0):
    """Remap tables (float32 x, y) from a cylinder image to a ``width x height`` pinhole image of horizontal field
    of view ``fov_deg`` with radial distortion ``k1``, and the cylinder pixels that fall inside the image.

    Cylinder column j is the azimuth ``theta_j`` (+ right, optical x), row i the height ``h_i`` on a unit cylinder
    (+ down); both steps are ``deg_per_px`` (as an arc) so pixels stay square near the optical axis."""
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    step = math.radians(deg_per_px)
    half_w = math.radians(fov_deg) / 2.0
    n_cols = int(round(2 * half_w / step)) // 4 * 4  # multiples of 4: the encoder's stride
    h_max = cy / f
    n_rows = int(round(2 * h_max / step)) // 4 * 4
    theta = (np.arange(n_cols) - (n_cols - 1) / 2.0) * step
    hh = (np.arange(n_rows) - (n_rows - 1) / 2.0) * step
    th, hv = np.meshgrid(theta, hh)
    xn, yn = np.tan(th), hv / np.cos(th)
    r2 = xn * xn + yn * yn
    factor = 1.0 + k1 * r2
    mx = (f * xn * factor + cx).astype(np.float32)
    my = (f * yn * factor + cy).astype(np.float32)
    valid = (mx >= 0.5) & (mx <= width - 1.5) & (my >= 0.5) & (my <= height - 1.5)
    return mx, my, valid


_MAPS: dict = {}


def to_cylinder(grey: np.ndarray, fov_deg: float, deg_per_px: float, k1: float = 0.0):
    """(H, W) float grey pinhole image -> (cylinder image, validity mask) at ``deg_per_px``."""
    h, w = grey.shape
    key = (w, h, round(float(fov_deg), 4), float(deg_per_px), round(float(k1), 5))
    if key not in _MAPS:
        if len(_MAPS) > 256:
            _MAPS.clear()
        _MAPS[key] = cylinder_maps(w, h, fov_deg, deg_per_px, k1)
    mx, my, valid = _MAPS[key]
    src = grey
    shrink = (w / 2.0) / math.tan(math.radians(fov_deg) / 2.0) * math.radians(deg_per_px)  # image px per cyl px
    if shrink > 1.5:  # anti-alias before sampling a coarser cylinder
        src = cv2.GaussianBlur(grey, (0, 0), 0.5 * shrink)
    out = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out, valid


def local_normalise(img: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Subtract the local mean and divide by the local standard deviation (Gaussian window ``sigma``) inside
    ``mask``: a dim, low-contrast or differently exposed view looks like a well exposed one."""
    m = mask.astype(np.float32)
    x = img.astype(np.float32) * m
    wsum = cv2.GaussianBlur(m, (0, 0), sigma) + 1e-6
    mean = cv2.GaussianBlur(x, (0, 0), sigma) / wsum
    var = cv2.GaussianBlur(x * x, (0, 0), sigma) / wsum - mean * mean
    noise_floor = 0.004 + 0.02 * float(np.sqrt(max(np.mean(var[mask]) if mask.any() else 0.0, 0.0)))
    return ((img - mean) / np.sqrt(np.maximum(var, 0.0) + noise_floor ** 2)) * m


# ----------------------------------------------------------------------------------------------- learned part

def _conv(cin, cout, k, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False,
                                   padding_mode="replicate"), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CylinderEncoder(nn.Module):
    """Siamese CNN on a locally normalised cylinder view -> L2-normalised features at 1/4 resolution."""

    def __init__(self, channels=(16, 32, 32)):
        super().__init__()
        c1, c2, c3 = channels
        self.net = nn.Sequential(_conv(1, c1, 5, 2), _conv(c1, c1, 3), _conv(c1, c2, 3, 2), _conv(c2, c2, 3),
                                 nn.Conv2d(c2, c3, 3, padding=1, padding_mode="replicate"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


class RawPatchEncoder(nn.Module):
    """The untrained reference for the learned encoder: each 4x4 cell's 8x8 neighbourhood of normalised pixels,
    blurred and L2-normalised (a patch descriptor with nothing learned)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2, 2)
        patches = F.unfold(F.pad(x, (1, 2, 1, 2), mode="replicate"), 4, stride=2)
        b, _, h, w = x.shape
        return F.normalize(patches.view(b, 16, h // 2, w // 2), dim=1)


def downsample_mask(mask: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """(B, 1, H, W) validity -> (B, 1, H/f, W/f): a feature is valid when its whole receptive cell is."""
    return (-F.max_pool2d(-mask.float(), factor, factor, ceil_mode=True)).clamp(0, 1)


def global_correlation(fa: torch.Tensor, ma: torch.Tensor, fb: torch.Tensor, mb: torch.Tensor):
    """Mean cosine similarity of view a's features with view b's at every column shift ``s`` (b column = a column +
    s, s from -(w-1) to w-1), and the overlap (share of a's valid features with a valid partner) at each shift.
    Inputs (B, C, h, w) features and (B, 1, h, w) masks. Returns (scores (B, 2w-1), overlap (B, 2w-1))."""
    fa, fb = fa * ma, fb * mb
    m = torch.einsum("bcyx,bcyz->bxz", fa, fb)               # every column of a against every column of b
    n = torch.einsum("byx,byz->bxz", ma[:, 0], mb[:, 0])      # valid pairs behind each entry
    w = fa.shape[-1]
    sums = torch.stack([torch.diagonal(m, s, 1, 2).sum(-1) for s in range(-(w - 1), w)], 1)
    counts = torch.stack([torch.diagonal(n, s, 1, 2).sum(-1) for s in range(-(w - 1), w)], 1)
    total = ma.sum((1, 2, 3)).clamp(min=1.0).unsqueeze(1)
    return sums / counts.clamp(min=1.0), counts / total


class WideRotationNet(nn.Module):
    """The learned coarse stage: encoder + global correlation -> scores over column shifts."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(DEFAULT_WIDE_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        self.encoder = RawPatchEncoder() if cfg.get("raw_patches") else CylinderEncoder(cfg["channels"])

    def shift_scores(self, xa, ma, xb, mb):
        """(B, 1, H, W) normalised cylinder views and masks -> (scores, overlap) over column shifts at 1/4 res."""
        fa, fb = self.encoder(xa), self.encoder(xb)
        return global_correlation(fa, downsample_mask(ma), fb, downsample_mask(mb))

    def forward(self, xa, ma, xb, mb):
        return self.shift_scores(xa, ma, xb, mb)


# ----------------------------------------------------------------------------------------------- refinement

def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Orientation of camera b in camera a's optical frame (yaw + left, pitch + down, roll), as `images.py`."""
    from av_pose_ros.primitives.geometry import OPTICAL_FROM_LINK_R, rot_x, rot_y, rot_z

    return OPTICAL_FROM_LINK_R @ rot_z(yaw) @ rot_y(pitch) @ rot_x(roll) @ OPTICAL_FROM_LINK_R.T


class _PinholeWarp:
    """Where every pixel of view a lands in view b for a rotation (yaw, pitch, roll) and a shared radial
    distortion k1 (both views come from the same lens)."""

    def __init__(self, width: int, height: int, fov_deg: float):
        self.f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
        self.cx, self.cy = (width - 1) / 2.0, (height - 1) / 2.0
        u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        self.xd, self.yd = (u - self.cx) / self.f, (v - self.cy) / self.f
        self._rays = {}

    def rays(self, k1: float) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted rays of every pixel (H, W, 3) and their derivative with respect to k1."""
        key = round(float(k1), 9)
        if key not in self._rays:
            if len(self._rays) > 8:
                self._rays.clear()
            x, y = self.xd.copy(), self.yd.copy()
            for _ in range(6):  # invert the radial model by fixed-point iteration
                fac = 1.0 + k1 * (x * x + y * y)
                x, y = self.xd / fac, self.yd / fac
            r2 = x * x + y * y
            dfac = -r2 / (1.0 + 3.0 * k1 * r2)  # d(x, y)/dk1 = (x, y) * dfac (implicit differentiation)
            self._rays[key] = (np.stack([x, y, np.ones_like(x)], -1).astype(np.float32),
                               np.stack([x * dfac, y * dfac, np.zeros_like(x)], -1).astype(np.float32))
        return self._rays[key]

    def project(self, d: np.ndarray, k1: float) -> tuple[np.ndarray, np.ndarray]:
        z = np.where(d[..., 2] > 1e-3, d[..., 2], np.nan)
        x, y = d[..., 0] / z, d[..., 1] / z
        fac = 1.0 + k1 * (x * x + y * y)
        return self.f * x * fac + self.cx, self.f * y * fac + self.cy

    def coords(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        yaw, pitch, roll, k1 = p
        return self.project(self.rays(k1)[0] @ _rotation(yaw, pitch, roll).astype(np.float32), k1)

    def coords_and_jacobian(self, p: np.ndarray, n_par: int, eps: float = 1e-4):
        """(u, v) and d(u, v)/dp for the first ``n_par`` parameters (central differences, rays held fixed except
        for their first-order change with k1)."""
        rays, drays = self.rays(p[3])
        u, v = self.project(rays @ _rotation(*p[:3]).astype(np.float32), p[3])
        du, dv = [], []
        for k in range(n_par):
            dp = np.zeros(4)
            dp[k] = eps
            rp, rm = (rays + eps * drays, rays - eps * drays) if k == 3 else (rays, rays)
            up, vp = self.project(rp @ _rotation(*(p + dp)[:3]).astype(np.float32), p[3] + dp[3])
            um, vm = self.project(rm @ _rotation(*(p - dp)[:3]).astype(np.float32), p[3] - dp[3])
            du.append((up - um) / (2 * eps))
            dv.append((vp - vm) / (2 * eps))
        return u, v, du, dv


def align_rotation(a: np.ndarray, ma: np.ndarray, b: np.ndarray, mb: np.ndarray, fov_deg: float, p0,
                   iterations: int = 12, fit_k1: bool = True) -> tuple[np.ndarray, float]:
    """Gauss-Newton photometric alignment of view b to view a over (yaw, pitch, roll, k1), started at ``p0``;
    inputs locally normalised images and masks of one size. Returns (parameters, NCC over the overlap)."""
    h, w = a.shape
    warp = _PinholeWarp(w, h, fov_deg)
    gbx = cv2.Sobel(b, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gby = cv2.Sobel(b, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    mb_f = mb.astype(np.float32)
    p = np.asarray(p0, np.float64).copy()
    n_par = 4 if fit_k1 else 3
    ncc = 0.0
    for it in range(iterations + 1):
        u, v, du, dv = warp.coords_and_jacobian(p, n_par if it < iterations else 0)
        bad = ~np.isfinite(u) | ~np.isfinite(v)
        mx, my = np.where(bad, -10, u).astype(np.float32), np.where(bad, -10, v).astype(np.float32)
        bw = cv2.remap(b, mx, my, cv2.INTER_LINEAR, borderValue=0.0)
        m = (cv2.remap(mb_f, mx, my, cv2.INTER_LINEAR, borderValue=0.0) > 0.999) & ma & ~bad
        if m.sum() < 100:
            return p, 0.0
        av, bv = a[m], bw[m]
        ncc = float(np.dot(av - av.mean(), bv - bv.mean()) /
                    (np.linalg.norm(av - av.mean()) * np.linalg.norm(bv - bv.mean()) + 1e-9))
        if it == iterations:
            break
        gx = cv2.remap(gbx, mx, my, cv2.INTER_LINEAR, borderValue=0.0)[m]
        gy = cv2.remap(gby, mx, my, cv2.INTER_LINEAR, borderValue=0.0)[m]
        cols = [gx * du[k][m] + gy * dv[k][m] for k in range(n_par)]
        jac = np.stack(cols, 1)
        r = bv - av
        wgt = 1.0 / np.maximum(np.abs(r) / 1.5, 1.0)  # Huber: parallax and occlusions count less
        hmat = jac.T @ (jac * wgt[:, None])
        hmat += 1e-4 * np.diag(np.diag(hmat)) + 1e-9 * np.eye(n_par)
        step = -np.linalg.solve(hmat, jac.T @ (r * wgt))
        step[:3] = np.clip(step[:3], -0.02, 0.02)
        if fit_k1:
            step[3] = np.clip(step[3], -0.02, 0.02)
        p[:n_par] += step
        if fit_k1:
            p[3] = np.clip(p[3], -0.15, 0.15)
        if np.all(np.abs(step[:3]) < 2e-6):
            iterations = it + 1
    return p, ncc


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / max(hi - lo, 1e-9), 0.0, 1.0))


@dataclass
class WideRotationResult:
    """One estimate: ``yaw`` (rad, + left), ``confidence`` in [0, 1] (0: no overlap or no agreement), and what it
    is made of."""

    yaw: float
    confidence: float
    overlap: float
    ncc: float
    margin: float
    k1: float
    coarse_yaw: float


class WideRotationEstimator:
    """Relative yaw between two views of a camera of known horizontal field of view (any size, any yaw)."""

    kind = "slfm_rotation_wide"

    def __init__(self, model: WideRotationNet | None = None, device="cpu", path: str | None = None,
                 metadata: dict | None = None):
        self.model = (model or WideRotationNet()).to(device).eval()
        self.config = self.model.config
        self.device = torch.device(device)
        self.path = path
        self.metadata = metadata or {}

    @classmethod
    def load(cls, path, device="cpu") -> WideRotationEstimator:
        from av_pose_ros.primitives.model_files import build, load_model_file

        from .errors import SlfmModelError

        found = load_model_file(path, cls.kind, error=SlfmModelError,
                                hint="train one with `python -m av_pose_ros.slfm.train_wide` (models/slfm.md)")
        return cls(build(found, WideRotationNet, error=SlfmModelError), device, str(path), found.metadata)

    # ------------------------------------------------------------------------------------------- pieces
    @staticmethod
    def grey(img: np.ndarray) -> np.ndarray:
        return _grey_checked(img)

    def coarse_inputs(self, grey: np.ndarray, fov_deg: float):
        cyl, valid = to_cylinder(grey, fov_deg, self.config["coarse_deg_per_px"])
        x = local_normalise(cyl, valid, self.config["norm_sigma_px"] * 1.5)
        return x, valid

    @torch.no_grad()
    def coarse(self, ga: np.ndarray, gb: np.ndarray, fov_deg: float) -> list:
        """Up to ``n_candidates`` coarse answers [(yaw rad, overlap, score)], best first: the strongest peaks of the
        global correlation at least 4 feature columns (8 deg) apart, among shifts with enough overlap."""
        xa, ma = self.coarse_inputs(ga, fov_deg)
        xb, mb = self.coarse_inputs(gb, fov_deg)
        t = [torch.from_numpy(np.ascontiguousarray(v, np.float32))[None, None].to(self.device)
             for v in (xa, ma, xb, mb)]
        scores, overlap = self.model.shift_scores(*t)
        scores, overlap = scores[0].cpu().numpy(), overlap[0].cpu().numpy()
        ok = overlap >= self.config["min_overlap"]
        s = np.where(ok, scores, -np.inf)
        w = (len(s) + 1) // 2
        step = math.radians(self.config["coarse_deg_per_px"]) * 4
        out = []
        for _ in range(int(self.config["n_candidates"])):
            if not np.isfinite(s).any():
                break
            j = int(np.argmax(s))
            off = 0.0
            if 0 < j < len(s) - 1 and np.isfinite(s[j - 1]) and np.isfinite(s[j + 1]):
                den = s[j - 1] - 2 * s[j] + s[j + 1]
                if den < -1e-9:
                    off = float(np.clip(0.5 * (s[j - 1] - s[j + 1]) / den, -0.5, 0.5))
            out.append(((j - (w - 1) + off) * step, float(overlap[j]), float(s[j])))
            s[max(j - 4, 0):j + 5] = -np.inf
        return out

    def _normalised(self, grey: np.ndarray, scale: float):
        img = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        sigma = self.config["norm_sigma_px"] * max(img.shape[1] / 320.0, 0.3)
        return cv2.GaussianBlur(local_normalise(img, np.ones(img.shape, bool), sigma), (0, 0), 1.0)

    def fine(self, ga: np.ndarray, gb: np.ndarray, fov_deg: float, starts) -> tuple:
        """Photometric alignment (rotation and distortion), coarse to fine. Quarter size picks the coarse start
        (from every start and every starting k1); the distortion has local minima that small images cannot tell
        apart, so the picked start goes on at half and full size from every starting k1 and the best full-size
        correlation wins. Returns (params, NCC at full size, the starts' best quarter-size NCCs, best first)."""
        c = self.config
        it = int(c["lk_iterations"])
        pyramid = {scale: tuple(self._normalised(g, scale) for g in (ga, gb)) for scale in (0.25, 0.5, 1.0)}

        def run(scale, p0, iters):
            a, b = pyramid[scale]
            inner = np.zeros(a.shape, bool)
            inner[2:-2, 2:-2] = True
            return align_rotation(a, inner, b, inner, fov_deg, p0, iters)

        runs = [[run(0.25, np.array([y0, 0.0, 0.0, k1]), it) for k1 in c["k1_starts"]] for y0 in starts]
        per_start = [max(r[1] for r in rs) for rs in runs]
        j = int(np.argmax(per_start))
        finished = []
        for p, _ in runs[j]:
            p, _ = run(0.5, p, max(it // 2, 2))
            finished.append(run(1.0, p, max(it // 3, 2)))
        p, ncc = max(finished, key=lambda r: r[1])
        # the runner-up: the best other start that ended somewhere else (starts may converge to one answer)
        others = [max(r[1] for r in rs) for k, rs in enumerate(runs) if k != j
                  and min(abs(r[0][0] - runs[j][0][0][0]) for r in rs) > math.radians(2.0)]
        return p, ncc, [per_start[j]] + sorted(others, reverse=True)

    # ------------------------------------------------------------------------------------------- public
    def estimate_full(self, img_a: np.ndarray, img_b: np.ndarray, fov_deg: float = 90.0) -> WideRotationResult:
        from .errors import SlfmInputError
        from .images import yaw_from_optical_rotation

        if not (isinstance(fov_deg, (int, float)) and math.isfinite(fov_deg) and 20.0 <= fov_deg <= 150.0):
            raise SlfmInputError(f"fov_deg must be a number in [20, 150] degrees, got {fov_deg!r}")
        ga, gb = self.grey(img_a), self.grey(img_b)
        if ga.shape != gb.shape:
            raise SlfmInputError(f"the two views differ in size: {ga.shape} vs {gb.shape}")
        cands = self.coarse(ga, gb, fov_deg)
        if not cands:
            return WideRotationResult(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        p, ncc, half_ncc = self.fine(ga, gb, fov_deg, [y for y, _, _ in cands])
        yaw = yaw_from_optical_rotation(_rotation(*p[:3]))
        start = min(cands, key=lambda cnd: abs(cnd[0] - yaw))
        margin = half_ncc[0] - (half_ncc[1] if len(half_ncc) > 1 else 0.0)
        c = self.config
        conf = _ramp(ncc, *c["conf_ncc"]) * _ramp(start[1], *c["conf_overlap"]) * _ramp(margin, *c["conf_margin"])
        return WideRotationResult(float(yaw), float(conf), start[1], float(ncc), float(margin), float(p[3]),
                                  float(cands[0][0]))

    def estimate(self, img_a: np.ndarray, img_b: np.ndarray, fov_deg: float = 90.0) -> float:
        """Turn of the head from view a to view b (rad, + left)."""
        return self.estimate_full(img_a, img_b, fov_deg).yaw

    def estimate_with_confidence(self, img_a, img_b, fov_deg: float = 90.0,
                                 symmetry_scale_deg: float = 3.0) -> tuple[float, float]:
        """(yaw rad, confidence): the model's own confidence (overlap, alignment, margin); the
        `RotationEstimator` interface (``symmetry_scale_deg`` is not used here)."""
        r = self.estimate_full(img_a, img_b, fov_deg)
        return r.yaw, r.confidence

    def estimate_batch(self, imgs_a, imgs_b, fov_deg: float = 90.0) -> np.ndarray:
        """`estimate` for each pair (the `RotationEstimator` interface slfm_node drives)."""
        from .errors import SlfmInputError

        if len(imgs_a) != len(imgs_b):
            raise SlfmInputError("need as many first views as second views")
        return np.array([self.estimate(a, b, fov_deg) for a, b in zip(imgs_a, imgs_b)])


def load_rotation_estimator(path, device=None):
    """The estimator a rotation model file asks for: `WideRotationEstimator` for ``slfm_rotation_wide`` files, the
    shipped `RotationEstimator` for ``slfm_rotation`` ones (missing or unreadable files raise SlfmModelError)."""
    from .estimators import RotationEstimator

    try:
        kind = torch.load(path, map_location="cpu", weights_only=True).get("kind")
    except Exception:  # noqa: BLE001 - RotationEstimator.load says what is wrong with the file
        kind = None
    if kind == WideRotationEstimator.kind:
        return WideRotationEstimator.load(path, device or "cpu")
    return RotationEstimator.load(path, device)


def _grey_checked(img: np.ndarray) -> np.ndarray:
    """The shipped estimator's input checks (type, shape, dtype, range), then grey float32 in [0, 1] at the
    input's own size."""
    from .errors import SlfmInputError
    from .estimators import MIN_IMAGE_SIDE

    if not isinstance(img, np.ndarray):
        raise SlfmInputError(f"image must be a numpy array, got {type(img).__name__}")
    if img.ndim == 3 and img.shape[2] in (3, 4):
        rgb = img[:, :, :3]
    elif img.ndim == 2:
        rgb = img[:, :, None]
    else:
        raise SlfmInputError(f"image must have shape (H, W), (H, W, 3) or (H, W, 4); got {img.shape}")
    if min(rgb.shape[:2]) < MIN_IMAGE_SIDE:
        raise SlfmInputError(f"image is too small ({rgb.shape[1]}x{rgb.shape[0]}); need {MIN_IMAGE_SIDE} px a side")
    if rgb.dtype == np.uint8:
        x = rgb.astype(np.float32) / 255.0
    elif np.issubdtype(rgb.dtype, np.floating):
        x = rgb.astype(np.float32)
        if not np.all(np.isfinite(x)) or x.min() < -1e-3 or x.max() > 1.0 + 1e-3:
            raise SlfmInputError("float images must be finite and in [0, 1]")
    else:
        raise SlfmInputError(f"image must be uint8 (0-255) or float (0-1); got dtype {rgb.dtype}")
    grey = x[..., 0] if x.shape[2] == 1 else x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    return np.ascontiguousarray(grey, np.float32)
