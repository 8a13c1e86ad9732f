"""``av-pose train-music-frontend``: train the learned music front end (``music_frontend``) on music groups.

Loss per batch (whole groups, so every batch holds positives and hard negatives): regression of the front end's
normalised kernel to the normalised chirp kernel of the same scene and pose, plus ``contrastive_weight`` x the
supervised InfoNCE loss on the CPE embeddings. The weights with the lowest validation regression loss are kept.
Seeded, CPU, one thread by default; decisions on ``val`` only.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from .music_frontend import FrontendConfig, MusicFrontend, contrastive_loss, regression_loss, save

VARIANTS = {   # name: (use_fa, use_cpe, contrastive weight)
    "fa": (True, False, 0.0),
    "cpe": (False, True, 0.2),
    "fa_cpe": (True, True, 0.2),
    "fa_refine": (True, True, 0.0),
}


def frames_of(groups: list[dict]) -> dict[str, torch.Tensor]:
    """Stack the usable frames of ``groups`` (kernel and chirp target present) into training tensors.

    ``re``/``im`` (N, P, B, T) are scaled by each frame's plain-kernel peak (the front end is scale-free; this
    keeps the numbers near one); ``target`` (N, P, T) the normalised chirp kernel of the frame's pose; ``label``
    (N,) group x 2 + pose; ``group`` (N,) the group's position in ``groups``."""
    re, im, feats, target, label, group = [], [], [], [], [], []
    for gi, g in enumerate(groups):
        for i in range(len(g["ok"])):
            pose = int(g["pose_id"][i])
            if not (g["ok"][i] and g["chirp_ok"][pose]):
                continue
            a = g["analytic"][i]
            scale = max(float(np.abs(a.sum(axis=1)).max()), 1e-30)
            re.append(a.real / scale)
            im.append(a.imag / scale)
            feats.append(g["features"][i])
            chirp = g["chirp"][pose]
            target.append(chirp / max(float(chirp.max()), 1e-30))
            label.append(2 * gi + pose)
            group.append(gi)
    if not re:
        raise ValueError("no usable frames (every frame refused or without a chirp target)")
    as_t = lambda x, dtype=torch.float32: torch.from_numpy(np.stack(x)).to(dtype)   # noqa: E731
    return dict(re=as_t(re), im=as_t(im), features=as_t(feats), target=as_t(target),
                label=torch.tensor(label), group=torch.tensor(group))


def batch_loss(model: MusicFrontend, data: dict, idx: torch.Tensor, contrastive_weight: float):
    kernels, _, embedding = model(data["re"][idx], data["im"][idx], data["features"][idx])
    reg = regression_loss(kernels, data["target"][idx])
    con = contrastive_loss(embedding, data["label"][idx]) if embedding is not None and contrastive_weight > 0 \
        else torch.zeros(())
    return reg + contrastive_weight * con, reg, con


@torch.no_grad()
def evaluate_loss(model: MusicFrontend, data: dict, batch: int = 64) -> float:
    model.eval()
    n = len(data["label"])
    total = 0.0
    for lo in range(0, n, batch):
        idx = torch.arange(lo, min(n, lo + batch))
        kernels, _, _ = model(data["re"][idx], data["im"][idx], data["features"][idx])
        total += float(regression_loss(kernels, data["target"][idx])) * len(idx)
    return total / n


def train(train_groups: list[dict], val_groups: list[dict], variant: str = "fa_cpe", epochs: int = 30,
          groups_per_batch: int = 6, lr: float = 2e-3, seed: int = 0, contrastive_weight: float | None = None,
          progress: bool = True, config: FrontendConfig | None = None) -> tuple[MusicFrontend, dict]:
    """Train one variant; returns the model with the best validation weights and a history dict."""
    from tqdm import tqdm

    use_fa, use_cpe, default_weight = VARIANTS[variant]
    weight = default_weight if contrastive_weight is None else float(contrastive_weight)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bands = train_groups[0]["analytic"].shape[2]
    cfg = config or FrontendConfig(bands=bands, use_fa=use_fa, use_cpe=use_cpe)
    model = MusicFrontend(cfg)
    data, val = frames_of(train_groups), frames_of(val_groups)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"variant": variant, "contrastive_weight": weight, "train_loss": [], "train_reg": [],
               "train_con": [], "val_reg": [evaluate_loss(model, val)], "seconds": 0.0}
    best, best_state = history["val_reg"][0], {k: v.clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    groups = np.unique(data["group"].numpy())
    for _ in tqdm(range(epochs), desc=f"train {variant}", disable=not progress):
        model.train()
        order = rng.permutation(groups)
        sums = np.zeros(3)
        for lo in range(0, len(order), groups_per_batch):
            chosen = torch.from_numpy(order[lo: lo + groups_per_batch])
            idx = torch.nonzero(torch.isin(data["group"], chosen)).ravel()
            loss, reg, con = batch_loss(model, data, idx, weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += [float(loss.detach()), float(reg.detach()), float(con.detach())]
        steps = max(1, -(-len(order) // groups_per_batch))
        for key, value in zip(("train_loss", "train_reg", "train_con"), sums / steps):
            history[key].append(float(value))
        history["val_reg"].append(evaluate_loss(model, val))
        if history["val_reg"][-1] < best:
            best, best_state = history["val_reg"][-1], {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    history.update(seconds=time.perf_counter() - t0, best_val_reg=best, frames_train=int(len(data["label"])),
                   frames_val=int(len(val["label"])), config=asdict(cfg))
    return model.eval(), history


def run(args) -> int:
    """The ``train-music-frontend`` handler (arguments: ``music_cli``)."""
    import sys
    from pathlib import Path

    from .music_dataset import generate, load_groups

    torch.set_num_threads(args.threads)
    root = Path(args.cache) if args.cache else None
    common = dict(root=root, workers=args.workers, synthetic=args.synthetic_music, progress=not args.no_progress)
    train_groups = load_groups(args.train_dir, args.train_groups) if args.train_dir else \
        generate(args.scenario, "train", args.data_seed, args.train_groups, **common)
    val_groups = load_groups(args.val_dir, args.val_groups) if args.val_dir else \
        generate(args.scenario, "val", args.data_seed, args.val_groups, **common)
    model, history = train(train_groups, val_groups, args.variant, args.epochs, args.groups_per_batch, args.lr,
                           args.seed, args.contrastive_weight, progress=not args.no_progress)
    tracks = sorted({str(g["track"]) for g in train_groups})
    meta = {"train": {**history, "command": "av-pose " + " ".join(sys.argv[1:]), "scenario": args.scenario,
                      "train_groups": len(train_groups), "val_groups": len(val_groups), "data_seed": args.data_seed,
                      "tracks_train": tracks, "val_tracks": sorted({str(g["track"]) for g in val_groups})}}
    save(args.out, model, meta)
    print(f"val regression loss {history['val_reg'][0]:.4f} (plain kernel) -> {history['best_val_reg']:.4f} "
          f"({args.variant}, {history['frames_train']} train frames, {history['seconds']:.0f} s); wrote {args.out}")
    return 0
