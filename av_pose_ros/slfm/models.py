"""Small CPU-sized SLfM networks.

* :class:`RotationNet`: a Siamese convolutional encoder applied to both grey views, a local correlation volume
  (every feature of view a against the features of view b within a window of horizontal and vertical displacements),
  and a convolutional decoder that keeps the layout (so it can use the perspective of the flow) -> relative yaw (rad,
  + left from a to b).
* :class:`AzimuthNet`: a convolutional network over the binaural STFT, four channels per time-frequency bin (log
  magnitude left, log magnitude right, cos and sin of the interaural phase, i.e. of the phase of the cross-spectrum),
  pooled over time -> front-folded azimuth (rad, + left) in (-pi/2, pi/2).

Both are plain ``nn.Module``s built from a config dict so they save as state dict + config (weights-only loading).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ROTATION_CONFIG = {
    "width": 128, "height": 96, "channels": [16, 32, 48], "max_dx": 20, "max_dy": 2, "decoder": 32, "hidden": 64,
    "fov_deg": 60.0,
}
DEFAULT_AZIMUTH_CONFIG = {
    "n_fft": 512, "hop": 256, "channels": [16, 32, 48, 64], "hidden": 128, "max_freq_hz": 8000.0,
    "sample_rate": 16000,
}


def _conv(cin, cout, k, stride=1):
    pad = (k[0] // 2, k[1] // 2) if isinstance(k, tuple) else k // 2
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class RotationNet(nn.Module):
    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(DEFAULT_ROTATION_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        c1, c2, c3 = cfg["channels"]
        self.encoder = nn.Sequential(
            _conv(1, c1, 5, 2), _conv(c1, c1, 3), _conv(c1, c2, 3, 2), _conv(c2, c2, 3), nn.Conv2d(c2, c3, 3, padding=1)
        )
        self.max_dx, self.max_dy = int(cfg["max_dx"]), int(cfg["max_dy"])
        dxs = torch.arange(-self.max_dx, self.max_dx + 1, dtype=torch.float32)
        dys = torch.arange(-self.max_dy, self.max_dy + 1, dtype=torch.float32)
        self.register_buffer("disp_x", dxs.repeat(2 * self.max_dy + 1), persistent=False)
        self.register_buffer("disp_y", dys.repeat_interleave(2 * self.max_dx + 1), persistent=False)
        self.log_beta = nn.Parameter(torch.tensor(math.log(10.0)))  # sharpness of the soft-argmax
        d = cfg["decoder"]
        # per position: expected dx, expected dy, peakiness, and the normalised pixel coordinates
        self.decoder = nn.Sequential(_conv(5, d, 3, 2), _conv(d, d, 3, 2), _conv(d, d, 3))
        fh, fw = math.ceil(cfg["height"] / 16), math.ceil(cfg["width"] / 16)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(d * fh * fw, cfg["hidden"]), nn.ReLU(inplace=True),
                                  nn.Linear(cfg["hidden"], 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        # direct path: mean horizontal flow (feature pixels) -> yaw. Its initial sign is random (seeded): the losses
        # cannot tell a solution from its mirror image, which is resolved after training.
        f_feat = (cfg["width"] / 8.0) / math.tan(math.radians(cfg.get("fov_deg", 60.0)) / 2)
        sign = 1.0 if torch.rand(()) < 0.5 else -1.0
        self.flow_gain = nn.Parameter(torch.tensor(sign / f_feat))

    def features(self, grey: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) images in [0, 1] -> L2-normalised (B, C, H/4, W/4) features."""
        x = (grey - 0.5) / 0.25
        return F.normalize(self.encoder(x), dim=1)

    def correlation(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """(B, n_disp, h, w) cosine similarity of fa(y, x) with fb(y + dy, x + dx), dy-major order."""
        b, c, h, w = fa.shape
        nx = 2 * self.max_dx + 1
        pad = F.pad(fb, (self.max_dx, self.max_dx, self.max_dy, self.max_dy))
        idx = (torch.arange(w, device=fa.device).view(w, 1) + torch.arange(nx, device=fa.device).view(1, nx))
        idx = idx.view(1, 1, w, nx).expand(b, h, w, nx)
        out = []
        for dy in range(2 * self.max_dy + 1):
            rows = pad[:, :, dy:dy + h]                            # (B, C, h, W + 2 max_dx)
            full = torch.einsum("bcyx,bcyz->byxz", fa, rows)       # every x of a against every x of b, same row
            out.append(torch.gather(full, 3, idx))                 # keep the band |dx| <= max_dx
        return torch.cat(out, 3).permute(0, 3, 1, 2).contiguous()  # (B, n_dy * n_dx, h, w)

    def flow(self, fa: torch.Tensor, fb: torch.Tensor):
        """Soft-argmax of the correlation volume: expected displacement (dx, dy) and peakiness per position."""
        corr = self.correlation(fa, fb)
        p = torch.softmax(corr * self.log_beta.exp(), dim=1)
        ex = torch.einsum("bdhw,d->bhw", p, self.disp_x)
        ey = torch.einsum("bdhw,d->bhw", p, self.disp_y)
        peak = (p * p).sum(1)
        return ex, ey, peak

    def from_features(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        ex, ey, peak = self.flow(fa, fb)
        b, h, w = ex.shape
        ys = torch.linspace(-1, 1, h, device=ex.device).view(1, h, 1).expand(b, h, w)
        xs = torch.linspace(-1, 1, w, device=ex.device).view(1, 1, w).expand(b, h, w)
        maps = torch.stack([ex / self.max_dx, ey / max(self.max_dy, 1), peak * 10.0, xs, ys], 1)
        weight = peak / peak.sum(dim=(1, 2), keepdim=True)
        mean_dx = (ex * weight).sum(dim=(1, 2))
        return self.flow_gain * mean_dx + self.head(self.decoder(maps)).squeeze(1)

    def forward(self, grey_a: torch.Tensor, grey_b: torch.Tensor) -> torch.Tensor:
        """Relative yaw (rad, + left) from view a to view b; inputs (B, 1, H, W) in [0, 1]."""
        return self.from_features(self.features(grey_a), self.features(grey_b))


def binaural_features(wave: torch.Tensor, n_fft: int, hop: int, max_bin: int | None = None) -> torch.Tensor:
    """(B, 2, n) binaural waveforms -> (B, 4, F, T): log|L|, log|R| (normalised per clip), cos and sin of the
    interaural phase difference."""
    b, ch, n = wave.shape
    win = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave.reshape(b * ch, n), n_fft, hop, window=win, center=True, return_complex=True)
    spec = spec.reshape(b, ch, spec.shape[-2], spec.shape[-1])
    if max_bin is not None:
        spec = spec[:, :, :max_bin]
    mag = spec.abs()
    logmag = torch.log(mag + 1e-6)
    logmag = logmag - logmag.mean(dim=(1, 2, 3), keepdim=True)
    cross = spec[:, 0] * spec[:, 1].conj()
    phase = cross / (cross.abs() + 1e-9)
    return torch.cat([logmag / 4.0, phase.real.unsqueeze(1), phase.imag.unsqueeze(1)], 1)


class AzimuthNet(nn.Module):
    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(DEFAULT_AZIMUTH_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        c1, c2, c3, c4 = cfg["channels"]
        self.n_fft, self.hop = int(cfg["n_fft"]), int(cfg["hop"])
        n_bins = self.n_fft // 2 + 1
        self.max_bin = min(n_bins, int(round(cfg["max_freq_hz"] / cfg["sample_rate"] * self.n_fft)) + 1)
        self.body = nn.Sequential(
            _conv(4, c1, (5, 3), (2, 2)), _conv(c1, c2, (3, 3), (2, 1)), _conv(c2, c3, (3, 3), (2, 2)),
            _conv(c3, c4, (3, 3), (1, 1)),
        )
        f_out = self.max_bin
        for _ in range(3):
            f_out = (f_out - 1) // 2 + 1
        self.head = nn.Sequential(nn.Linear(c4 * f_out, cfg["hidden"]), nn.ReLU(inplace=True),
                                  nn.Linear(cfg["hidden"], 1))

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        z = self.body(feats).mean(dim=3)  # pool over time: the source does not move within a clip
        return (math.pi / 2) * torch.tanh(self.head(z.flatten(1)).squeeze(1))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 2, n) waveforms at the configured rate (row 0 left ear) -> azimuth (rad, + left, front-folded)."""
        return self.forward_features(binaural_features(wave, self.n_fft, self.hop, self.max_bin))


def swap_features(feats: torch.Tensor) -> torch.Tensor:
    """Features of the same clip with the ears swapped (left <-> right magnitudes, interaural phase negated)."""
    return torch.cat([feats[:, 1:2], feats[:, 0:1], feats[:, 2:3], -feats[:, 3:4]], 1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
