"""Learned music front end (BGM mode, after BGM2Pose): band kernels of a music window -> the kernel the lifter eats.

Music is a poor probe in most bands most of the time: a chord excites a few harmonic lines, the treble comes and
goes with the cymbals, and where the music is weak the deconvolution returns mostly noise. Two learned parts make
the continuous kernel look like a chirp kernel of the same scene, so the shipped lifter (trained on chirp kernels)
can use it unchanged:

* **Frequency-wise attention** (``BandAttention``, BGM2Pose's FA): per frame and pair, weights over the B bands of
  ``BandKernels`` from what this window says about each band (music power, deconvolution gain, what the empty-room
  model left unexplained, the band's share of the kernel energy, how peaked its echo envelope is). The weights are
  a softmax times B (mean one) and the fused kernel is ``|sum_b w_b a_b|`` over the bands' analytic signals, so
  equal weights give back the plain continuous kernel exactly; the last layer starts at zero, so does training.
* **Contrastive pose extraction** (``Refiner`` + ``Embedding``, BGM2Pose's CPE): a small residual 1D convolution
  refines each pair's fused kernel, trained to regress the normalised chirp kernel of the same scene and pose, and
  an encoder of the refined kernels gives an embedding trained with a supervised InfoNCE loss: positives are the
  same pose under other music windows, hard negatives the same music window with another pose, plus every other
  frame of the batch. What is kept is then the body, not the music.

Either part can be switched off (``FrontendConfig.use_fa`` / ``use_cpe``) for the ablations. Outputs are
normalised per frame as ``features.normalise_kernels`` does (the lifter normalises anyway). Torch only; no rclpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from av_pose_ros.primitives.model_files import ModelFileError, build, load_model_file, save_model_file

KIND = "music_frontend"
SUMMARY_FEATURES = 2           # per band from its analytic signal: log energy re the frame, peak-to-mean (dB)


class MusicFrontendError(ModelFileError):
    """The music front-end model file is missing, unreadable, of another kind or does not fit its network."""


@dataclass
class FrontendConfig:
    """Architecture of the front end (stored in the model file)."""

    bands: int = 8
    band_features: int = 4
    hidden: int = 32
    use_fa: bool = True
    use_cpe: bool = True
    channels: int = 16
    embed_dim: int = 32

    @classmethod
    def from_dict(cls, data: dict) -> FrontendConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown front-end config keys {sorted(unknown)}")
        return cls(**data)


def normalise(kernels: torch.Tensor) -> torch.Tensor:
    """(N, P, T) divided by each frame's peak over pairs and taps (``features.normalise_kernels``, batched)."""
    peak = kernels.flatten(1).amax(dim=1).clamp_min(1e-12)
    return kernels / peak[:, None, None]


def band_summary(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """(N, P, B, 2) from the bands' analytic signals (N, P, B, T): log energy re the frame's strongest band and
    peak-to-mean ratio of the envelope (dB); a band with a clear echo is peaked, a noise band is flat."""
    env = torch.sqrt(re ** 2 + im ** 2 + 1e-30)
    energy = (env ** 2).sum(-1)
    energy_db = 10 * torch.log10(energy.clamp_min(1e-30))
    energy_db = energy_db - energy_db.flatten(1).amax(1)[:, None, None]
    peak_db = 20 * torch.log10(env.amax(-1).clamp_min(1e-30) / env.mean(-1).clamp_min(1e-30))
    return torch.stack([energy_db, peak_db], dim=-1)


class BandAttention(nn.Module):
    """Per-frame, per-pair weights over bands: an MLP per band with the mean over bands as context."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        width = cfg.band_features + SUMMARY_FEATURES
        self.encode = nn.Sequential(nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden),
                                    nn.ReLU())
        self.score = nn.Sequential(nn.Linear(2 * cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))
        nn.init.zeros_(self.score[-1].weight)
        nn.init.zeros_(self.score[-1].bias)

    def forward(self, features: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        """(N, P, B) weights, mean one over bands. Inputs are scaled from dB to about unit range first."""
        x = torch.cat([features, summary], dim=-1) / 20.0
        h = self.encode(x)
        context = h.mean(dim=2, keepdim=True).expand_as(h)
        logits = self.score(torch.cat([h, context], dim=-1)).squeeze(-1)
        return torch.softmax(logits, dim=-1) * logits.shape[-1]


class Refiner(nn.Module):
    """1D convolution over taps, shared by all pairs, that outputs a gain in (0, 2) per tap: it can suppress what
    looks like music residue and keep what looks like a body echo. A gain (rather than an additive correction
    through a ReLU) cannot die into an all-zero kernel, and it starts at one (the last layer is zero)."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        c = cfg.channels
        self.net = nn.Sequential(nn.Conv1d(1, c, 9, padding=4), nn.ReLU(),
                                 nn.Conv1d(c, c, 9, padding=8, dilation=2), nn.ReLU(),
                                 nn.Conv1d(c, c, 9, padding=16, dilation=4), nn.ReLU(),
                                 nn.Conv1d(c, 1, 9, padding=4))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, kernels: torch.Tensor) -> torch.Tensor:
        n, p, t = kernels.shape
        x = kernels.reshape(n * p, 1, t)
        return (x * 2 * torch.sigmoid(self.net(x))).reshape(n, p, t)


class Embedding(nn.Module):
    """Refined kernels (N, P, T) -> unit embeddings (N, D) for the contrastive loss."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        c = cfg.channels
        self.conv = nn.Sequential(nn.Conv1d(1, c, 15, stride=4, padding=7), nn.ReLU(),
                                  nn.Conv1d(c, c, 9, stride=4, padding=4), nn.ReLU(), nn.AdaptiveMaxPool1d(16))
        self.head = nn.Sequential(nn.Linear(c * 16, 64), nn.ReLU(), nn.Linear(64, cfg.embed_dim))

    def forward(self, kernels: torch.Tensor) -> torch.Tensor:
        n, p, t = kernels.shape
        h = self.conv(kernels.reshape(n * p, 1, t)).reshape(n, p, -1).amax(dim=1)   # max over pairs
        return F.normalize(self.head(h), dim=-1)


class MusicFrontend(nn.Module):
    """Band analytic signals (real, imaginary: N, P, B, T) and band features (N, P, B, F) -> kernels (N, P, T)."""

    def __init__(self, cfg: FrontendConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or FrontendConfig()
        self.attention = BandAttention(cfg) if cfg.use_fa else None
        self.refiner = Refiner(cfg) if cfg.use_cpe else None
        self.embedding = Embedding(cfg) if cfg.use_cpe else None

    def weights(self, re: torch.Tensor, im: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        if self.attention is None:
            return torch.ones(re.shape[:3], dtype=re.dtype, device=re.device)
        return self.attention(features, band_summary(re, im))

    def fuse(self, re: torch.Tensor, im: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        fr, fi = (re * w[..., None]).sum(2), (im * w[..., None]).sum(2)
        return torch.sqrt(fr ** 2 + fi ** 2 + 1e-30)

    def forward(self, re: torch.Tensor, im: torch.Tensor, features: torch.Tensor):
        """(kernels (N, P, T) normalised, band weights (N, P, B), embeddings (N, D) or None)."""
        w = self.weights(re, im, features)
        kernels = normalise(self.fuse(re, im, w))
        embedding = None
        if self.refiner is not None:
            kernels = normalise(self.refiner(kernels))
            embedding = self.embedding(kernels)
        return kernels, w, embedding

    @torch.no_grad()
    def apply(self, analytic: np.ndarray, features: np.ndarray) -> np.ndarray:
        """One frame: ``BandKernels.analytic`` (P, B, T) complex and ``features`` (P, B, F) -> kernel (P, T) float32
        on the lifter's scale (peak one)."""
        analytic = np.asarray(analytic)
        re = torch.from_numpy(np.ascontiguousarray(analytic.real, np.float32))[None]
        im = torch.from_numpy(np.ascontiguousarray(analytic.imag, np.float32))[None]
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32))[None]
        scale = float(np.sqrt((analytic.real.sum(1) ** 2 + analytic.imag.sum(1) ** 2).max())) or 1.0
        re, im = re / scale, im / scale
        return self(re, im, f)[0][0].numpy().astype(np.float32)


def contrastive_loss(embedding: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised InfoNCE: every frame against all others; frames with the same label (same group and pose) are
    positives, all others (the same music window with another pose among them) negatives. Anchors without a
    positive in the batch are skipped."""
    sim = embedding @ embedding.T / temperature
    n = sim.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(eye, -1e9)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    count = positive.sum(1)
    keep = count > 0
    if not torch.any(keep):
        return embedding.sum() * 0.0
    per_anchor = -(log_prob * positive).sum(1)[keep] / count[keep]
    return per_anchor.mean()


def regression_loss(kernels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over frames and pairs of 1 - cosine similarity between each pair's kernel (N, P, T) and its target.

    Shape, not level: the lifter normalises kernels and reads them through the pairs' delay tables, so what must
    match is where each pair's echo energy sits. (A squared error on normalised kernels was tried first and rewards
    an all-zero kernel over a noisy one, which the lifter cannot use.)"""
    cos = F.cosine_similarity(kernels, target, dim=-1, eps=1e-8)
    return (1.0 - cos).mean()


def save(path: str | Path, model: MusicFrontend, metadata: dict | None = None) -> Path:
    return save_model_file(path, KIND, asdict(model.config), model, metadata)


def load(path: str | Path) -> tuple[MusicFrontend, dict]:
    """``(model, metadata)`` from a file written by ``save`` (weights-only load); raises ``MusicFrontendError``."""
    hint = "train one with `av-pose train-music-frontend` or use the shipped models/music_frontend.pt"
    found = load_model_file(path, KIND, error=MusicFrontendError, hint=hint)
    model = build(found, lambda cfg: MusicFrontend(FrontendConfig.from_dict(cfg)), error=MusicFrontendError)
    return model, found.metadata


def load_for_pipeline(path: str | Path | None) -> tuple[MusicFrontend | None, str | None]:
    """``(model, None)``, or ``(None, why)`` when ``path`` is set but unusable (the kernel stage then publishes the
    plain continuous kernel and reports why); ``(None, None)`` when ``path`` is empty (switched off)."""
    if not path:
        return None, None
    try:
        model, _ = load(path)
    except MusicFrontendError as err:
        return None, str(err)
    return model, None


def apply_to_frame(model: MusicFrontend, kernels: np.ndarray, bands) -> np.ndarray:
    """The front end's kernel for one extractor frame (``PoseKernelFrame.kernels`` and ``.bands``), at the plain
    kernel's peak level (consumers normalise, but RViz and logs show absolute levels)."""
    peak = float(np.max(kernels)) if kernels.size else 0.0
    return (model.apply(bands.analytic, bands.features) * peak).astype(np.float32)
