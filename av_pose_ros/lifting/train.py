"""``train_lifter``: seeded, resumable, validated training of the lifter CNN, single process or under torchrun.

Data-parallel: under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains on its ``DistributedSampler`` share
with ``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs); rank 0 alone simulates missing data (the others wait
at a barrier and read the cache), prints, checkpoints and writes the model.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import dataset as ds
from .features import FineGrid, fine_encodings
from .model import LifterNet, NetConfig, stage_losses

MODEL_FORMAT = "av_pose_ros.lifter"
MODEL_VERSION = 1


ENCODING_VERSION = 1


def _encode_one(args):
    sample, grid_n, grid_size_m, use_audio = args
    grid = FineGrid(sample["coarse_centre"].astype(float), sample["coarse_rotation"].astype(float), grid_size_m,
                    grid_n)
    rays, audio = fine_encodings(grid, sample["keypoints"], sample["K"].astype(float),
                                 sample["world_from_camera"].astype(float),
                                 sample["kernels"] if use_audio else None, sample["speakers"],
                                 sample["mics"], float(sample["fs"]), float(sample["c"]))
    target = grid.to_local(sample["joints"].astype(float)).astype(np.float32)
    return rays.astype(np.float16), audio.astype(np.float16), target


def encode_split(data: dict, config: NetConfig, folder: Path | None, workers: int = 1, progress: bool = True,
                 desc: str = "encoding") -> dict:
    """Fine-grid encodings of every sample whose coarse step worked, float16, cached as .npy under ``folder``.

    Encodings depend only on the sample and the grid, so they are computed once (in ``workers`` processes) and
    every epoch reads them; augmentation shifts them by whole voxels (``shift_batch``).
    """
    from tqdm import tqdm

    index = np.flatnonzero(data["coarse_ok"])
    n, p = config.grid_n, (data["kernels"].shape[1] if config.use_audio else 0)
    tag = (f"enc-v{ENCODING_VERSION}-n{n}-s{config.grid_size_m:g}-num{len(data['coarse_ok'])}"
           + ("" if config.use_audio else "-noaudio"))
    paths = {k: folder / f"{tag}-{k}.npy" for k in ("rays", "audio", "target", "index")} if folder else {}
    if paths and all(q.exists() for q in paths.values()):
        return {k: np.load(q, mmap_mode="r") for k, q in paths.items()}
    rays = np.zeros((len(index), config.joints, n, n, n), np.float16)
    audio = np.zeros((len(index), p, n, n, n), np.float16)
    target = np.zeros((len(index), config.joints, 3), np.float32)
    jobs = [({k: v[i] for k, v in data.items()}, n, config.grid_size_m, config.use_audio) for i in index]
    bar = tqdm(total=len(jobs), desc=desc, unit="sample", disable=not progress)
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.imap(_encode_one, jobs, chunksize=8)
            for k, (r, a, t) in enumerate(results):
                rays[k], audio[k], target[k] = r, a, t
                bar.update()
    else:
        for k, job in enumerate(jobs):
            rays[k], audio[k], target[k] = _encode_one(job)
            bar.update()
    bar.close()
    out = {"rays": rays, "audio": audio, "target": target, "index": index}
    if paths:
        folder.mkdir(parents=True, exist_ok=True)
        for k, q in paths.items():
            tmp = q.with_name(q.stem + ".tmp.npy")
            np.save(tmp, out[k])
            os.replace(tmp, q)
    return out


class EncodedDataset(Dataset):
    def __init__(self, enc: dict):
        self.enc = enc

    def __len__(self) -> int:
        return len(self.enc["index"])

    def __getitem__(self, k: int):
        return (torch.from_numpy(np.asarray(self.enc["rays"][k], np.float32)),
                torch.from_numpy(np.asarray(self.enc["audio"][k], np.float32)),
                torch.from_numpy(np.array(self.enc["target"][k], np.float32)), int(self.enc["index"][k]))


def shift_batch(rays, audio, target, spacing_m: float, max_shift: int, generator: torch.Generator):
    """Move every sample's volumes by a random whole number of voxels per axis (zero fill) and its target with
    them: the network must not rely on the coarse locator putting the person at the exact cube centre."""
    if max_shift <= 0:
        return rays, audio, target
    shifts = torch.randint(-max_shift, max_shift + 1, (len(target), 3), generator=generator)
    rays, audio, target = rays.clone(), audio.clone(), target.clone()
    for b, sh in enumerate(shifts.tolist()):
        for vol in (rays, audio):
            v = torch.roll(vol[b], sh, dims=(1, 2, 3))
            for axis, s in enumerate(sh):
                if s > 0:
                    v.narrow(axis + 1, 0, s).zero_()
                elif s < 0:
                    v.narrow(axis + 1, v.shape[axis + 1] + s, -s).zero_()
            vol[b] = v
        target[b] += torch.tensor(sh, dtype=target.dtype) * spacing_m
    return rays, audio, target


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def save_model(path: Path, net: LifterNet, metrics: dict, train_info: dict) -> None:
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    payload = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "config": net.config.to_dict(),
               "state_dict": state, "metrics": json.loads(json.dumps(metrics)),
               "train": json.loads(json.dumps(train_info))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def cosine_schedule(opt, total_steps: int, *, warm_steps: int = 0):
    """Linear warm-up over ``warm_steps``, then cosine decay to 2 % of the base LR at ``total_steps``."""
    def lr_at(step):
        if step < warm_steps:
            return (step + 1) / warm_steps
        p = (step - warm_steps) / max(1, total_steps - warm_steps)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def train_step(net, rays, audio, target, opt, sched, *, model=None, device="cpu") -> float:
    """One optimiser step on every stage's loss (``model``: ``net`` or its DDP wrapper); the last stage's loss."""
    losses = stage_losses(net, (model or net)(rays.to(device), audio.to(device)), target.to(device))
    opt.zero_grad(set_to_none=True)
    sum(losses).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    sched.step()
    return losses[-1].item()


def evaluate_loss(net, loader, device) -> dict:
    """Validation: mean per-joint error (mm) of the last stage's soft-argmax and of the first stage."""
    net.eval()
    tot, first, count = 0.0, 0.0, 0
    for rays, audio, target, _ in loader:
        outs = net(rays.to(device), audio.to(device))
        target = target.to(device)
        last = net.locate(outs[-1])[0]
        tot += torch.linalg.norm(last - target, dim=-1).mean(-1).sum().item()
        first += torch.linalg.norm(net.locate(outs[0])[0] - target, dim=-1).mean(-1).sum().item()
        count += len(target)
    net.train()
    stats = torch.tensor([tot, first, count], dtype=torch.float64, device=device)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(stats)
    tot, first, count = stats.tolist()
    return {"val_mpjpe_mm": 1000 * tot / max(count, 1), "val_stage1_mm": 1000 * first / max(count, 1)}


def _per_scenario(values, scenarios: list[str], what: str) -> list[int]:
    values = [int(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    if len(values) == 1:
        values = values * len(scenarios)
    if len(values) != len(scenarios):
        raise ValueError(f"{what}: give one count, or one per scenario ({len(scenarios)}), got {values}")
    return values


def load_encoded(scenarios: list[str], split: str, counts: list[int], seed: int, cfg: NetConfig, cache_root,
                 workers: int, progress: bool) -> Dataset:
    """Simulated, encoded samples of ``split`` from every scenario (``counts[i]`` from ``scenarios[i]``), one
    dataset over all of them (mixing scenarios costs no copy: each part stays memory-mapped from the cache)."""
    from torch.utils.data import ConcatDataset

    parts = []
    for scenario, num in zip(scenarios, counts):   # a vision-only model trains on samples without sound
        data = ds.generate(scenario, split, seed, num, cache_root, workers, progress, audio=cfg.use_audio)
        enc = encode_split(data, cfg, ds.cache_dir(scenario, split, seed, cache_root, cfg.use_audio), workers,
                           progress, f"encoding {split} ({Path(scenario).stem})")
        parts.append(EncodedDataset(enc))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


@dataclass(kw_only=True)
class LifterTrainConfig:
    """Everything ``train_lifter`` needs (``av-pose train-lifter`` maps its flags one to one onto these).

    Seeded (``seed`` fixes data, initialisation and batch order); ``out + '.ckpt'`` holds a checkpoint written every
    epoch that ``resume=True`` continues from. LR: linear warm-up (first 3% of steps) then cosine decay to 2%.
    ``shift_voxels``: augmentation by random whole-voxel shifts of the encodings (see ``shift_batch``).
    ``max_minutes`` stops training early (the schedule still assumes ``epochs``).
    Several scenarios train one model on their union (``num_train``/``num_val``: one count for all, or one per
    scenario); ``init`` fine-tunes an existing model file (its architecture replaces ``net_config``).
    ``net_config`` holds ``NetConfig`` fields; ``{"use_audio": False}`` trains the learned vision-only baseline.
    Model selection (the best epoch) uses the ``val`` stream only; ``test`` is never read here.
    """

    scenario: str | Path | list = "config/scenarios/default.yaml"
    out: str | Path = "models/lifter.pt"
    num_train: int | list[int] = 6000
    num_val: int | list[int] = 400
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    shift_voxels: int = 1
    workers: int = 0                       # DataLoader workers
    threads: int | None = None             # torch CPU threads
    device: str | None = None              # default: CUDA when present
    resume: bool = False
    net_config: dict = field(default_factory=dict)
    max_minutes: float | None = None
    cache_root: str | Path | None = None
    gen_workers: int | None = None         # processes for simulation/encoding (default: all cores)
    init: str | Path | None = None
    progress: bool = True


def train_lifter(config: LifterTrainConfig, log: Callable[..., None] = print) -> dict:
    """Train the lifter on simulated data of ``config.scenario``; write the best (validation) model to
    ``config.out``; returns a summary dict (best validation MPJPE, history, minutes, ...)."""
    cfg_t = config
    scenario, out, num_train, num_val, epochs = (cfg_t.scenario, cfg_t.out, cfg_t.num_train, cfg_t.num_val,
                                                 cfg_t.epochs)
    batch_size, lr, weight_decay, seed, shift_voxels = (cfg_t.batch_size, cfg_t.lr, cfg_t.weight_decay,
                                                        cfg_t.seed, cfg_t.shift_voxels)
    workers, threads, device, resume, net_config = (cfg_t.workers, cfg_t.threads, cfg_t.device, cfg_t.resume,
                                                    cfg_t.net_config)
    max_minutes, cache_root, gen_workers, init, progress = (cfg_t.max_minutes, cfg_t.cache_root, cfg_t.gen_workers,
                                                            cfg_t.init, cfg_t.progress)
    from tqdm import tqdm

    rank, local_rank, world = _dist_info()
    distributed = world > 1
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if distributed and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    ckpt_path = out.with_name(out.name + ".ckpt")
    init_state = None
    if init is not None:  # fine-tuning: the shipped model's architecture and weights
        from .lifter import Lifter

        start = Lifter.load(init)
        net_config, init_state = start.config.to_dict(), start.net.state_dict()
    cfg = NetConfig.from_dict(net_config or {})
    torch.manual_seed(seed)
    np.random.seed(seed)
    scenarios = [str(scenario)] if isinstance(scenario, (str, Path)) else [str(x) for x in scenario]
    counts_train = _per_scenario(num_train, scenarios, "num_train")
    counts_val = _per_scenario(num_val, scenarios, "num_val")
    workers_here = max(1, gen_workers or os.cpu_count() or 1)
    # Rank 0 simulates and encodes what is missing; the others wait, then read the cache single-process.
    if rank == 0:
        train_set = load_encoded(scenarios, "train", counts_train, seed, cfg, cache_root, workers_here, progress)
        val_set = load_encoded(scenarios, "val", counts_val, seed, cfg, cache_root, workers_here, progress)
    if distributed:
        torch.distributed.barrier()
    if rank != 0:
        train_set = load_encoded(scenarios, "train", counts_train, seed, cfg, cache_root, 1, False)
        val_set = load_encoded(scenarios, "val", counts_val, seed, cfg, cache_root, 1, False)
    aug_gen = torch.Generator().manual_seed(seed + 7919 * (rank + 1))
    if distributed:
        from torch.utils.data.distributed import DistributedSampler
        train_sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=seed)
        val_sampler = DistributedSampler(val_set, world, rank, shuffle=False)
    else:
        train_sampler = val_sampler = None
    gen = torch.Generator().manual_seed(seed)
    loader_args = dict(batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0,
                       pin_memory=device.type == "cuda")
    train_loader = DataLoader(train_set, sampler=train_sampler, shuffle=train_sampler is None, drop_last=True,
                              generator=gen, **loader_args)
    val_loader = DataLoader(val_set, sampler=val_sampler, shuffle=False, **loader_args)

    net = LifterNet(cfg).to(device)
    if init_state is not None:
        net.load_state_dict(init_state)
    model = net
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(train_loader))
    total = epochs * steps_per_epoch
    sched = cosine_schedule(opt, total, warm_steps=max(1, int(0.03 * total)))
    start_epoch, best, history = 0, float("inf"), []
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, best, history = int(ck["epoch"]), float(ck["best"]), list(ck["history"])
        if rank == 0:
            log(f"resumed from {ckpt_path} at epoch {start_epoch} (best {best:.1f} mm)")
    train_info = {"scenario": scenarios, "num_train": counts_train, "num_val": counts_val, "epochs": epochs,
                  "init": str(init) if init else None,
                  "batch_size": batch_size, "lr": lr, "seed": seed, "shift_voxels": shift_voxels, "world_size": world,
                  "device": device.type, "use_audio": cfg.use_audio}
    t0 = time.time()
    first = None
    if rank == 0 and start_epoch == 0:
        first = evaluate_loss(net, val_loader, device)
        log(f"epoch 0 ({'starting weights' if init else 'untrained'}): val MPJPE {first['val_mpjpe_mm']:.1f} mm")
        history.append({"epoch": 0, **first})
    elif distributed and start_epoch == 0:
        evaluate_loss(net, val_loader, device)
    stopped = False
    for epoch in range(start_epoch, epochs):
        aug_gen.manual_seed(seed + 7919 * (rank + 1) + 104729 * epoch)
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        gen.manual_seed(seed * 1000 + epoch)
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{epochs}", disable=rank != 0 or not progress,
                   leave=False)
        run_loss, n = 0.0, 0
        for rays, audio, target, _ in bar:
            rays, audio, target = shift_batch(rays, audio, target, cfg.grid_size_m / cfg.grid_n, shift_voxels, aug_gen)
            run_loss += train_step(net, rays, audio, target, opt, sched, model=model, device=device)
            n += 1
            bar.set_postfix(last_l1_mm=f"{1000 * run_loss / n:.0f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            if max_minutes:
                late = torch.tensor([float(time.time() - t0 > 60 * max_minutes)])
                if distributed:   # every rank must stop at the same step or the next all-reduce hangs
                    torch.distributed.all_reduce(late, op=torch.distributed.ReduceOp.MAX)
                if late.item() > 0:
                    stopped = True
                    break
        metrics = evaluate_loss(net, val_loader, device)
        metrics.update(epoch=epoch + 1, train_l1_mm=1000 * run_loss / max(n, 1), minutes=(time.time() - t0) / 60)
        history.append(metrics)
        if rank == 0:
            log(f"epoch {epoch + 1}/{epochs}: train L1 {metrics['train_l1_mm']:.1f} mm/axis, val MPJPE "
                f"{metrics['val_mpjpe_mm']:.1f} mm (stage 1 {metrics['val_stage1_mm']:.1f}), "
                f"{metrics['minutes']:.1f} min")
            if metrics["val_mpjpe_mm"] < best:
                best = metrics["val_mpjpe_mm"]
                save_model(out, net, {"val_mpjpe_mm": best, "epoch": epoch + 1},
                           {**train_info, "history": history})
            ck = {"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                  "epoch": epoch + 1, "best": best, "history": json.loads(json.dumps(history))}
            tmp = ckpt_path.with_name(ckpt_path.name + ".tmp")
            torch.save(ck, tmp)
            os.replace(tmp, ckpt_path)
        if stopped:
            break
    summary = {"best_val_mpjpe_mm": best, "history": history, "minutes": (time.time() - t0) / 60,
               "stopped_early": stopped, "rank": rank, "world_size": world}
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return summary
