"""Optional AzimuthNet terms (diffuse-field removal, interaural phase stability): off by default, so model files
written before them load unchanged; switched on at their neutral start they leave the output exactly as it was, which
is what fine-tuning from an existing file (``train_slfm(init_azimuth=...)``) relies on."""

from __future__ import annotations

import numpy as np
import torch

from av_pose_ros.slfm.models import AzimuthNet, binaural_features

CFG = {"hidden": 32}


def _feats(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 2, 8000)).astype(np.float32)
    x[:, 1] = np.roll(x[:, 0], 4, axis=-1) + 0.3 * x[:, 1]
    m = AzimuthNet(CFG)
    return binaural_features(torch.from_numpy(x), m.n_fft, m.hop, m.max_bin)


def test_options_off_by_default_keep_the_state_dict():
    base = AzimuthNet(CFG)
    assert "diffuse_coherence" not in base.state_dict() and "coherence_power" not in base.state_dict()
    on = AzimuthNet({**CFG, "diffuse_subtract": True, "coherence_frames": 3})
    extra = set(on.state_dict()) - set(base.state_dict())
    assert extra == {"diffuse_coherence", "coherence_power"}


def test_neutral_start_reproduces_the_plain_model():
    torch.manual_seed(0)
    base = AzimuthNet(CFG).eval()
    on = AzimuthNet({**CFG, "diffuse_subtract": True, "coherence_frames": 3}).eval()
    missing, unexpected = on.load_state_dict(base.state_dict(), strict=False)
    assert set(missing) == {"diffuse_coherence", "coherence_power"} and not unexpected
    f = _feats()
    with torch.no_grad():
        assert torch.allclose(base.lag_scores(f)[0], on.lag_scores(f)[0], atol=1e-5)


def test_phase_coherence_is_high_for_a_steady_delay_and_bounded():
    m = AzimuthNet({**CFG, "coherence_frames": 3})
    f = _feats()
    coh = m.phase_coherence(f)
    assert coh.shape == f.shape[:1] + f.shape[2:]
    assert float(coh.min()) >= 0.0 and float(coh.max()) <= 1.01
    loud = f[:, 2:4].norm(dim=1) > 0.9
    assert float(coh[loud].median()) > 0.6
