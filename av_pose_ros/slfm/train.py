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
from dataclasses import dataclass
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


@dataclass(kw_only=True)
class SlfmTrainConfig:
    """Everything ``train_slfm`` needs (``av-pose train-slfm`` maps its flags onto these; the rest are for tests and
    experiments).

    ``cache_dir`` holds the generated audio (created on first use, deterministic in ``seed``) and the checkpoint
    ``train_ckpt_s<seed>.pt``; with ``resume`` a run continues from it when the settings and architectures match.
    With ``rotation_model`` (a trained ``slfm_rotation.pt``) only the audio model is trained: the head turns between
    the views come from that frozen model's predictions on the rendered picture pairs, and no rotation file is
    written. In joint training the audio losses start after ``audio_start`` of the steps.
    """

    out_dir: str | Path = "models"
    cache_dir: str | Path = "data_cache/slfm"
    steps: int = 1800
    batch: int = 10                       # room configurations (4 head yaws each) per step
    seed: int = 0
    n_configs: int = 6000                 # simulated configurations; the last n_val are held back for monitoring
    n_val: int = 200
    n_procedural: int = 300               # procedural indoor scenes for image pairs
    lr: float = 1e-3
    device: str = "auto"
    resume: bool = True
    threads: int | None = None            # torch CPU threads
    rotation_config: dict | None = None   # RotationNet / AzimuthNet settings over their defaults
    azimuth_config: dict | None = None
    ckpt_every: int = 200
    log_every: int = 100
    progress: bool = True
    clip_seconds: float = 1.0
    n_speech: int = 240                   # speech clips among the sources
    max_turn_deg: float = 30.0
    rotation_name: str = "slfm_rotation.pt"
    azimuth_name: str = "slfm_azimuth.pt"
    log_file: str | Path | None = None    # monitoring lines are appended here
    rotation_model: str | Path | None = None
    min_confidence: float = 0.0
    w_side: float = W_SIDE
    audio_start: float = 0.5


@dataclass
class _Models:
    """The two networks, the optimiser over what learns, and the frozen rotation model's sign (None: joint)."""

    rot: RotationNet
    az: AzimuthNet
    params: list
    opt: torch.optim.Optimizer
    frozen_sign: float | None


def _build_models(cfg: SlfmTrainConfig, dev) -> _Models:
    frozen_sign = None
    if cfg.rotation_model is not None:  # audio only: turns from a trained, frozen rotation model
        from .estimators import RotationEstimator

        est = RotationEstimator.load(cfg.rotation_model, device=dev)
        rot_model, frozen_sign = est.model, float(est.output_sign)
        for prm in rot_model.parameters():
            prm.requires_grad_(False)
    else:
        rot_model = RotationNet(cfg.rotation_config).to(dev)
    az_model = AzimuthNet(cfg.azimuth_config).to(dev)
    params = list(az_model.parameters()) + ([] if frozen_sign is not None else list(rot_model.parameters()))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    return _Models(rot_model, az_model, params, opt, frozen_sign)


def _run_id(cfg: SlfmTrainConfig, m: _Models) -> str:
    """What a checkpoint must match to be continued: the settings that shape training and both architectures."""
    return json.dumps([cfg.steps, cfg.batch, cfg.seed, cfg.n_configs, cfg.lr, m.rot.config, m.az.config,
                       cfg.rotation_model, cfg.min_confidence, cfg.w_side, cfg.audio_start,
                       [(k, list(v.shape)) for net in (m.rot, m.az) for k, v in net.state_dict().items()]])


def _resume(ckpt_path: Path, run_id: str, m: _Models, dev) -> tuple[int, list]:
    """(first step, history) from a matching checkpoint, else (0, [])."""
    if not ckpt_path.exists():
        return 0, []
    ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
    if ck.get("run") != run_id:
        return 0, []
    if m.frozen_sign is None:
        m.rot.load_state_dict(ck["rot"])
    m.az.load_state_dict(ck["az"])
    m.opt.load_state_dict(ck["opt"])
    torch.set_rng_state(ck["torch_rng"])
    return int(ck["step"]), json.loads(ck["history"])


def _save_checkpoint(ckpt_path: Path, run_id: str, m: _Models, step: int, history: list) -> None:
    torch.save({"run": run_id, "rot": m.rot.state_dict(), "az": m.az.state_dict(), "opt": m.opt.state_dict(),
                "step": step, "history": json.dumps(history), "torch_rng": torch.get_rng_state()},
               ckpt_path.with_suffix(".tmp"))
    os.replace(ckpt_path.with_suffix(".tmp"), ckpt_path)


def _validation_batch(cfg: SlfmTrainConfig, val_audio: AudioPairSet, rot_config: dict):
    """A fixed monitoring batch from the held-back configurations: clips, turns, azimuths and picture pairs."""
    rng = np.random.default_rng([cfg.seed, 555])
    pairs, bsz = val_audio.pairs, 128
    idx = rng.integers(cfg.n_configs - cfg.n_val, cfg.n_configs, size=bsz)
    a = np.empty((bsz, 2, val_audio.n), np.float32)
    b = np.empty_like(a)
    turn, az = np.empty(bsz), np.empty((bsz, 2))
    for m, i in enumerate(idx):
        j, k = pairs[i][int(rng.integers(0, len(pairs[i])))]
        a[m], b[m] = val_audio.audio[i, j], val_audio.audio[i, k]
        turn[m] = val_audio.turns[i, k] - val_audio.turns[i, j]
        az[m] = val_audio.azimuth[i, j], val_audio.azimuth[i, k]
    images = ImageBank([], n_procedural=20, seed=cfg.seed + 1)
    ia, ib = zip(*[sample_pair(images.draw(rng), float(t), rng, rot_config["width"], rot_config["height"])
                   for t in turn])
    return a, b, turn, az, list(ia), list(ib)


def _step_loss(cfg: SlfmTrainConfig, m: _Models, made, step: int, dev):
    """The loss of one batch and its named terms (see the module docstring for what each is)."""
    clips, turns, az, ia, ib = made
    bsz, n_views = clips.shape[:2]
    wave = torch.from_numpy(clips.reshape(bsz * n_views, 2, -1)).to(dev)
    labels = iid_labels(wave.cpu()).to(dev)
    feats = binaural_features(wave, m.az.n_fft, m.az.hop, m.az.max_bin)
    # ears swapped on half of the configurations (all views): the mirrored scene, turns negated
    swap = torch.from_numpy(np.random.default_rng([cfg.seed, step, 7]).random(bsz) < 0.5).to(dev)
    swap_v = swap.repeat_interleave(n_views)
    feats = torch.where(swap_v.view(-1, 1, 1, 1), swap_features(feats), feats)
    labels = torch.where(swap_v, 1.0 - labels, labels)
    n_pairs = len(ia)
    with torch.set_grad_enabled(m.frozen_sign is None):
        f = m.rot.features(grey_batch(ia + ib, dev))
        fa, fb = f[:n_pairs], f[n_pairs:]
        rot_both = m.rot.from_features(torch.cat([fa, fb]), torch.cat([fb, fa]))
    r_ab, r_ba = rot_both[:n_pairs], rot_both[n_pairs:]
    rot = torch.cat([torch.zeros(bsz, 1, device=dev), (0.5 * (r_ab - r_ba)).view(bsz, n_views - 1)], 1)
    rot_seen = torch.where(swap.view(-1, 1), -rot, rot)
    score, pooled = m.az.lag_scores(feats)
    logp = m.az.lag_log_probs(score)
    l_delay, _, conf = multiview_delay_loss(logp.view(bsz, n_views, -1), rot_seen.detach(), m.az.lags,
                                            m.az.itd_of_azimuth, min_confidence=cfg.min_confidence)
    l_delay = l_delay.mean()
    l_side = side_loss(logp, m.az.lags, labels)
    # joint training: the audio model waits until the rotation model has learned from its (initial) directions;
    # before that the turns are noise and would teach it wrong delays
    w_audio = 1.0 if m.frozen_sign is not None or step >= cfg.audio_start * cfg.steps else 0.0
    loss = w_audio * (W_DELAY * l_delay + cfg.w_side * l_side)
    terms = [("delay", l_delay), ("side", l_side), ("conf", conf.mean())]
    if m.frozen_sign is None:  # the rotation model learns from the audio model's (detached) directions
        phi = m.az.azimuth_from_scores(score.detach(), pooled.detach())
        l_geo = multiview_geometric_loss(phi.view(bsz, n_views), rot_seen)[0].mean()
        l_sym = symmetry_loss(r_ab, r_ba)
        loss = loss + W_GEO * l_geo + W_SYM * l_sym
        terms += [("geo", l_geo), ("sym", l_sym)]
    return loss, terms


class _Log:
    """Monitoring lines to ``log_file`` (if any) and above the progress bar (if any)."""

    def __init__(self, cfg: SlfmTrainConfig, start: int):
        self.file = open(cfg.log_file, "a") if cfg.log_file else None
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=cfg.steps, initial=start, desc="train-slfm", disable=not cfg.progress,
                            mininterval=10.0)
        except ImportError:  # pragma: no cover
            self.bar = None

    def emit(self, msg: str, on_bar: bool = False) -> None:
        if self.file:
            self.file.write(msg + "\n")
            self.file.flush()
        if on_bar and self.bar is not None:
            self.bar.write(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file:
            self.file.close()


def train_slfm(config: SlfmTrainConfig) -> dict:
    """Train both models without labels and write ``out_dir/<rotation_name>`` and ``out_dir/<azimuth_name>``
    (no rotation file when ``rotation_model`` is given). Returns a summary dict with the monitoring history."""
    cfg = config
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    dev = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    cache = Path(cfg.cache_dir)
    audio_dir = cache / f"audio_n{cfg.n_configs}_s{cfg.seed}_c{cfg.clip_seconds:g}"
    generate_audio_dataset(audio_dir, cfg.n_configs, seed=cfg.seed, clip_seconds=cfg.clip_seconds,
                           n_speech=cfg.n_speech, max_turn_deg=cfg.max_turn_deg, progress=cfg.progress)
    t_data = time.time() - t0
    audio = AudioPairSet(audio_dir, max_pair_turn_deg=cfg.max_turn_deg, limit=cfg.n_configs - cfg.n_val)
    val_audio = AudioPairSet(audio_dir, max_pair_turn_deg=cfg.max_turn_deg)  # validation: the held-back tail only
    images = ImageBank(load_real_photos("train"), n_procedural=cfg.n_procedural, seed=cfg.seed)
    m = _build_models(cfg, dev)
    maker = BatchMaker(audio, images, m.rot.config, cfg.batch, cfg.seed)
    ckpt_path = cache / f"train_ckpt_s{cfg.seed}.pt"
    run_id = _run_id(cfg, m)
    start, history = _resume(ckpt_path, run_id, m, dev) if cfg.resume else (0, [])
    val_batch = _validation_batch(cfg, val_audio, m.rot.config)
    log = _Log(cfg, start)

    def sign_now() -> float:
        return m.frozen_sign or resolve_mirror(m.rot, cfg.seed, device=dev)

    if start == 0 and not history:  # the untrained models, for comparison (monitoring only)
        sign0 = sign_now()
        history.append({"step": 0, **monitor(m.rot, m.az, val_batch, dev, sign0), "mirror": sign0,
                        "elapsed_s": time.time() - t0})
        log.emit(json.dumps(history[-1]))
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(maker.make, start) if start < cfg.steps else None
    m.rot.train(m.frozen_sign is None)
    m.az.train()
    running = {}
    t_train = time.time()
    for step in range(start, cfg.steps):
        made = future.result()
        future = pool.submit(maker.make, step + 1) if step + 1 < cfg.steps else None
        for g in m.opt.param_groups:
            g["lr"] = _lr(step, cfg.steps, cfg.lr)
        loss, terms = _step_loss(cfg, m, made, step, dev)
        m.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.params, 5.0)
        m.opt.step()
        for k, v in [("loss", loss)] + terms:
            running[k] = running.get(k, 0.0) + float(v.detach())
        if log.bar is not None:
            log.bar.update(1)
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.log_every == 0 or last:
            sign = sign_now()
            n_acc = (step % cfg.log_every) + 1
            history.append({"step": step + 1, **{k: v / n_acc for k, v in running.items()},
                            **monitor(m.rot, m.az, val_batch, dev, sign), "mirror": sign,
                            "elapsed_s": time.time() - t0})
            running = {}
            log.emit(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in history[-1].items()),
                     on_bar=True)
        if (step + 1) % cfg.ckpt_every == 0 or last:
            _save_checkpoint(ckpt_path, run_id, m, step + 1, history)
    pool.shutdown()
    summary = _finish(cfg, m, sign_now(), history, {"data_seconds": t_data, "train_seconds": time.time() - t_train,
                                                    "total_seconds": time.time() - t0})
    log.emit(json.dumps(summary))
    log.close()
    summary["history"] = history
    return summary


def _finish(cfg: SlfmTrainConfig, m: _Models, sign: float, history: list, seconds: dict) -> dict:
    """Write the model files (the rotation file carries the mirror sign) and return the run's summary."""
    m.rot.cpu().eval()
    m.az.cpu().eval()
    summary = {"seed": cfg.seed, "steps": cfg.steps, "batch": cfg.batch, "n_configs": cfg.n_configs, **seconds,
               "mirror_sign": sign, "rotation_model": None if cfg.rotation_model is None else str(cfg.rotation_model),
               "min_confidence": cfg.min_confidence, "w_side": cfg.w_side, "final": history[-1] if history else {}}
    out = Path(cfg.out_dir)
    if m.frozen_sign is None:
        save_model(out / cfg.rotation_name, "slfm_rotation", m.rot, {"output_sign": sign, "training": summary})
    save_model(out / cfg.azimuth_name, "slfm_azimuth", m.az, {"training": summary})
    return summary
