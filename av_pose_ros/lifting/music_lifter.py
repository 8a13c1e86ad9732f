"""A lifter that has heard music kernels: fine-tune the shipped (chirp-trained) lifter on music groups.

``models/lifter.pt`` never saw a continuous-mode (music) kernel, and on music kernels it doubles its error
(``models/music_frontend.md``). This fine-tunes it on the plain continuous kernels of the ``train`` music groups
(``music_dataset.group_samples``), mixed with the chirp kernels of the same groups and with encoded chirp samples
of the lifter's own training cache, so that it stays a lifter of both probes rather than a music-only net. The
best epoch is chosen on the music frames of the ``val`` groups (pre-snap MPJPE of the frames the coarse locator
placed, as ``train-lifter`` validates); ``test`` is never read here.

    python -m av_pose_ros.lifting.music_lifter --train-dir A B --val-dir C --chirp-enc DIR --out models/lifter_music.pt

The calibration stored in the init file (``metrics.calibration``: refusal thresholds, confidence, covariance) is
copied unchanged and marked ``calibration_source: chirp``: it was fitted to the chirp lifter on chirp frames. Refit
it on music frames with ``python -m av_pose_ros.lifting.calibration --model OUT --families music`` (which drops
the mark: the fit's report names its families).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader

from .model import NetConfig
from .train import EncodedDataset, cosine_schedule, encode_split, evaluate_loss, save_model, shift_batch, train_step


def _load_chirp_encodings(folder: str | Path, num: int) -> EncodedDataset:
    """The first ``num`` encoded samples of a lifter training cache folder (``enc-*`` files of ``encode_split``)."""
    folder = Path(folder)
    tags = sorted({p.name[: -len("-index.npy")] for p in folder.glob("enc-*-index.npy")})
    if not tags:
        raise FileNotFoundError(f"no encoded lifter samples in {folder}")
    enc = {k: np.load(folder / f"{tags[-1]}-{k}.npy", mmap_mode="r") for k in ("rays", "audio", "target", "index")}
    keep = min(int(num), len(enc["index"]))
    return EncodedDataset({k: v[:keep] for k, v in enc.items()})


def encode_groups(dirs: list[str], num: list[int] | None, cfg: NetConfig, sources: tuple[str, ...],
                  progress: bool) -> EncodedDataset:
    """Encoded lifter samples of the groups in ``dirs`` (at most ``num[i]`` groups from ``dirs[i]``), ``sources``
    of each ("music" frames and/or the "chirp" pose kernels)."""
    from .music_dataset import groups_samples, load_groups

    groups = []
    for i, d in enumerate(dirs):
        groups += load_groups(d, num[i] if num else None)
    parts = [groups_samples(groups, s) for s in sources]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return EncodedDataset(encode_split(data, cfg, None, 1, progress, f"encoding {'+'.join(sources)}"))


def fine_tune(args) -> dict:
    from .lifter import Lifter

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    start = Lifter.load(args.init)
    net, cfg = start.net.train(), start.config
    t0 = time.time()
    music = encode_groups(args.train_dir, args.train_groups, cfg, ("music",), not args.no_progress)
    chirp_groups = encode_groups(args.train_dir, args.train_groups, cfg, ("chirp",), not args.no_progress)
    val = encode_groups(args.val_dir, None, cfg, ("music",), not args.no_progress)
    val_chirp = encode_groups(args.val_dir, None, cfg, ("chirp",), not args.no_progress)
    parts = [music, chirp_groups] + [_load_chirp_encodings(d, args.chirp_num) for d in args.chirp_enc]
    train_set = ConcatDataset(parts)
    print(f"train: {len(music)} music + {len(chirp_groups)} group chirp + "
          f"{sum(len(p) for p in parts[2:])} cached chirp samples; val {len(val)} music, {len(val_chirp)} chirp; "
          f"encoding {(time.time() - t0) / 60:.1f} min", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, generator=gen)
    val_loader = DataLoader(val, batch_size=32)
    val_chirp_loader = DataLoader(val_chirp, batch_size=32)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    total = args.epochs * len(loader)
    sched = cosine_schedule(opt, total)
    aug = torch.Generator().manual_seed(args.seed + 7919)
    spacing = cfg.grid_size_m / cfg.grid_n
    first = evaluate_loss(net, val_loader, "cpu")["val_mpjpe_mm"]
    first_chirp = evaluate_loss(net, val_chirp_loader, "cpu")["val_mpjpe_mm"]
    history = [{"epoch": 0, "val_music_mm": first, "val_chirp_mm": first_chirp}]
    print(f"epoch 0 (init): val music {first:.1f} mm, val chirp {first_chirp:.1f} mm", flush=True)
    best, t1 = first, time.time()
    for epoch in range(args.epochs):
        gen.manual_seed(args.seed * 1000 + epoch)
        run, n = 0.0, 0
        for rays, audio, target, _ in loader:
            rays, audio, target = shift_batch(rays, audio, target, spacing, 1, aug)
            run, n = run + train_step(net, rays, audio, target, opt, sched), n + 1
        m = evaluate_loss(net, val_loader, "cpu")["val_mpjpe_mm"]
        mc = evaluate_loss(net, val_chirp_loader, "cpu")["val_mpjpe_mm"]
        history.append({"epoch": epoch + 1, "val_music_mm": m, "val_chirp_mm": mc, "train_l1_mm": 1000 * run / n,
                        "minutes": (time.time() - t1) / 60})
        print(f"epoch {epoch + 1}/{args.epochs}: train L1 {1000 * run / n:.1f} mm/axis, val music {m:.1f} mm, "
              f"val chirp {mc:.1f} mm, {(time.time() - t1) / 60:.1f} min", flush=True)
        if m < best:
            best = m
            _save(args, net, start, best, epoch + 1, history, len(music), len(chirp_groups), parts)
        if args.max_minutes and time.time() - t1 > 60 * args.max_minutes:
            break
    return {"best_val_music_mm": best, "history": history}


def _save(args, net, start, best, epoch, history, n_music, n_group_chirp, parts) -> None:
    metrics = {"val_mpjpe_mm": best, "epoch": epoch, "val_on": "music frames of the val groups"}
    calibration = (start.info.get("metrics") or {}).get("calibration")
    if calibration is not None:
        metrics.update(calibration=calibration, calibration_source="chirp")
    info = {"init": str(args.init), "train_dir": [str(d) for d in args.train_dir], "val_dir": [str(d) for d in
            args.val_dir], "chirp_enc": [str(d) for d in args.chirp_enc], "num_music": n_music,
            "num_group_chirp": n_group_chirp, "num_cached_chirp": sum(len(p) for p in parts[2:]),
            "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
            "shift_voxels": 1, "history": history, "use_audio": True}
    save_model(Path(args.out), net, metrics, info)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", default="models/lifter.pt")
    p.add_argument("--train-dir", nargs="+", required=True, help="folders of train music groups")
    p.add_argument("--train-groups", nargs="*", type=int, default=None, help="at most this many per folder")
    p.add_argument("--val-dir", nargs="+", required=True, help="folders of val music groups (model selection)")
    p.add_argument("--chirp-enc", nargs="*", default=[], help="lifter train cache folders with encoded chirp samples")
    p.add_argument("--chirp-num", type=int, default=500, help="encoded chirp samples taken from each --chirp-enc")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--out", default="models/lifter_music.pt")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    summary = fine_tune(args)
    print(f"best val music MPJPE {summary['best_val_music_mm']:.1f} mm -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
