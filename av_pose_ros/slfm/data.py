"""Cached binaural training data and the pairing with rotated image views.

One *configuration* is a room, a fixed source and a head position; the head is recorded at ``views`` yaws: view 0
at the base yaw and the others turned by ``delta_v`` in [-max_turn, max_turn]. Clips are stored as float16 in a
memory-mapped array ``audio.f16`` of shape (N, V, 2, n) with ``meta.npz`` beside it (turns, RT60, true azimuths:
the labels are kept for evaluation only and never reach a training loss).

Image views are rendered on the fly for the same turn, so audio and images of one training example always share one
rotation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .constants import SAMPLE_RATE
from .rooms import RT60_LEVELS, fold_front, render_view, sample_room
from .sources import SourceBank, speech_corpus

_FORMAT = 2


def _config_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), 17])


def simulate_config(index: int, seed: int, bank: SourceBank, views: int = 4, clip_seconds: float = 1.0,
                    max_turn_deg: float = 30.0, rt60_range=(0.15, 0.8), snr_db_range=(20.0, 40.0),
                    kind: str | None = None, front_only: bool = False, head=None):
    """Simulate one configuration. Returns (clips (V, 2, n) float32, turns (V,), azimuths (V,), rt60, kind).
    ``head``: a ``slfm.heads`` model (default: the spherical training head)."""
    rng = _config_rng(seed, index)
    n = int(round(clip_seconds * SAMPLE_RATE))
    for _ in range(100):
        cfg = sample_room(rng, rt60_range=rt60_range)
        turns = np.zeros(views)
        turns[1:] = np.deg2rad(rng.uniform(-max_turn_deg, max_turn_deg, size=views - 1))
        az = np.array([cfg.azimuth(cfg.base_yaw + t) for t in turns])
        if not front_only or np.all(np.abs(az) <= np.pi / 2):
            break
    clips = np.zeros((views, 2, n), np.float32)
    src_kind = kind
    for v in range(views):
        rir_len = int(SAMPLE_RATE * 0.7)
        sig, src_kind = bank.draw(n + rir_len, rng, kind=src_kind)
        clips[v] = _render_exact(cfg, cfg.base_yaw + turns[v], sig, rng, n, snr_db_range, head)
    return clips, turns, az, cfg.rt60, src_kind


def _render_exact(cfg, yaw, sig, rng, n, snr_db_range, head=None):
    out = render_view(cfg, yaw, sig, rng, snr_db=float(rng.uniform(*snr_db_range)), head=head)
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    return out[:, :n]


def generate_audio_dataset(cache_dir, n_configs: int, seed: int = 0, views: int = 4, clip_seconds: float = 1.0,
                           max_turn_deg: float = 30.0, rt60_range=(0.15, 0.8), n_speech: int = 240,
                           progress: bool = True) -> Path:
    """Create (or finish) the cached training set under ``cache_dir``; resumable, deterministic per index."""
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    n = int(round(clip_seconds * SAMPLE_RATE))
    spec = {"format": _FORMAT, "n_configs": n_configs, "seed": seed, "views": views, "n": n,
            "max_turn_deg": max_turn_deg, "rt60_range": list(rt60_range), "n_speech": n_speech}
    spec_path = root / "spec.json"
    if spec_path.exists() and json.loads(spec_path.read_text()) != spec:
        raise ValueError(f"{root} holds a different dataset ({spec_path}); use another directory")
    spec_path.write_text(json.dumps(spec))
    meta_path = root / "meta.npz"
    done_path = root / "done.npy"
    shape = (n_configs, views, 2, n)
    audio_path = root / "audio.f16"
    mode = "r+" if audio_path.exists() else "w+"
    audio = np.memmap(audio_path, dtype=np.float16, mode=mode, shape=shape)
    if meta_path.exists() and done_path.exists():
        with np.load(meta_path) as z:
            turns, az, rt60, kinds = z["turns"], z["azimuth"], z["rt60"], z["kind"]
        done = np.load(done_path)
    else:
        turns = np.zeros((n_configs, views))
        az = np.zeros((n_configs, views))
        rt60 = np.zeros(n_configs)
        kinds = np.zeros(n_configs, np.int8)
        done = np.zeros(n_configs, bool)
    todo = np.flatnonzero(~done)
    if todo.size == 0:
        return root
    speech = speech_corpus(root.parent, count=n_speech, seed=seed, split="train") if n_speech > 0 else None
    bank = SourceBank(speech)
    names = ["speech", "music", "noise"]
    try:
        from tqdm import tqdm
        it = tqdm(todo, desc="slfm audio", disable=not progress, mininterval=5.0)
    except ImportError:  # pragma: no cover
        it = todo
    last = time.time()
    for count, i in enumerate(it):
        clips, t, a, r, k = simulate_config(int(i), seed, bank, views, clip_seconds, max_turn_deg, rt60_range)
        audio[i] = clips.astype(np.float16)
        turns[i], az[i], rt60[i], kinds[i] = t, a, r, names.index(k)
        done[i] = True
        if time.time() - last > 30 or count == todo.size - 1:
            audio.flush()
            np.savez(meta_path, turns=turns, azimuth=az, rt60=rt60, kind=kinds)
            np.save(done_path, done)
            last = time.time()
    return root


class AudioPairSet:
    """Reads the cached clips; draws whole configurations (all views) or pairs of views whose relative turn is within
    ``max_pair_turn``."""

    def __init__(self, cache_dir, max_pair_turn_deg: float = 30.0, limit: int | None = None):
        root = Path(cache_dir)
        spec = json.loads((root / "spec.json").read_text())
        done = np.load(root / "done.npy")
        if not done.all():
            raise ValueError(f"audio cache {root} is incomplete ({done.sum()}/{done.size}); generate it first")
        self.views, self.n = spec["views"], spec["n"]
        self.audio = np.memmap(root / "audio.f16", dtype=np.float16, mode="r",
                               shape=(spec["n_configs"], self.views, 2, self.n))
        with np.load(root / "meta.npz") as z:
            self.turns, self.azimuth, self.rt60, self.kind = z["turns"], z["azimuth"], z["rt60"], z["kind"]
        self.size = spec["n_configs"] if limit is None else min(limit, spec["n_configs"])
        lim = np.deg2rad(max_pair_turn_deg) + 1e-9
        self.pairs = [[(j, k) for j in range(self.views) for k in range(self.views)
                       if j != k and abs(self.turns[i, k] - self.turns[i, j]) <= lim] for i in range(self.size)]

    def sample_configs(self, rng: np.random.Generator, batch: int, lo: int = 0, hi: int | None = None):
        """All views of ``batch`` configurations drawn from [lo, hi): clips (B, V, 2, n) float32, the head turns
        (B, V) from view 0 (rad, + left; used only to render the matching images and for monitoring) and the true
        azimuths (B, V) (monitoring only)."""
        idx = np.sort(rng.integers(lo, self.size if hi is None else hi, size=batch))
        clips = np.asarray(self.audio[idx], dtype=np.float32)
        return clips, self.turns[idx].copy(), self.azimuth[idx].copy()

    def sample(self, rng: np.random.Generator, batch: int):
        """Returns audio_a, audio_b (B, 2, n) float32, the relative head turn (B,) from a to b (rad, + left; used only
        to render the matching image pair and for monitoring), and the true azimuths (B, 2) (monitoring only)."""
        idx = rng.integers(0, self.size, size=batch)
        a = np.empty((batch, 2, self.n), np.float32)
        b = np.empty((batch, 2, self.n), np.float32)
        turn = np.empty(batch)
        az = np.empty((batch, 2))
        for m, i in enumerate(idx):
            j, k = self.pairs[i][int(rng.integers(0, len(self.pairs[i])))]
            a[m] = self.audio[i, j]
            b[m] = self.audio[i, k]
            turn[m] = self.turns[i, k] - self.turns[i, j]
            az[m] = self.azimuth[i, j], self.azimuth[i, k]
        return a, b, turn, az


def eval_audio_set(n: int, seed: int, level: str, views: int = 1, clip_seconds: float = 1.0, cache_dir=None,
                   kind: str | None = None, head=None):
    """Held-out evaluation clips for one reverberation level: sources within +-90 deg of the front, held-out speech
    voices, heard by ``head`` (default the spherical training head; the same rooms, sources and signals for every
    head). Returns (clips (n, 2, samples), true azimuth (n,), rt60 (n,), kinds list)."""
    speech = speech_corpus(cache_dir, count=60, seed=seed, split="eval") if cache_dir is not None else None
    bank = SourceBank(speech)
    out, az, rt, kinds = [], [], [], []
    base = 1_000_000 + 100_000 * list(RT60_LEVELS).index(level)
    for i in range(n):
        clips, _, a, r, k = simulate_config(base + i, seed, bank, views=1, clip_seconds=clip_seconds,
                                            rt60_range=RT60_LEVELS[level], kind=kind, front_only=True, head=head)
        out.append(clips[0])
        az.append(a[0])
        rt.append(r)
        kinds.append(k)
    return np.stack(out), np.asarray(az), np.asarray(rt), kinds


__all__ = ["generate_audio_dataset", "AudioPairSet", "eval_audio_set", "simulate_config", "fold_front"]
