"""Cross-view binauralization pretext: the data pairs two hearings and two views of one head turn, the network's
start is "copy view A" (zero correction), a few steps train it, and its visual encoder loads into the wide
rotation model (`train_wide --init-encoder`)."""

import numpy as np
import torch

from av_pose_ros.slfm.pretext import CrossViewNet, PretextConfig, _spec, make_pretext_set, train_pretext
from av_pose_ros.slfm.rotation_wide import WideRotationNet


def test_pretext_trains_and_hands_its_encoder_over(tmp_path):
    torch.set_num_threads(1)
    items = make_pretext_set(6, seed=5)
    it = items[0]
    assert it["clip_a"].shape == it["clip_b"].shape == (2, 8000) and it["img_a"].shape == (120, 160, 3)
    assert not np.allclose(it["clip_a"], it["clip_b"])  # the turn changed what the ears hear
    spec = _spec(np.stack([it["clip_a"]]))
    assert spec.shape == (1, 4, 128, 64)
    net = CrossViewNet(59).eval()
    x = torch.zeros(1, 1, 88, 120)
    m = torch.ones(1, 1, 88, 120)
    assert torch.allclose(net(x, m, x, m, spec), spec)  # starts as "copy A"
    out = tmp_path / "pretext.pt"
    summary = train_pretext(PretextConfig(items=4, val_items=2, steps=3, batch=2, out=str(out)), items)
    assert np.isfinite(summary["val_l1"]) and summary["copy_a_l1"] > 0
    state = torch.load(out, weights_only=True)["state_dict"]
    wide = WideRotationNet()
    wide.encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    assert torch.equal(wide.encoder.net[0][0].weight, state["encoder.net.0.0.weight"])
