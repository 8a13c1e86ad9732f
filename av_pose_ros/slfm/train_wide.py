"""Self-supervised training of the wide rotation model's coarse encoder (`rotation_wide.CylinderEncoder`).

No label enters the loss. Training views come in triplets: three views from one camera spot of a textured 3D room
(`scenes3d`, training photographs and procedural scenes only), turned by unknown amounts, each with its own small
translation. The teacher is the model's own geometric part (nothing learned: raw-patch coarse search plus
photometric alignment of rotation and distortion) run on the clean views. A teacher answer is kept only when it is
self-consistent: confident (overlap, correlation, margin), and, when all three pairs of a triplet are answered,
the turns close the loop (``yaw_ab + yaw_bc = yaw_ac`` within ``cycle_deg``): geometric consistency, as in SLfM.
The student (the CNN) then sees the same pairs degraded (dim, blurred, noisy, low contrast, in either order: the
symmetry ``r(b, a) = -r(a, b)``) and learns to put its global-correlation peak where the clean pair's geometry put
it (cross-entropy over the column shifts, target a narrow Gaussian). Where the teacher cannot answer (little
overlap, too little texture), nothing is learned.

The rendered triplets also store the true turns, used only by :func:`audit_teacher` to report how good the kept
teacher answers are (models/slfm.md); training never reads them.

``python -m av_pose_ros.slfm.train_wide --views data_cache/slfm3d/train_views_0.pkl --out models/slfm_rotation_wide.pt``
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .rotation_wide import WideRotationEstimator, WideRotationNet

TEACHER_VERSION = 2  # bump when the geometric part (the teacher) changes: cached labels are then made again


@dataclass
class WideTrainConfig:
    views: str = "data_cache/slfm3d/train_views_0.pkl"
    out: str = "models/slfm_rotation_wide.pt"
    steps: int = 800
    batch: int = 8
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    sigma_cols: float = 0.6     # width of the target peak, in feature columns (2 deg each)
    cycle_deg: float = 0.5      # a triplet's loop must close within this
    min_confidence: float = 0.5
    unchecked_confidence: float = 0.9
    init_encoder: str = ""      # a pretext file (slfm.pretext): start the encoder from its visual encoder
    log: str | None = None


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def teacher_labels(spots: list, cfg: WideTrainConfig) -> list:
    """[(spot, i, j, yaw_ij)] kept by the self-consistency rules (module docstring)."""
    teacher = WideRotationEstimator(WideRotationNet({"raw_patches": True}))
    kept = []
    for s, spot in enumerate(spots):
        greys = [_grey(v) for v in spot["views"]]
        res = {}
        for i, j in ((0, 1), (1, 2), (0, 2)):
            r = teacher.estimate_full(greys[i], greys[j], spot["fov"])
            if r.confidence >= cfg.min_confidence:
                res[(i, j)] = (r.yaw, r.confidence)
        if len(res) == 3:
            loop = res[(0, 1)][0] + res[(1, 2)][0] - res[(0, 2)][0]
            if abs(math.degrees(loop)) <= cfg.cycle_deg:
                kept += [(s, i, j, y) for (i, j), (y, _) in res.items()]
        else:  # the loop cannot be checked (a pair without overlap): keep only the very confident answers
            kept += [(s, i, j, y) for (i, j), (y, c) in res.items() if c >= cfg.unchecked_confidence]
    return kept


def _cached_teacher(spots: list, cfg: WideTrainConfig) -> list:
    """`teacher_labels`, kept next to the views file (keyed by the rules' settings) so that reruns skip it."""
    import json
    import os

    path = (f"{cfg.views}.teacher{TEACHER_VERSION}_{cfg.min_confidence:g}_{cfg.unchecked_confidence:g}_"
            f"{cfg.cycle_deg:g}.json")
    if os.path.exists(path):
        with open(path) as fh:
            return [tuple(k) for k in json.load(fh)]
    kept = teacher_labels(spots, cfg)
    with open(path, "w") as fh:
        json.dump([list(k) for k in kept], fh)
    return kept


def audit_teacher(spots: list, kept: list) -> dict:
    """Error of the kept teacher answers against the rendered truth (reporting only)."""
    err = [abs(math.degrees(y - (spots[s]["yaw_truth_for_audit_only"][j] - spots[s]["yaw_truth_for_audit_only"][i])))
           for s, i, j, y in kept]
    return {"pairs_kept": len(kept), "pairs_total": 3 * len(spots),
            "kept_error_median_deg": float(np.median(err)) if err else None,
            "kept_error_p99_deg": float(np.percentile(err, 99)) if err else None,
            "kept_gross_share": float(np.mean(np.asarray(err) > 4.0)) if err else None}


def random_degrade(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of: clean, dim, blur, noise, low contrast; plus gain and gamma (each view on its own)."""
    x = grey * rng.uniform(0.7, 1.3)
    kind = rng.integers(0, 5)
    if kind == 1:
        x = x * rng.uniform(0.08, 0.3) + rng.normal(0, 0.01, x.shape)
    elif kind == 2:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(1.0, 3.5))
    elif kind == 3:
        x = x + rng.normal(0, rng.uniform(0.02, 0.1), x.shape)
    elif kind == 4:
        x = x.mean() + rng.uniform(0.15, 0.4) * (x - x.mean()) + rng.normal(0, 0.01, x.shape)
    x = np.clip(x, 0, 1) ** rng.uniform(0.8, 1.25)
    return np.clip(np.round(x * 255) / 255, 0, 1).astype(np.float32)


def _batch(spots, kept, idx, est: WideRotationEstimator, rng):
    xa, ma, xb, mb, target = [], [], [], [], []
    for k in idx:
        s, i, j, y = kept[k]
        if rng.random() < 0.5:
            i, j, y = j, i, -y
        fov = spots[s]["fov"]
        for g, xs, ms in ((spots[s]["views"][i], xa, ma), (spots[s]["views"][j], xb, mb)):
            x, m = est.coarse_inputs(random_degrade(_grey(g), rng), fov)
            xs.append(x)
            ms.append(m)
        target.append(y)
    t = [torch.from_numpy(np.stack(v).astype(np.float32)).unsqueeze(1) for v in (xa, ma, xb, mb)]
    return t, torch.tensor(target, dtype=torch.float32)


def shift_loss(scores, overlap, yaw, cfg_model: dict, sigma_cols: float, min_overlap: float):
    """Cross-entropy of the softmax over the column shifts against a Gaussian at the teacher's shift."""
    n = scores.shape[1]
    w = (n + 1) // 2
    step = math.radians(cfg_model["coarse_deg_per_px"]) * 4
    shifts = torch.arange(n, dtype=torch.float32) - (w - 1)
    target = torch.exp(-0.5 * ((shifts.view(1, -1) - (yaw / step).view(-1, 1)) / sigma_cols) ** 2)
    valid = overlap >= min_overlap
    target = target * valid
    target = target / target.sum(1, keepdim=True).clamp(min=1e-9)
    logits = torch.where(valid, scores * float(cfg_model["temperature"]), torch.full_like(scores, -1e4))
    return -(target * F.log_softmax(logits, 1)).sum(1).mean()


def train_wide(cfg: WideTrainConfig) -> dict:
    import pickle

    from av_pose_ros.primitives.model_files import save_model_file

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    with open(cfg.views, "rb") as fh:
        spots = pickle.load(fh)
    t0 = time.time()
    kept = _cached_teacher(spots, cfg)
    t_teacher = time.time() - t0
    audit = audit_teacher(spots, kept)
    log = open(cfg.log, "a") if cfg.log else None

    def emit(msg):
        print(msg, flush=True)
        if log:
            log.write(msg + "\n")
            log.flush()

    emit(f"teacher: {audit} in {t_teacher:.0f} s")
    model = WideRotationNet()
    if cfg.init_encoder:
        state = torch.load(cfg.init_encoder, map_location="cpu", weights_only=True)["state_dict"]
        model.encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    est = WideRotationEstimator(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    by_fov = {}
    for k, (s, _, _, _) in enumerate(kept):
        by_fov.setdefault(spots[s]["fov"], []).append(k)
    fovs = sorted(by_fov)
    t1 = time.time()
    history = []
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        pool = by_fov[fovs[int(rng.integers(0, len(fovs)))]]
        idx = rng.choice(pool, size=min(cfg.batch, len(pool)), replace=False)
        t, yaw = _batch(spots, kept, idx, est, rng)
        scores, overlap = model.shift_scores(*t)
        loss = shift_loss(scores, overlap, yaw, model.config, cfg.sigma_cols, model.config["min_overlap"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
        if step % 50 == 0 or step == cfg.steps - 1:
            emit(f"step {step} loss {np.mean(history[-50:]):.3f} lr {lr:.2e} {time.time() - t1:.0f} s")
    model.eval()
    summary = {"steps": cfg.steps, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.seed, "spots": len(spots),
               "teacher": audit, "teacher_seconds": t_teacher, "train_seconds": time.time() - t1,
               "final_loss": float(np.mean(history[-50:])), "labels_used_in_loss": False,
               "init_encoder": cfg.init_encoder or None}
    save_model_file(cfg.out, WideRotationEstimator.kind, model.config, model, {"training": summary})
    if log:
        log.close()
    return summary


def main(argv=None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="self-supervised training of the wide rotation model's encoder")
    for f, v in WideTrainConfig().__dict__.items():
        ap.add_argument("--" + f.replace("_", "-"), type=type(v) if v is not None else str, default=v)
    args = ap.parse_args(argv)
    summary = train_wide(WideTrainConfig(**vars(args)))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
