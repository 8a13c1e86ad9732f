"""Self-supervised SLfM losses. None of them sees a label.

Notation: ``phi`` is the audio model's front-folded azimuth (rad, + left), ``rot`` the visual model's turn of the
head from view a to view b (rad, + left). The source is fixed in the room, so after the head turns by ``rot`` the
source azimuth in the head frame is ``phi_a - rot``: the sound turns opposite to the camera.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def reflect(phi: torch.Tensor) -> torch.Tensor:
    """Mirror a direction about the interaural axis (front <-> back): (cos, sin) -> (-cos, sin)."""
    return math.pi - phi


def geometric_loss(phi_a: torch.Tensor, phi_b: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Two-view case of :func:`multiview_geometric_loss`: predictions ``phi_a``, ``phi_b`` (B,) and the turn ``rot``
    (B,) from view a to view b."""
    phi = torch.stack([phi_a, phi_b], 1)
    turns = torch.stack([torch.zeros_like(rot), rot], 1)
    return multiview_geometric_loss(phi, turns, inlier_deg=180.0)[0]


def fold(angle: torch.Tensor) -> torch.Tensor:
    """Front-folded angle: the direction itself if in front, its mirror image about the interaural axis if behind
    (``asin(sin(angle))``, written so that its slope is exactly +-1)."""
    a = torch.remainder(angle + math.pi / 2, 2 * math.pi) - math.pi / 2   # in [-pi/2, 3 pi / 2)
    return torch.where(a > math.pi / 2, math.pi - a, a)


def multiview_geometric_loss(phi: torch.Tensor, rot: torch.Tensor, n_grid: int = 720,
                             inlier_deg: float = 15.0, min_inliers: int | None = None, lateral_deg: float = 90.0):
    """Geometric consistency of several views of one fixed source.

    ``phi`` (B, V): front-folded azimuths predicted in each view; ``rot`` (B, V): the head's turn from view 0 to
    each view (``rot[:, 0] = 0``). A source at azimuth ``az`` in view 0 appears at ``az - rot_v`` in view v, i.e.
    at ``fold(az - rot_v)`` for a binaural listener. ``az`` is unknown and may lie anywhere on the circle, in front
    or behind: the best direction counts (a search over the whole circle, so both front/back mirrored solutions are
    considered). The search is robust: a view counts at most ``inlier_deg`` of error, so one bad prediction cannot
    drag the solution, and then every view, the bad one included, is pulled towards the consistent solution
    (Huber loss, 3 deg). Configurations with fewer than ``min_inliers`` agreeing views (default: all but one) give
    no loss, and neither do views whose consistent direction is more lateral than ``lateral_deg``: near the
    interaural axis the folded direction saturates, so noisy predictions there would bias the solution towards the
    median plane. The search itself is not differentiated (at its minimum the derivative vanishes).
    Returns (per-configuration loss (B,), az* (B,), used (B,) bool)."""
    n_views = phi.shape[1]
    need = n_views - 1 if min_inliers is None else min_inliers
    c = math.radians(inlier_deg)
    with torch.no_grad():
        grid = torch.linspace(-math.pi, math.pi, n_grid + 1, device=phi.device)[:-1]
        pred = fold(grid.view(1, 1, -1) - rot.detach().unsqueeze(-1))          # (B, V, G)
        err = (phi.detach().unsqueeze(-1) - pred) ** 2
        cost = err.clamp(max=c * c).sum(1)                                     # (B, G)
        best_idx = cost.argmin(1)
        best = grid[best_idx]
        inliers = (err.gather(2, best_idx.view(-1, 1, 1).expand(-1, n_views, 1)).squeeze(2) < c * c).sum(1)
        used = inliers >= need
    target = fold(best.unsqueeze(1) - rot)
    per_view = F.huber_loss(phi, target, reduction="none", delta=math.radians(3.0))
    keep = (target.detach().abs() <= math.radians(lateral_deg)).float() * used.float().unsqueeze(1)
    return (per_view * keep).sum(1) / n_views, best, used


def iid_labels(wave: np.ndarray | torch.Tensor, n_fft: int = 512, hop: int = 256) -> torch.Tensor:
    """Left/right votes from the interaural intensity difference: for every STFT frame, is the spectrum summed over
    frequency louder in the left or the right ear? Majority over frames. Returns 1.0 (left), 0.0 (right) or 0.5
    (tie) per clip of a (B, 2, n) batch."""
    w = torch.as_tensor(wave, dtype=torch.float32)
    b, ch, n = w.shape
    win = torch.hann_window(n_fft)
    spec = torch.stft(w.reshape(b * ch, n), n_fft, hop, window=win, return_complex=True).abs()
    energy = spec.sum(1).reshape(b, ch, -1)                     # (B, 2, T)
    active = energy.sum(1) > 1e-3 * energy.sum(1).amax(1, keepdim=True)
    votes = torch.sign(torch.log(energy[:, 0] + 1e-9) - torch.log(energy[:, 1] + 1e-9)) * active
    total = votes.sum(1)
    return 0.5 + 0.5 * torch.sign(total)


def iid_loss(phi: torch.Tensor, labels: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Binary cross-entropy between the side the audio model points to and the IID vote (ties ignored). A small
    temperature makes the term act near the median plane only, so it fixes the sign without pulling sources
    sideways."""
    keep = labels != 0.5
    if not bool(keep.any()):
        return phi.sum() * 0.0
    logits = torch.sin(phi[keep]) / temperature
    return F.binary_cross_entropy_with_logits(logits, labels[keep], reduction="mean")


def symmetry_loss(pred: torch.Tensor, pred_mirrored: torch.Tensor) -> torch.Tensor:
    """Swapped ears must negate the azimuth; reversed image order must negate the rotation: |f(x) + f(x')|."""
    return (pred + pred_mirrored).abs().mean()


def _interp_lags(logp: torch.Tensor, lags: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``logp`` (B, V, L) on the uniform grid ``lags`` (L,) at delays ``at`` (B, V, G)."""
    n = lags.numel()
    pos = ((at - lags[0]) / (lags[1] - lags[0])).clamp(0.0, n - 1.0)
    i0 = pos.floor().long().clamp(0, n - 2)
    w = pos - i0.to(pos.dtype)
    v0 = torch.gather(logp, 2, i0)
    v1 = torch.gather(logp, 2, i0 + 1)
    return v0 * (1.0 - w) + v1 * w


def multiview_delay_loss(logp: torch.Tensor, rot: torch.Tensor, lags: torch.Tensor, itd_of_azimuth,
                         n_grid: int = 720, min_confidence: float = 0.0, window_deg: float = 10.0):
    """Multi-view consistency on the audio model's delay distributions (no label).

    ``logp`` (B, V, L): per view, log-probabilities of the interaural delay over the lag grid ``lags``; ``rot``
    (B, V): the head's turn from view 0 to each view (from the rotation model, detached). A source at ``az``
    (anywhere on the circle: front and back are both candidates, which covers the mirrored solutions) produces in
    view v the delay ``itd(az - rot_v)`` (the spherical head folds front and back). The joint log-likelihood of a
    direction is the sum over views of ``logp_v`` at that delay; the loss is minus the log of its average over the
    circle (the marginal likelihood that all views heard one fixed source), per view. Its gradient pulls every view's
    distribution towards the delays of the directions the views agree on, weighted by their posterior, and pushes
    down delays (e.g. of reflections) that no common direction explains. Configurations whose posterior keeps less
    than ``min_confidence`` within +-``window_deg`` of its peak give no loss. Returns (loss (B,), posterior peak
    direction (B,), confidence (B,))."""
    b, n_views, _ = logp.shape
    grid = torch.linspace(-math.pi, math.pi, n_grid + 1, device=logp.device)[:-1]
    at = itd_of_azimuth(grid.view(1, 1, -1) - rot.detach().unsqueeze(-1))            # (B, V, G)
    joint = _interp_lags(logp, lags, at).sum(1)                                         # (B, G)
    loss = -(torch.logsumexp(joint, 1) - math.log(n_grid)) / n_views
    with torch.no_grad():
        post = torch.softmax(joint, 1)
        best = post.argmax(1)
        d = torch.remainder(grid.view(1, -1) - grid[best].view(-1, 1) + math.pi, 2 * math.pi) - math.pi
        conf = (post * (d.abs() <= math.radians(window_deg))).sum(1)
    keep = (conf >= min_confidence).float()
    return loss * keep, grid[best], conf


def side_loss(logp: torch.Tensor, lags: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """IID left/right vote on a delay distribution: binary cross-entropy between the probability mass on the left
    (positive delays: the left ear hears the sound first) and the vote (ties ignored)."""
    keep = labels != 0.5
    if not bool(keep.any()):
        return logp.sum() * 0.0
    p = torch.exp(logp[keep])
    left = (p * (lags > 0).float()).sum(-1) + 0.5 * (p * (lags == 0).float()).sum(-1)
    left = left.clamp(1e-6, 1 - 1e-6)
    y = labels[keep]
    return -(y * torch.log(left) + (1 - y) * torch.log(1 - left)).mean()
