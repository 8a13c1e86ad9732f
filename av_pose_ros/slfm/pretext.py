"""Cross-view binauralization, SLfM's representation-learning pretext, sized for a CPU.

Task: the head hears a source at view A, then turns (by an amount nobody tells it) and looks again. From the two
camera views and the binaural spectrogram at A, predict the binaural spectrogram at B. The level and phase
differences between the ears change with the turn, so the only way to predict B better than copying A is to read
the turn from the images: the visual encoder must learn features whose correlation between the views carries the
turn. No label: the targets are recordings.

`CrossViewNet`: the visual half is the wide rotation model's encoder (`rotation_wide.CylinderEncoder`) on both
cylinder views, their global correlation (one score per column shift) and a small MLP that turns it into a
conditioning vector; the audio half is a light U-Net on the 4-channel STFT features (log magnitude left and right,
cos and sin of the interaural phase; `models.binaural_features`), conditioned at its bottleneck (FiLM), predicting
B's features as A's plus a correction. After training, the encoder initialises the wide rotation model's encoder
(`train_wide --init-encoder`); the ablation (models/slfm.md) trains that model from scratch and from the pretext
for the same steps. The azimuth model is not initialised from it: its learned parts are per-bin weights of a
generalised cross-correlation, not an encoder the pretext has.

Data (`make_pretext_set`): per item a shoebox room (`rooms.sample_room`, RT60 0.15-0.8 s), one source (music-like
or noise), the head at its base yaw and turned by U(-40, 40) deg, 0.5 s heard at both yaws (same source signal);
the two camera views of a textured 3D room (`scenes3d`, training pictures) turned by the same amount (60-deg lens,
small translation and distortion). The turn itself is stored for auditing only.

``python -m av_pose_ros.slfm.pretext --items 300 --steps 300 --out /tmp/pretext.pt``
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import binaural_features
from .rotation_wide import CylinderEncoder, WideRotationEstimator, WideRotationNet, downsample_mask, global_correlation

N_FFT, HOP, CLIP_S, FOV_DEG = 256, 128, 0.5, 60.0


def make_pretext_set(n: int, seed: int = 0) -> list:
    """``n`` items {"clip_a", "clip_b" (2, n) float32, "img_a", "img_b" uint8, "turn_for_audit_only"}."""
    from .images import ImageBank, load_real_photos
    from .rooms import render_view, sample_room
    from .scenes3d import Lens, sample_pair3d, sample_room3d
    from .sources import music_like, noise_like

    rng = np.random.default_rng([seed, 2024])
    bank = ImageBank(load_real_photos("train"), n_procedural=30, seed=seed + 3, p_real=0.5)
    n_clip = int(CLIP_S * 16000)
    items = []
    for _ in range(n):
        cfg = sample_room(rng)
        turn = math.radians(rng.uniform(-40.0, 40.0))
        src = (music_like if rng.random() < 0.6 else noise_like)(n_clip + 16000, rng)
        clips = [render_view(cfg, cfg.base_yaw + t, src, rng, snr_db=30.0)[:, :n_clip] for t in (0.0, turn)]
        lens = Lens(width=160, height=120, hfov_deg=FOV_DEG, k1=float(rng.uniform(-0.04, 0.03)))
        for _ in range(20):
            try:
                a, b = sample_pair3d(sample_room3d(rng, bank), turn, rng, lens, 0.03)
                break
            except RuntimeError:
                continue
        items.append({"clip_a": clips[0], "clip_b": clips[1], "img_a": a, "img_b": b, "turn_for_audit_only": turn})
    return items


def _block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CrossViewNet(nn.Module):
    """(views a, b as cylinder inputs; A's binaural features) -> B's binaural features."""

    def __init__(self, n_shifts: int, channels=(16, 32, 32), audio=(16, 32, 64), cond: int = 32,
                 use_vision: bool = True):
        super().__init__()
        self.encoder = CylinderEncoder(channels)
        self.use_vision = use_vision
        self.turn_mlp = nn.Sequential(nn.Linear(n_shifts, 64), nn.ReLU(), nn.Linear(64, cond))
        c1, c2, c3 = audio
        self.enc1, self.enc2, self.enc3 = _block(4, c1), _block(c1, c2, 2), _block(c2, c3, 2)
        self.film = nn.Linear(cond, 2 * c3)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.up2 = nn.ConvTranspose2d(c3, c2, 2, 2)
        self.dec2 = _block(2 * c2, c2)
        self.up1 = nn.ConvTranspose2d(c2, c1, 2, 2)
        self.dec1 = _block(2 * c1, c1)
        self.out = nn.Conv2d(c1, 4, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def condition(self, xa, ma, xb, mb) -> torch.Tensor:
        fa, fb = self.encoder(xa), self.encoder(xb)
        scores, _ = global_correlation(fa, downsample_mask(ma), fb, downsample_mask(mb))
        z = self.turn_mlp(torch.softmax(scores * 20.0, 1))
        return z if self.use_vision else torch.zeros_like(z)

    def forward(self, xa, ma, xb, mb, spec_a):
        z = self.condition(xa, ma, xb, mb)
        e1 = self.enc1(spec_a)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        gamma, beta = self.film(z).chunk(2, 1)
        e3 = e3 * (1 + gamma[..., None, None]) + beta[..., None, None]
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return spec_a + self.out(d1)


def _spec(clips: np.ndarray) -> torch.Tensor:
    """(B, 2, n) -> (B, 4, 128, 64) features (bins and frames cropped or padded to multiples of 4)."""
    f = binaural_features(torch.from_numpy(np.ascontiguousarray(clips)), N_FFT, HOP)[:, :, :128]
    return F.pad(f, (0, max(64 - f.shape[-1], 0)))[..., :64]


def _views(items, est: WideRotationEstimator):
    xa, ma, xb, mb = [], [], [], []
    for it in items:
        for img, xs, ms in ((it["img_a"], xa, ma), (it["img_b"], xb, mb)):
            x, m = est.coarse_inputs(est.grey(img), FOV_DEG)
            xs.append(x)
            ms.append(m)
    return [torch.from_numpy(np.stack(v).astype(np.float32)).unsqueeze(1) for v in (xa, ma, xb, mb)]


@dataclass
class PretextConfig:
    items: int = 300
    val_items: int = 40
    steps: int = 300
    batch: int = 8
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    out: str = "/tmp/slfm_pretext.pt"
    no_vision: bool = False  # the control: same network without the images


def train_pretext(cfg: PretextConfig, items: list | None = None) -> dict:
    """Train `CrossViewNet`; returns the validation L1 of B's features for the net and for copying A."""
    from av_pose_ros.primitives.model_files import save_model_file

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    items = items if items is not None else make_pretext_set(cfg.items + cfg.val_items, cfg.seed)
    t_data = time.time() - t0
    train, val = items[:-cfg.val_items], items[-cfg.val_items:]
    est = WideRotationEstimator(WideRotationNet({"raw_patches": True}))
    views = _views(items, est)
    spec_a = _spec(np.stack([it["clip_a"] for it in items]))
    spec_b = _spec(np.stack([it["clip_b"] for it in items]))
    n_shifts = 2 * views[0].shape[-1] // 4 - 1
    net = CrossViewNet(n_shifts, use_vision=not cfg.no_vision)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n_train = len(train)
    t1 = time.time()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        idx = torch.from_numpy(rng.choice(n_train, size=min(cfg.batch, n_train), replace=False))
        net.train()
        pred = net(*(v[idx] for v in views), spec_a[idx])
        loss = (pred - spec_b[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        vi = torch.arange(n_train, len(items))
        pred = net(*(v[vi] for v in views), spec_a[vi])
        val_l1 = float((pred - spec_b[vi]).abs().mean())
        copy_l1 = float((spec_a[vi] - spec_b[vi]).abs().mean())
    summary = {"items": n_train, "val_items": len(val), "steps": cfg.steps, "use_vision": not cfg.no_vision,
               "val_l1": val_l1, "copy_a_l1": copy_l1, "data_seconds": t_data, "train_seconds": time.time() - t1}
    config = {"n_shifts": n_shifts, "use_vision": not cfg.no_vision}
    save_model_file(cfg.out, "slfm_pretext", config, net, {"training": summary})
    return summary


def main(argv=None) -> int:
    import argparse
    import json
    import os
    import pickle

    ap = argparse.ArgumentParser(description="cross-view binauralization pretext (SLfM)")
    for f, v in PretextConfig().__dict__.items():
        if isinstance(v, bool):
            ap.add_argument("--" + f.replace("_", "-"), action="store_true")
        else:
            ap.add_argument("--" + f.replace("_", "-"), type=type(v), default=v)
    ap.add_argument("--cache", default="data_cache/slfm3d/pretext_items.pkl")
    args = vars(ap.parse_args(argv))
    cache = args.pop("cache")
    cfg = PretextConfig(**args)
    items = None
    if cache and os.path.exists(cache):
        with open(cache, "rb") as fh:
            items = pickle.load(fh)[: cfg.items + cfg.val_items]
    elif cache:
        torch.set_num_threads(cfg.threads)
        items = make_pretext_set(cfg.items + cfg.val_items, cfg.seed)
        with open(cache, "wb") as fh:
            pickle.dump(items, fh)
    print(json.dumps(train_pretext(cfg, items), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
