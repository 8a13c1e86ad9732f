"""The audio-visual 3D CNN: ray and pose-kernel encodings on the fine grid -> one 3D heatmap per joint.

Layout (after the convolutional pose machine, sized for a CPU):

* audio branch: a small 2x2x2 stride-2 convolution shared by every (speaker, mic) pair turns each pair's encoding into
  features; the pairs are then fused by a max over pairs (as in PoseKernelLifter) or by a learned attention
  (softmax over pairs of a per-voxel score), so any pair count works;
* stem: the 17 ray encodings (2x2x2 stride-2 convolution, like the audio branch) and the fused audio features,
  joined by a 3x3x3 convolution at half resolution;
* stages: stage 1 maps the stem features to heatmaps; every later stage sees the stem features and the previous
  stage's heatmaps, with dilated 3x3x3 convolutions so the receptive field grows stage by stage; every stage's
  heatmaps are supervised (intermediate supervision);
* soft-argmax over each heatmap gives sub-voxel metric joints in the grid's frame, and the heatmap's spread a
  confidence.

``use_audio=False`` builds the learned vision-only baseline: the same network without the audio branch (the stem
sees the ray features alone), trained by the same recipe; it tells what sound buys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

FUSIONS = ("max", "attention")


@dataclass
class NetConfig:
    joints: int = 17
    grid_n: int = 24            # input voxels per side (encodings); heatmaps have grid_n / 2
    grid_size_m: float = 2.4    # side of the person-centred cube
    width: int = 24
    audio_channels: int = 8
    stages: int = 3
    dilations: tuple[int, ...] = field(default=(1, 2, 3))
    fusion: str = "max"
    confidence_scale_m: float = 0.15   # confidence = exp(-rms spread / scale)
    use_audio: bool = True             # False: the learned vision-only baseline (no audio branch)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "dilations" in known:
            known["dilations"] = tuple(int(x) for x in known["dilations"])
        cfg = cls(**known)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.grid_n % 2 or self.grid_n < 8:
            raise ValueError(f"grid_n must be even and >= 8, got {self.grid_n}")
        if len(self.dilations) < self.stages:
            raise ValueError("one dilation per stage is needed")


def _conv(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    groups = 4 if cout % 4 == 0 else 1
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
                         nn.GroupNorm(groups, cout), nn.ReLU(inplace=True))


def soft_argmax(logits: torch.Tensor, axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected position and RMS spread of softmax(logits) over a cubic grid.

    ``logits`` (B, J, n, n, n); ``axis`` (n,) voxel-centre coordinates along each axis (the same for x, y, z, in C
    order: dim 2 is x). Returns (B, J, 3) coordinates and (B, J) spreads, in the units of ``axis``.
    """
    b, j, n = logits.shape[:3]
    prob = torch.softmax(logits.reshape(b, j, -1), dim=-1).reshape(b, j, n, n, n)
    px, py, pz = prob.sum(dim=(3, 4)), prob.sum(dim=(2, 4)), prob.sum(dim=(2, 3))
    mean = torch.stack([px @ axis, py @ axis, pz @ axis], dim=-1)
    second = torch.stack([px @ axis ** 2, py @ axis ** 2, pz @ axis ** 2], dim=-1)
    spread = torch.sqrt(torch.clamp(second - mean ** 2, min=0).sum(-1) + 1e-12)
    return mean, spread


class LifterNet(nn.Module):
    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = cfg = config or NetConfig()
        cfg.validate()
        a, w = cfg.audio_channels, cfg.width
        # 2x2x2 stride-2 convolutions: a learned, lossless space-to-depth to the half-resolution working grid
        if not cfg.use_audio:
            a = 0
        else:
            self.audio = nn.Sequential(nn.Conv3d(1, a, 2, stride=2), nn.ReLU(inplace=True),
                                       nn.Conv3d(a, a, 1), nn.ReLU(inplace=True))
            if cfg.fusion == "attention":
                self.pair_score = nn.Conv3d(a, 1, 1)
        self.rays = nn.Sequential(nn.Conv3d(cfg.joints, w, 2, stride=2), nn.ReLU(inplace=True))
        self.stem = _conv(w + a, w)
        self.stages = nn.ModuleList()
        for s in range(cfg.stages):
            d = cfg.dilations[s]
            cin = w if s == 0 else w + cfg.joints
            self.stages.append(nn.Sequential(_conv(cin, w, d), _conv(w, w, d), nn.Conv3d(w, cfg.joints, 1)))
        n = cfg.grid_n // 2
        axis = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * (cfg.grid_size_m / n)
        self.register_buffer("axis", axis, persistent=False)

    def fuse_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, P, n, n, n) pair encodings -> (B, A, n, n, n) fused features."""
        b, p = audio.shape[:2]
        feats = self.audio(audio.reshape(b * p, 1, *audio.shape[2:]))
        feats = feats.reshape(b, p, *feats.shape[1:])
        if self.config.fusion == "max":
            return feats.max(dim=1).values
        score = self.pair_score(feats.reshape(b * p, *feats.shape[2:])).reshape(b, p, 1, *feats.shape[3:])
        return (torch.softmax(score, dim=1) * feats).sum(dim=1)

    def forward(self, rays: torch.Tensor, audio: torch.Tensor | None = None,
                stages: int | None = None) -> list[torch.Tensor]:
        """Heatmap logits (B, J, n/2, n/2, n/2) of every stage, last stage last (``audio`` ignored without an
        audio branch); ``stages``: stop after that many."""
        feats = [self.rays(rays)]
        if self.config.use_audio:
            feats.append(self.fuse_audio(audio))
        x = self.stem(torch.cat(feats, dim=1))
        outs = []
        for s, stage in enumerate(self.stages[:stages]):
            outs.append(stage(x if s == 0 else torch.cat([x, outs[-1]], dim=1)))
        return outs

    def locate(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, J, 3) grid-frame joints (m) and (B, J) confidences from one stage's logits."""
        mean, spread = soft_argmax(logits, self.axis)
        return mean, torch.exp(-spread / self.config.confidence_scale_m)


def stage_losses(net: LifterNet, outs: list[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
    """Mean joint L1 distance (m) of every stage's soft-argmax to the grid-frame target (B, J, 3)."""
    return [F.l1_loss(net.locate(o)[0], target) for o in outs]
