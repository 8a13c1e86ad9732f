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
    """Cross-modal consistency of a turn ``rot`` from view a to view b with the sound directions of both views.

    The source is fixed, so its azimuth after the turn is ``az_a - rot``. A binaural pair only observes the lateral
    component ``sin(az)`` (the sphere cannot tell front from back), which is the same for a direction and its
    reflection about the interaural axis: the folded prediction of view b is compared with ``sin(az_a - rot)``
    through sines, which also takes care of sources that cross the interaural axis during the turn. The true
    direction in view a may be the predicted one or its reflection (front/back); the better of the two mirrored
    solutions counts (permutation-invariant training). Per-example loss ``0.5 * (sin(phi_b) - sin(az_a - rot))^2``.

    Comparing sines, rather than angles, also fixes the angular scale: the sine saturates at the interaural axis,
    so a model that shrank all angles would not stay consistent for lateral sources."""
    cands_a = torch.stack([phi_a, reflect(phi_a)], 0)              # (2, B)
    err = torch.sin(phi_b)[None, :] - torch.sin(cands_a - rot[None, :])
    return 0.5 * (err**2).min(0).values

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
