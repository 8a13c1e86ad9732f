"""Small CPU-sized SLfM networks.

* :class:`RotationNet`: a Siamese convolutional encoder applied to both grey views, a local correlation volume
  (every feature of view a against the features of view b within a window of horizontal and vertical displacements),
  and a convolutional decoder that keeps the layout (so it can use the perspective of the flow) -> relative yaw (rad,
  + left from a to b).
* :class:`AzimuthNet`: the binaural STFT, four channels per time-frequency bin (log magnitude left, log magnitude
  right, cos and sin of the interaural phase, i.e. of the phase of the cross-spectrum); learned weights for every
  time-frequency bin (onset-based) and frame feed a weighted GCC-PHAT over a fine lag grid whose peak, through the
  spherical-head ITD model, gives the front-folded azimuth (rad, + left) in [-pi/2, pi/2].

Both are plain ``nn.Module``s built from a config dict so they save as state dict + config (weights-only loading).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ROTATION_CONFIG = {
    "width": 128, "height": 96, "channels": [16, 32, 48], "max_dx": 18, "max_dy": 1, "fov_deg": 60.0,
    "yaw_range_deg": 34.0, "yaw_step_deg": 0.5, "window": 4, "sharpness": 20.0,
}
DEFAULT_AZIMUTH_CONFIG = {
    "n_fft": 512, "hop": 256, "hidden": 128, "max_freq_hz": 8000.0, "sample_rate": 16000,
    "max_lag_ms": 0.8, "n_lags": 33, "bands_hz": [1000.0, 2500.0, 5000.0], "n_level_bands": 12,
    "n_readout_lags": 81, "head_radius": 0.0875, "speed_of_sound": 343.0, "max_correction_deg": 0.0,
    "onset_power": 2.0, "onset_eps": 0.01, "tf_channels": 8, "lag_prior_scales_ms": [0.05, 0.15, 0.4],
    "init_temperature": 0.1,
}


def _conv(cin, cout, k, stride=1):
    pad = (k[0] // 2, k[1] // 2) if isinstance(k, tuple) else k // 2
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class RotationNet(nn.Module):
    """Siamese encoder + correlation volume + a differentiable sweep over candidate yaws.

    For every candidate yaw the pinhole model of the known field of view predicts where each feature of view a must
    appear in view b; the correlation volume is sampled there (bilinear in dx, dy) and averaged over the positions
    that stay in view, with learned per-position weights. The yaw is a soft-argmax over the candidates in a window
    around the best one. The magnitude of the answer therefore comes from the camera geometry, while everything
    that decides which yaw wins (the features, the weights) is learned from the self-supervised losses. The sign
    convention of the sweep is drawn at random at construction: the losses cannot tell a solution from its mirror
    image, and that global ambiguity is resolved after training (``output_sign`` in the model file)."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(DEFAULT_ROTATION_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        c1, c2, c3 = cfg["channels"]
        self.encoder = nn.Sequential(
            _conv(1, c1, 5, 2), _conv(c1, c1, 3), _conv(c1, c2, 3, 2), _conv(c2, c2, 3),
            nn.Conv2d(c2, c3, 3, padding=1, padding_mode="replicate"),
        )
        for m in self.encoder.modules():
            if isinstance(m, nn.Conv2d):
                m.padding_mode = "replicate"  # zero padding would make the borders match at zero displacement
        self.weight_head = nn.Conv2d(c3, 1, 1)
        nn.init.zeros_(self.weight_head.weight)
        nn.init.zeros_(self.weight_head.bias)
        self.max_dx, self.max_dy = int(cfg["max_dx"]), int(cfg["max_dy"])
        step = float(cfg["yaw_step_deg"])
        n = int(round(cfg["yaw_range_deg"] / step))
        self.register_buffer("yaws", torch.deg2rad(torch.arange(-n, n + 1, dtype=torch.float32) * step),
                             persistent=False)
        self.register_buffer("readout_sign", torch.tensor(1.0 if torch.rand(()) < 0.5 else -1.0))
        self._grids = {}

    # ------------------------------------------------------------------------------------------------ pieces
    def features(self, grey: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) images in [0, 1] -> L2-normalised (B, C, H/4, W/4) features."""
        x = (grey - 0.5) / 0.25
        return F.normalize(self.encoder(x), dim=1)

    def correlation(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """(B, n_dy * n_dx, h, w) cosine similarity of fa(y, x) with fb(y + dy, x + dx), dy-major order."""
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

    def _sweep_matrix(self, h: int, w: int, device):
        """Sparse (h*w*J, h*w*n_disp) bilinear sampling of the correlation volume at the displacement each candidate
        yaw predicts for each position, and the validity mask (h*w, J) of those predictions."""
        key = (h, w, str(device))
        if key not in self._grids:
            stride = self.config["width"] / w
            f = (self.config["width"] / 2) / math.tan(math.radians(self.config["fov_deg"]) / 2) / stride
            cx = ((self.config["width"] - 1) / 2) / stride  # feature j sits on image pixel stride * j
            cy = ((self.config["height"] - 1) / 2) / stride
            th = self.yaws.to("cpu").double().view(-1, 1, 1)
            xs = (torch.arange(w, dtype=torch.float64) - cx).view(1, 1, w)
            ys = (torch.arange(h, dtype=torch.float64) - cy).view(1, h, 1)
            den = f * torch.cos(th) - xs * torch.sin(th)
            xp = f * (xs * torch.cos(th) + f * torch.sin(th)) / den   # where a point of view a lands in view b
            yp = ys * f / den
            dx = (xp - xs).expand(-1, h, w)
            dy = (yp - ys).expand(-1, h, w)
            inner = (xs.abs() <= cx - 1.5) & (ys.abs() <= cy - 1.5)  # borders carry padding artefacts
            valid = (den > 0) & (xp.abs() <= cx - 1.5) & (dx.abs() <= self.max_dx) & (dy.abs() <= self.max_dy)
            valid = (valid & inner).permute(1, 2, 0).reshape(h * w, -1)  # (P, J)
            ndx, ndy = 2 * self.max_dx + 1, 2 * self.max_dy + 1
            dxp = dx.permute(1, 2, 0).reshape(h * w, -1) + self.max_dx   # in displacement-grid units
            dyp = dy.permute(1, 2, 0).reshape(h * w, -1) + self.max_dy
            p_idx, j_idx = torch.nonzero(valid, as_tuple=True)
            gx, gy = dxp[p_idx, j_idx], dyp[p_idx, j_idx]
            x0 = gx.floor().clamp(0, ndx - 2)
            y0 = gy.floor().clamp(0, ndy - 2)
            tx, ty = gx - x0, gy - y0
            rows, cols, vals = [], [], []
            n_j = valid.shape[1]
            for oy, ox, wgt in ((0, 0, (1 - tx) * (1 - ty)), (0, 1, tx * (1 - ty)), (1, 0, (1 - tx) * ty),
                                (1, 1, tx * ty)):
                disp = (y0.long() + oy) * ndx + (x0.long() + ox)
                rows.append(p_idx * n_j + j_idx)
                cols.append(p_idx * (ndx * ndy) + disp)
                vals.append(wgt)
            with warnings.catch_warnings():  # CSR support is labelled beta; only matmul is used
                warnings.simplefilter("ignore")
                mat = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]),
                                              torch.cat(vals).float(), (h * w * n_j, h * w * ndx * ndy),
                                              check_invariants=True).coalesce().to_sparse_csr()
            self._grids[key] = (mat.to(device), valid.float().to(device))
        return self._grids[key]

    def yaw_scores(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """(B, J) support of each candidate yaw (+ left, in the sweep's own sign convention)."""
        corr = self.correlation(fa, fb)
        corr = (corr - corr.mean(1, keepdim=True)) / (corr.std(1, keepdim=True) + 0.05)  # distinctiveness
        b, nd, h, w = corr.shape
        mat, valid = self._sweep_matrix(h, w, corr.device)
        flat = corr.permute(2, 3, 1, 0).reshape(h * w * nd, b)           # (P * n_disp, B)
        samp = (mat @ flat).view(h * w, -1, b)                            # (P, J, B)
        wpos = F.softplus(self.weight_head(fa) + 1.0).view(b, h * w).t()  # (P, B)
        wv = wpos.unsqueeze(1) * valid.unsqueeze(-1)                      # (P, J, B)
        support = wv.sum(0)
        total = wpos.sum(0).unsqueeze(0)
        return ((wv * samp).sum(0) / (support + 0.1 * total)).t()         # (B, J)

    def from_features(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        scores = self.yaw_scores(fa, fb)
        j = scores.detach().argmax(1, keepdim=True)
        half = int(self.config["window"])
        offs = torch.arange(-half, half + 1, device=scores.device).view(1, -1)
        idx = (j + offs).clamp(0, scores.shape[1] - 1)
        local = torch.gather(scores, 1, idx)
        p = torch.softmax(local * float(self.config["sharpness"]), 1)
        yaw = (p * self.yaws[idx]).sum(1)
        return self.readout_sign * yaw

    def forward(self, grey_a: torch.Tensor, grey_b: torch.Tensor) -> torch.Tensor:
        """Relative yaw (rad, + left up to the global sign) from view a to view b; inputs (B, 1, H, W) in [0, 1]."""
        return self.from_features(self.features(grey_a), self.features(grey_b))


def binaural_features(wave: torch.Tensor, n_fft: int, hop: int, max_bin: int | None = None) -> torch.Tensor:
    """(B, 2, n) binaural waveforms -> (B, 4, F, T): log|L|, log|R| (normalised per clip), and cos and sin of the
    interaural phase difference (the phase of the cross-spectrum L * conj(R)), the latter weighted by a soft
    mask that fades out time-frequency bins more than ~30 dB below the clip's loudest ones."""
    b, ch, n = wave.shape
    win = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave.reshape(b * ch, n), n_fft, hop, window=win, center=True, return_complex=True)
    spec = spec.reshape(b, ch, spec.shape[-2], spec.shape[-1])
    if max_bin is not None:
        spec = spec[:, :, :max_bin]
    logmag = torch.log(spec.abs() + 1e-6)
    ref = logmag.amax(dim=(1, 2, 3), keepdim=True)
    mask = torch.sigmoid((logmag.mean(1, keepdim=True) - ref + 3.5) / 0.35)  # ~30 dB window, ~3 dB soft edge
    logmag = logmag - logmag.mean(dim=(1, 2, 3), keepdim=True)
    cross = spec[:, 0] * spec[:, 1].conj()
    phase = (cross / (cross.abs() + 1e-9)).unsqueeze(1) * mask
    return torch.cat([logmag / 4.0, phase.real, phase.imag], 1)


class AzimuthNet(nn.Module):
    """Binaural STFT -> front-folded azimuth.

    The interaural delay is read from a weighted generalised cross-correlation: every time-frequency bin's unit
    cross-spectrum ``L * conj(R) / |L R|`` is weighted, summed over frames, whitened per frequency (PHAT) and projected
    on a fine grid of lags; the peak (sub-lag refinement) is turned into an azimuth by the spherical-head (Woodworth)
    model of the known head radius. What is learned is the weighting, i.e. which parts of the recording carry the
    direct sound:

    * a per-bin log-weight ``p * log(onset + eps)`` plus a small 2-D convolution over the log power, its rise from
      the previous frame (onset) and the level difference; ``p`` is learned and starts at ``onset_power`` (with
      ``p = 0`` and the other terms zero this is plain GCC-PHAT). Rising bins are dominated by the direct sound
      (the precedence effect), steady and decaying ones by reverberation;
    * a per-(frequency band, frame) log-weight from a network over the frames (a learnable layer across all
      frequencies, started as band-limited cross-correlations and band level differences, then 1-D convolutions);
    * a weight per band, and a smooth odd prior over the lags (``tanh`` of the lag at a few scales) whose
      coefficients the network predicts from the whole clip (e.g. from the level difference: which side).

    :meth:`lag_scores` exposes the scores over the lag grid; training turns them into a distribution over delays
    (softmax at a learned temperature ``log_temperature``). The angular scale comes from the head geometry, not from
    a free regression head."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = dict(DEFAULT_AZIMUTH_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        self.n_fft, self.hop = int(cfg["n_fft"]), int(cfg["hop"])
        fs = float(cfg["sample_rate"])
        n_bins = self.n_fft // 2 + 1
        self.max_bin = min(n_bins, int(round(cfg["max_freq_hz"] / fs * self.n_fft)) + 1)
        edges = [0.0] + list(cfg["bands_hz"]) + [fs / 2 + 1]
        self.n_bands = len(edges) - 1
        freqs = torch.arange(self.max_bin, dtype=torch.float32) * fs / self.n_fft
        bands = torch.stack([((freqs >= lo) & (freqs < hi)).float() for lo, hi in zip(edges[:-1], edges[1:])])
        self.register_buffer("band_of_bin", bands.argmax(0), persistent=False)                # (F,)
        bands = bands / bands.sum(1, keepdim=True).clamp(min=1.0)                     # (nb, F)
        # fine lag grid for the readout (fixed): cross-correlation basis per band
        head_radius, c = float(cfg["head_radius"]), float(cfg["speed_of_sound"])
        max_itd = head_radius / c * (math.pi / 2 + 1)
        self.register_buffer("lags", torch.linspace(-1.15 * max_itd, 1.15 * max_itd, int(cfg["n_readout_lags"])),
                             persistent=False)
        ang = 2 * math.pi * freqs.view(-1, 1) * self.lags.view(1, -1)                   # (F, L)
        basis = torch.stack([torch.cos(ang), torch.sin(ang)], 0)                        # (2, F, L)
        self.register_buffer("xcorr_basis", bands.view(self.n_bands, 1, -1, 1) * basis.unsqueeze(0),
                             persistent=False)                                          # (nb, 2, F, L)
        grid = torch.linspace(-math.pi / 2, math.pi / 2, 2001)
        self.register_buffer("itd_table", head_radius / c * (grid + torch.sin(grid)), persistent=False)
        self.register_buffer("az_table", grid, persistent=False)
        scales = torch.tensor([float(s) for s in cfg["lag_prior_scales_ms"]]) * 1e-3
        self.register_buffer("prior_basis", torch.tanh(self.lags.view(1, -1) / scales.view(-1, 1)),
                             persistent=False)                                          # (S, L)
        # learnable trust network over frames
        lags = torch.linspace(-cfg["max_lag_ms"], cfg["max_lag_ms"], int(cfg["n_lags"])) * 1e-3
        n_gcc = len(lags) * self.n_bands
        n_ild = int(cfg["n_level_bands"])
        self.frame = nn.Linear(4 * self.max_bin, n_gcc + 2 * n_ild)
        with torch.no_grad():
            w = torch.zeros(n_gcc + 2 * n_ild, 4, self.max_bin)
            row = 0
            for b in range(self.n_bands):
                for lag in lags:
                    w[row, 2] = bands[b] * torch.cos(2 * math.pi * freqs * lag)
                    w[row, 3] = bands[b] * torch.sin(2 * math.pi * freqs * lag)
                    row += 1
            level_edges = torch.logspace(math.log10(100.0), math.log10(fs / 2), n_ild + 1)
            level_edges[0] = 0.0
            for lo, hi in zip(level_edges[:-1], level_edges[1:]):
                band = ((freqs >= lo) & (freqs < hi + 1e-3)).float()
                band = band / band.sum().clamp(min=1.0)
                w[row, 0], w[row, 1] = band, -band      # level difference left - right
                w[row + n_ild, 0], w[row + n_ild, 1] = band, band  # level
                row += 1
            self.frame.weight.copy_(w.reshape(w.shape[0], -1) * 4.0)
            self.frame.bias.zero_()
        h = int(cfg["hidden"])
        self.temporal = nn.Sequential(
            nn.Conv1d(n_gcc + 2 * n_ild, h, 3, padding=1), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
            nn.Conv1d(h, h, 3, padding=1), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
        )
        self.trust = nn.Conv1d(h, self.n_bands, 1)     # log-weight of every (band, frame)
        nn.init.zeros_(self.trust.weight)
        nn.init.zeros_(self.trust.bias)
        self.band_weight = nn.Linear(2 * h, self.n_bands)
        nn.init.zeros_(self.band_weight.weight)
        nn.init.zeros_(self.band_weight.bias)
        self.lag_prior = nn.Linear(2 * h, scales.numel())
        nn.init.zeros_(self.lag_prior.weight)
        nn.init.zeros_(self.lag_prior.bias)
        # learnable per-bin weighting
        tc = int(cfg["tf_channels"])
        self.tf_net = nn.Sequential(nn.Conv2d(3, tc, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(tc, 1, 1))
        nn.init.zeros_(self.tf_net[-1].weight)
        nn.init.zeros_(self.tf_net[-1].bias)
        self.onset_power = nn.Parameter(torch.tensor(float(cfg["onset_power"])))
        self.log_temperature = nn.Parameter(torch.tensor(math.log(float(cfg["init_temperature"]))))
        self.correction = nn.Sequential(nn.Linear(2 * h, h), nn.ReLU(inplace=True), nn.Linear(h, 1))
        nn.init.zeros_(self.correction[-1].weight)
        nn.init.zeros_(self.correction[-1].bias)
        self.max_correction = math.radians(float(cfg["max_correction_deg"]))

    def _itd_to_azimuth(self, itd: torch.Tensor) -> torch.Tensor:
        """Inverse of the spherical-head ITD (Woodworth) by linear interpolation in a dense table."""
        table = self.itd_table
        x = itd.clamp(float(table[0]), float(table[-1]))
        i = torch.searchsorted(table, x.detach().contiguous()).clamp(1, table.numel() - 1)
        x0, x1 = table[i - 1], table[i]
        t = (x - x0) / (x1 - x0)
        return self.az_table[i - 1] + t * (self.az_table[i] - self.az_table[i - 1])

    def itd_of_azimuth(self, az: torch.Tensor) -> torch.Tensor:
        """Spherical-head ITD (s) of a direction anywhere on the circle (front/back fold included)."""
        lateral = torch.asin(torch.sin(az).clamp(-1.0, 1.0))
        return float(self.config["head_radius"]) / float(self.config["speed_of_sound"]) * (lateral + torch.sin(lateral))

    def bin_log_weights(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, F, T) learned log-weight of every time-frequency bin (before the per-band frame weights)."""
        lm_l, lm_r = 4.0 * feats[:, 0], 4.0 * feats[:, 1]
        power = torch.logaddexp(2.0 * lm_l, 2.0 * lm_r)                      # log(|L|^2 + |R|^2) + const
        rise = torch.cat([torch.zeros_like(power[..., :1]), power[..., 1:] - power[..., :-1]], -1)
        onset = torch.log(F.relu(rise) + float(self.config["onset_eps"]))
        rel = power - power.amax(dim=(1, 2), keepdim=True)
        x = torch.stack([rel / 8.0, rise / 4.0, (lm_l - lm_r) / 2.0], 1)
        return self.onset_power * onset + self.tf_net(x).squeeze(1)

    def lag_scores(self, feats: torch.Tensor):
        """(B, 4, F, T) features -> (scores over ``self.lags`` (B, L), pooled clip features (B, 2h))."""
        b, c, f, t = feats.shape
        frames = self.frame(feats.permute(0, 3, 1, 2).reshape(b, t, c * f))  # (B, T, n_feat)
        z = self.temporal(frames.transpose(1, 2))                            # (B, h, T)
        trust = torch.log_softmax(self.trust(z), dim=2)                      # (B, nb, T), per band over time
        pooled = torch.cat([z.mean(2), z.amax(2)], 1)
        band_w = torch.softmax(self.band_weight(pooled), dim=1)              # (B, nb)
        logw = self.bin_log_weights(feats) + trust[:, self.band_of_bin]      # (B, F, T)
        logw = logw - logw.amax(dim=2, keepdim=True)
        avg = torch.einsum("bkft,bft->bkf", feats[:, 2:4], torch.exp(logw))  # (B, 2, F) weighted cross-spectrum
        avg = avg / (avg.norm(dim=1, keepdim=True) + 1e-12)                  # PHAT per frequency
        xc = torch.einsum("bkf,nkfl->bnl", avg, self.xcorr_basis)            # (B, nb, L)
        score = (xc * band_w.unsqueeze(-1)).sum(1)                           # (B, L)
        score = score + self.lag_prior(pooled) @ self.prior_basis
        return score, pooled

    def lag_log_probs(self, score: torch.Tensor) -> torch.Tensor:
        """Scores over the lag grid -> log-probabilities of the delay (softmax at the learned temperature)."""
        return torch.log_softmax(score / self.log_temperature.exp(), dim=-1)

    def delay_from_scores(self, score: torch.Tensor) -> torch.Tensor:
        """Peak of the lag scores with parabolic sub-lag refinement -> delay (B,) s."""
        j = score.detach().argmax(1).clamp(1, score.shape[1] - 2)
        s0 = score.gather(1, j.view(-1, 1)).squeeze(1)
        sm = score.gather(1, (j - 1).view(-1, 1)).squeeze(1)
        sp = score.gather(1, (j + 1).view(-1, 1)).squeeze(1)
        den = sm - 2 * s0 + sp
        offset = torch.where(den < -1e-9, 0.5 * (sm - sp) / den.clamp(max=-1e-9), torch.zeros_like(den))
        step = self.lags[1] - self.lags[0]
        return self.lags[j] + offset.clamp(-0.5, 0.5) * step

    def delay(self, feats: torch.Tensor):
        """Weighted generalised cross-correlation -> (delay (B,) s, pooled features)."""
        score, pooled = self.lag_scores(feats)
        return self.delay_from_scores(score), pooled

    def azimuth_from_scores(self, score: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        az = self._itd_to_azimuth(self.delay_from_scores(score))
        if self.max_correction > 0:
            az = az + self.max_correction * torch.tanh(self.correction(pooled).squeeze(1))
        half = math.pi / 2  # stay on the front half: mirror about the interaural axis
        return torch.where(az > half, math.pi - az, torch.where(az < -half, -math.pi - az, az))

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        return self.azimuth_from_scores(*self.lag_scores(feats))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 2, n) waveforms at the configured rate (row 0 left ear) -> azimuth (rad, + left, front-folded)."""
        return self.forward_features(binaural_features(wave, self.n_fft, self.hop, self.max_bin))


def swap_features(feats: torch.Tensor) -> torch.Tensor:
    """Features of the same clip with the ears swapped (left <-> right magnitudes, interaural phase negated)."""
    return torch.cat([feats[:, 1:2], feats[:, 0:1], feats[:, 2:3], -feats[:, 3:4]], 1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
