"""Self-supervised SLfM training: the rotation and azimuth models teach each other; no label enters any loss.

A batch holds whole configurations: one room, one fixed source, the head recorded at ``V`` yaws (views). For each
view v > 0 the rotation model predicts the head's turn from view 0 from two pictures rendered for that turn (in both
orders); for each view the audio model gives a distribution over the interaural delay (and its peak, the
front-folded azimuth). The ears are swapped on half of the configurations (turns negated with them). Losses:

* audio, multi-view delay likelihood (weight 1): a source at ``az`` anywhere on the circle is heard in view v with
  the delay ``itd(az - turn_v)``; minus the log marginal likelihood over ``az`` that all views heard one source
  (:func:`losses.multiview_delay_loss`), which covers the front/back mirrored solutions;
* audio, the IID left/right vote (weight 0.2) on the probability mass at left-ear-first delays;
* rotation (joint training only), geometric consistency with the audio model's detached directions (weight 5,
  :func:`losses.multiview_geometric_loss`) and symmetry (reversed image order negates the rotation, weight 1).

With ``rotation_model`` the rotation model is a trained, frozen file and only the audio model learns; in joint
training the audio losses start after ``audio_start`` of the steps (before that the turns are noise).

The losses cannot tell the true solution from its mirror image (all rotations negated, all sources reflected
front/back). As in the paper this global ambiguity is resolved after training by showing the rotation model pairs
whose turning direction is known (a view and the same scene turned left) and negating its output if it points the
wrong way; the flip is stored in the model file. Ground-truth angles are used only for the monitoring metrics.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from av_pose_ros.primitives.model_files import save_model_file

from .data import AudioPairSet, generate_audio_dataset
from .images import ImageBank, load_real_photos, procedural_scene, sample_pair
from .losses import iid_labels, multiview_delay_loss, multiview_geometric_loss, side_loss, symmetry_loss
from .models import AzimuthNet, RotationNet, binaural_features, swap_features
from .rooms import fold_front

W_GEO, W_SYM = 5.0, 1.0          # rotation model: geometric consistency with the audio directions, symmetry
W_DELAY, W_SIDE = 1.0, 0.2       # audio model: multi-view delay consistency, IID left/right vote


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def grey_batch(images: list, device) -> torch.Tensor:
    """List of RGB uint8 (H, W, 3) -> (B, 1, H, W) float in [0, 1] (ITU-R 601 luma)."""
    arr = np.stack(images).astype(np.float32) / 255.0
    grey = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    return torch.from_numpy(grey).unsqueeze(1).to(device)


def save_model(path, kind: str, model: torch.nn.Module, metadata: dict | None = None) -> None:
    """One model file in the package's convention (``primitives.model_files``): config, state dict, metadata."""
    save_model_file(path, kind, model.config, model, metadata)


class BatchMaker:
    """Whole configurations from the audio cache plus, for every view v > 0, a picture pair rendered for the head's
    turn from view 0 to view v."""

    def __init__(self, audio: AudioPairSet, images: ImageBank, rot_cfg: dict, batch: int, seed: int):
        self.audio, self.images, self.batch = audio, images, batch
        self.w, self.h = rot_cfg["width"], rot_cfg["height"]
        self.seed = seed

    def make(self, step: int):
        rng = np.random.default_rng([self.seed, step, 99])
        clips, turns, az = self.audio.sample_configs(rng, self.batch)
        ia, ib = [], []
        for row in turns:
            for t in row[1:]:
                pa, pb = sample_pair(self.images.draw(rng), float(t), rng, self.w, self.h)
                ia.append(pa)
                ib.append(pb)
        return clips, turns, az, ia, ib


@torch.no_grad()
def resolve_mirror(rot_model: RotationNet, seed: int = 0, n: int = 16, device="cpu") -> float:
    """+1 or -1: the factor that makes the rotation model report a left turn as positive. Uses pairs whose turning
    direction (not amount) is known: a procedural scene viewed, then viewed again after turning left by 10-20 deg."""
    rng = np.random.default_rng([seed, 4242])
    cfg = rot_model.config
    ia, ib = [], []
    for _ in range(n):
        scene = procedural_scene(rng)
        a, b = sample_pair(scene, float(np.deg2rad(rng.uniform(10, 20))), rng, cfg["width"], cfg["height"])
        ia.append(a)
        ib.append(b)
    was = rot_model.training
    rot_model.eval()
    pred = rot_model(grey_batch(ia, device), grey_batch(ib, device))
    rot_model.train(was)
    return 1.0 if float(torch.median(pred)) >= 0 else -1.0


def _lr(step: int, steps: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(steps - warmup, 1)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


@torch.no_grad()
def monitor(rot_model, az_model, batch, device, sign: float) -> dict:
    """Label-based monitoring numbers (never used for training): MAE of rotation (after the mirror flip) and of the
    front-folded azimuth."""
    a, b, turn, az, ia, ib = batch
    rot_was, az_was = rot_model.training, az_model.training
    rot_model.eval()
    az_model.eval()
    ga, gb = grey_batch(ia, device), grey_batch(ib, device)
    r = sign * 0.5 * (rot_model(ga, gb) - rot_model(gb, ga)).cpu().numpy()
    wave = torch.from_numpy(np.concatenate([a, b])).to(device)
    phi = az_model(wave).cpu().numpy()
    rot_model.train(rot_was)
    az_model.train(az_was)
    true_phi = fold_front(np.concatenate([az[:, 0], az[:, 1]]))
    return {
        "rot_slope": float(np.polyfit(turn, r, 1)[0]),
        "az_slope": float(np.polyfit(true_phi, phi, 1)[0]),
        "rot_mae_deg": float(np.rad2deg(np.mean(np.abs(r - turn)))),
        "az_mae_deg": float(np.rad2deg(np.mean(np.abs(phi - true_phi)))),
        "chance_rot_deg": float(np.rad2deg(np.mean(np.abs(turn)))),
        "chance_az_deg": float(np.rad2deg(np.mean(np.abs(true_phi)))),
    }


def train_slfm(
    out_dir="models",
    cache_dir="data_cache/slfm",
    steps: int = 1800,
    batch: int = 10,
    seed: int = 0,
    n_configs: int = 6000,
    n_val: int = 200,
    n_procedural: int = 300,
    lr: float = 1e-3,
    device: str = "auto",
    resume: bool = True,
    threads: int | None = None,
    rotation_config: dict | None = None,
    azimuth_config: dict | None = None,
    ckpt_every: int = 200,
    log_every: int = 100,
    progress: bool = True,
    clip_seconds: float = 1.0,
    n_speech: int = 240,
    max_turn_deg: float = 30.0,
    rotation_name: str = "slfm_rotation.pt",
    azimuth_name: str = "slfm_azimuth.pt",
    log_file=None,
    rotation_model: str | None = None,
    min_confidence: float = 0.0,
    w_side: float = W_SIDE,
    audio_start: float = 0.5,
) -> dict:
    """Train both models without labels and write ``out_dir/<rotation_name>`` and ``out_dir/<azimuth_name>``.

    ``cache_dir`` holds the generated audio (created on first use, deterministic in ``seed``) and the checkpoint
    ``train_ckpt.pt``; with ``resume`` a run continues from it. With ``rotation_model`` (a trained
    ``slfm_rotation.pt``) only the audio model is trained: the head turns between the views come from that frozen
    model's predictions on the rendered picture pairs, and no rotation file is written. In joint training the audio
    losses start after ``audio_start`` of the steps. Returns a summary dict."""
    if threads:
        torch.set_num_threads(int(threads))
    dev = pick_device(device)
    torch.manual_seed(seed)
    t0 = time.time()
    cache = Path(cache_dir)
    audio_dir = cache / f"audio_n{n_configs}_s{seed}_c{clip_seconds:g}"
    generate_audio_dataset(audio_dir, n_configs, seed=seed, clip_seconds=clip_seconds, n_speech=n_speech,
                           max_turn_deg=max_turn_deg, progress=progress)
    t_data = time.time() - t0
    audio = AudioPairSet(audio_dir, max_pair_turn_deg=max_turn_deg, limit=n_configs - n_val)
    val_audio = AudioPairSet(audio_dir, max_pair_turn_deg=max_turn_deg)  # validation: the held-back tail only
    images = ImageBank(load_real_photos("train"), n_procedural=n_procedural, seed=seed)
    frozen_sign = None
    if rotation_model is not None:  # audio only: turns from a trained, frozen rotation model
        from .estimators import RotationEstimator

        est = RotationEstimator.load(rotation_model, device=dev)
        rot_model, frozen_sign = est.model, float(est.output_sign)
        for prm in rot_model.parameters():
            prm.requires_grad_(False)
    else:
        rot_model = RotationNet(rotation_config).to(dev)
    az_model = AzimuthNet(azimuth_config).to(dev)
    params = list(az_model.parameters()) + ([] if frozen_sign is not None else list(rot_model.parameters()))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    maker = BatchMaker(audio, images, rot_model.config, batch, seed)
    ckpt_path = cache / f"train_ckpt_s{seed}.pt"
    start = 0
    history = []
    run_id = json.dumps([steps, batch, seed, n_configs, lr, rot_model.config, az_model.config, rotation_model,
                         min_confidence, w_side, audio_start,
                         [(k, list(v.shape)) for m in (rot_model, az_model) for k, v in m.state_dict().items()]])
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if ck.get("run") == run_id:  # same settings and the same architecture: continue
            if frozen_sign is None:
                rot_model.load_state_dict(ck["rot"])
            az_model.load_state_dict(ck["az"])
            opt.load_state_dict(ck["opt"])
            start = int(ck["step"])
            history = json.loads(ck["history"])
            torch.set_rng_state(ck["torch_rng"])
    # fixed validation batch from held-back configurations (monitoring only)
    vrng = np.random.default_rng([seed, 555])
    val_pairs = val_audio.pairs

    def val_sample(rng, bsz):
        idx = rng.integers(n_configs - n_val, n_configs, size=bsz)
        a = np.empty((bsz, 2, val_audio.n), np.float32)
        b = np.empty_like(a)
        turn, az = np.empty(bsz), np.empty((bsz, 2))
        for m, i in enumerate(idx):
            j, k = val_pairs[i][int(rng.integers(0, len(val_pairs[i])))]
            a[m], b[m] = val_audio.audio[i, j], val_audio.audio[i, k]
            turn[m] = val_audio.turns[i, k] - val_audio.turns[i, j]
            az[m] = val_audio.azimuth[i, j], val_audio.azimuth[i, k]
        return a, b, turn, az

    val_images = ImageBank([], n_procedural=20, seed=seed + 1)
    va, vb, vturn, vaz = val_sample(vrng, 128)
    via, vib = zip(*[sample_pair(val_images.draw(vrng), float(t), vrng, rot_model.config["width"],
                                 rot_model.config["height"]) for t in vturn])
    val_batch = (va, vb, vturn, vaz, list(via), list(vib))

    log = open(log_file, "a") if log_file else None

    def emit(msg: str):
        if log:
            log.write(msg + "\n")
            log.flush()

    try:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=start, desc="train-slfm", disable=not progress, mininterval=10.0)
    except ImportError:  # pragma: no cover
        bar = None
    if start == 0 and not history:  # the untrained models, for comparison (monitoring only)
        sign0 = frozen_sign or resolve_mirror(rot_model, seed, device=dev)
        history.append({"step": 0, **monitor(rot_model, az_model, val_batch, dev, sign0), "mirror": sign0,
                        "elapsed_s": time.time() - t0})
        emit(json.dumps(history[-1]))
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(maker.make, start) if start < steps else None
    rot_model.train(frozen_sign is None)
    az_model.train()
    n_fft, hop, max_bin = az_model.n_fft, az_model.hop, az_model.max_bin
    running = {}
    t_train = time.time()
    for step in range(start, steps):
        clips, turns, az, ia, ib = future.result()
        future = pool.submit(maker.make, step + 1) if step + 1 < steps else None
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
        bsz, n_views = clips.shape[:2]
        wave = torch.from_numpy(clips.reshape(bsz * n_views, 2, -1)).to(dev)
        labels = iid_labels(wave.cpu()).to(dev)
        feats = binaural_features(wave, n_fft, hop, max_bin)
        # ears swapped on half of the configurations (all views): the mirrored scene, turns negated
        swap = torch.from_numpy(np.random.default_rng([seed, step, 7]).random(bsz) < 0.5).to(dev)
        swap_v = swap.repeat_interleave(n_views)
        feats = torch.where(swap_v.view(-1, 1, 1, 1), swap_features(feats), feats)
        labels = torch.where(swap_v, 1.0 - labels, labels)
        n_pairs = len(ia)
        if frozen_sign is not None:
            with torch.no_grad():
                f = rot_model.features(grey_batch(ia + ib, dev))
                fa, fb = f[:n_pairs], f[n_pairs:]
                rot_both = rot_model.from_features(torch.cat([fa, fb]), torch.cat([fb, fa]))
        else:
            f = rot_model.features(grey_batch(ia + ib, dev))
            fa, fb = f[:n_pairs], f[n_pairs:]
            rot_both = rot_model.from_features(torch.cat([fa, fb]), torch.cat([fb, fa]))
        r_ab, r_ba = rot_both[:n_pairs], rot_both[n_pairs:]
        rot = torch.cat([torch.zeros(bsz, 1, device=dev), (0.5 * (r_ab - r_ba)).view(bsz, n_views - 1)], 1)
        rot_seen = torch.where(swap.view(-1, 1), -rot, rot)
        score, pooled = az_model.lag_scores(feats)
        logp = az_model.lag_log_probs(score)
        l_delay, _, conf = multiview_delay_loss(logp.view(bsz, n_views, -1), rot_seen.detach(), az_model.lags,
                                                az_model.itd_of_azimuth, min_confidence=min_confidence)
        l_delay = l_delay.mean()
        l_side = side_loss(logp, az_model.lags, labels)
        # joint training: the audio model waits until the rotation model has learned from its (initial) directions;
        # before that the turns are noise and would teach it wrong delays
        w_audio = 1.0 if frozen_sign is not None or step >= audio_start * steps else 0.0
        loss = w_audio * (W_DELAY * l_delay + w_side * l_side)
        terms = [("delay", l_delay), ("side", l_side), ("conf", conf.mean())]
        if frozen_sign is None:  # the rotation model learns from the audio model's (detached) directions
            phi = az_model.azimuth_from_scores(score.detach(), pooled.detach())
            l_geo = multiview_geometric_loss(phi.view(bsz, n_views), rot_seen)[0].mean()
            l_sym = symmetry_loss(r_ab, r_ba)
            loss = loss + W_GEO * l_geo + W_SYM * l_sym
            terms += [("geo", l_geo), ("sym", l_sym)]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        for k, v in [("loss", loss)] + terms:
            running[k] = running.get(k, 0.0) + float(v.detach())
        if bar is not None:
            bar.update(1)
        last = step + 1 == steps
        if (step + 1) % log_every == 0 or last:
            sign = frozen_sign or resolve_mirror(rot_model, seed, device=dev)
            mon = monitor(rot_model, az_model, val_batch, dev, sign)
            n_acc = (step % log_every) + 1
            entry = {"step": step + 1, **{k: v / n_acc for k, v in running.items()}, **mon, "mirror": sign,
                     "elapsed_s": time.time() - t0}
            running = {}
            history.append(entry)
            msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items())
            emit(msg)
            if bar is not None:
                bar.write(msg)
        if (step + 1) % ckpt_every == 0 or last:
            torch.save({"run": run_id,
                        "rot": rot_model.state_dict(), "az": az_model.state_dict(), "opt": opt.state_dict(),
                        "step": step + 1, "history": json.dumps(history), "torch_rng": torch.get_rng_state()},
                       ckpt_path.with_suffix(".tmp"))
            os.replace(ckpt_path.with_suffix(".tmp"), ckpt_path)
    pool.shutdown()
    if bar is not None:
        bar.close()
    train_s = time.time() - t_train
    sign = frozen_sign or resolve_mirror(rot_model, seed, device=dev)
    rot_model.cpu().eval()
    az_model.cpu().eval()
    summary = {"seed": seed, "steps": steps, "batch": batch, "n_configs": n_configs, "data_seconds": t_data,
               "train_seconds": train_s, "total_seconds": time.time() - t0, "mirror_sign": sign,
               "rotation_model": None if rotation_model is None else str(rotation_model),
               "min_confidence": min_confidence, "w_side": w_side,
               "final": history[-1] if history else {}}
    out = Path(out_dir)
    if frozen_sign is None:
        save_model(out / rotation_name, "slfm_rotation", rot_model, {"output_sign": sign, "training": summary})
    save_model(out / azimuth_name, "slfm_azimuth", az_model, {"training": summary})
    emit(json.dumps(summary))
    if log:
        log.close()
    summary["history"] = history
    return summary
