"""The learned music front end: shapes, band weights, the contrastive loss, a tiny training run, model files."""

import numpy as np
import pytest
import torch

from av_pose_ros.lifting import music_frontend as mf
from av_pose_ros.lifting.music_train import frames_of, train

P, B, T = 2, 4, 96


def toy_group(rng, pose_shift: int) -> dict:
    """Six frames: four of pose A, two of pose B. Bands 0-1 carry the pose's echo, bands 2-3 music-dependent
    noise that the features flag (high residual)."""
    frames, pose_id, feats = [], [], []
    taps = np.arange(T)
    for i in range(6):
        pose = 0 if i < 4 else 1
        centre = 30 + pose_shift + 25 * pose
        echo = np.exp(-0.5 * ((taps - centre) / 2.0) ** 2)
        a = np.zeros((P, B, T), complex)
        a[:, 0] = a[:, 1] = 0.5 * echo
        noisy = rng.integers(2, 4)
        a[:, noisy] = 2.0 * np.abs(rng.standard_normal(T)) * rng.random()
        f = np.zeros((P, B, 4), np.float32)
        f[:, noisy, 2] = -5.0
        f[:, [b for b in range(B) if b != noisy], 2] = -40.0
        frames.append(a)
        pose_id.append(pose)
        feats.append(f)
    chirp = np.stack([np.stack([np.exp(-0.5 * ((taps - (30 + pose_shift + 25 * p)) / 2.0) ** 2)] * P)
                      for p in (0, 1)]).astype(np.float32)
    return dict(analytic=np.stack(frames).astype(np.complex64), features=np.stack(feats), ok=np.ones(6, bool),
                pose_id=np.array(pose_id, np.int8), chirp=chirp, chirp_ok=np.ones(2, bool))


def test_shapes_and_uniform_weights_at_start_give_the_plain_kernel():
    rng = np.random.default_rng(0)
    data = frames_of([toy_group(rng, 0), toy_group(rng, 5)])
    model = mf.MusicFrontend(mf.FrontendConfig(bands=B))
    kernels, w, emb = model(data["re"], data["im"], data["features"])
    assert kernels.shape == (12, P, T) and w.shape == (12, P, B) and emb.shape == (12, 32)
    torch.testing.assert_close(w.sum(-1), torch.full((12, P), float(B)))
    plain = mf.normalise(torch.sqrt(data["re"].sum(2) ** 2 + data["im"].sum(2) ** 2))
    torch.testing.assert_close(kernels, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(12))


def test_attention_weights_stay_normalised_for_any_input():
    att = mf.BandAttention(mf.FrontendConfig(bands=B))
    for p in att.parameters():
        torch.nn.init.normal_(p)
    w = att(torch.randn(5, P, B, 4) * 30, torch.randn(5, P, B, 2) * 30)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.mean(-1), torch.ones(5, P))


def test_contrastive_loss_is_lower_when_positives_are_closer_than_hard_negatives():
    labels = torch.tensor([0, 0, 1, 1])        # 0/1: same group, two poses; frame 0 and 2 share a music window
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    body = torch.stack([a, a * 0.9 + b * 0.1, b, b * 0.9 + a * 0.1])
    music = torch.stack([a, b, a * 0.95 + b * 0.05, b * 0.95 + a * 0.05])   # embedding follows the music
    good = mf.contrastive_loss(torch.nn.functional.normalize(body, dim=-1), labels)
    bad = mf.contrastive_loss(torch.nn.functional.normalize(music, dim=-1), labels)
    assert good < bad - 0.5


def test_tiny_training_run_lowers_the_loss_and_learns_to_drop_noisy_bands():
    rng = np.random.default_rng(1)
    groups = [toy_group(rng, int(s)) for s in rng.integers(0, 30, 12)]
    torch.manual_seed(0)
    model, history = train(groups[:9], groups[9:], "fa", epochs=15, groups_per_batch=3, lr=1e-2, progress=False)
    assert history["best_val_reg"] < 0.5 * history["val_reg"][0]
    assert history["train_reg"][-1] < history["train_reg"][0]
    data = frames_of(groups[9:])
    _, w, _ = model(data["re"], data["im"], data["features"])
    noisy = data["features"][..., 2] > -20
    assert w[noisy].mean() < 0.5 < w[~noisy].mean()


def test_model_file_round_trip_and_bad_files(tmp_path):
    model = mf.MusicFrontend(mf.FrontendConfig(bands=B, use_fa=True, use_cpe=False))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    path = mf.save(tmp_path / "fe.pt", model, {"note": "test"})
    loaded, meta = mf.load(path)
    assert meta["note"] == "test" and loaded.config == model.config
    rng = np.random.default_rng(2)
    analytic = (rng.standard_normal((P, B, T)) + 1j * rng.standard_normal((P, B, T))).astype(np.complex64)
    feats = rng.standard_normal((P, B, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.apply(analytic, feats), model.apply(analytic, feats), rtol=1e-6)
    assert loaded.apply(analytic, feats).shape == (P, T)
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(mf.MusicFrontendError, match="bad.pt"):
        mf.load(tmp_path / "bad.pt")
    with pytest.raises(mf.MusicFrontendError, match="not found"):
        mf.load(tmp_path / "missing.pt")


def test_kernel_stage_loads_the_front_end_or_falls_back_with_a_reason(tmp_path):
    from types import SimpleNamespace

    from av_pose_ros.pipeline.kernel import PARAMS, KernelHandler, _config

    p = SimpleNamespace(**{spec.name: spec.default for spec in PARAMS})
    handler = KernelHandler(p, lookup=None)
    good = mf.save(tmp_path / "fe.pt", mf.MusicFrontend(mf.FrontendConfig(bands=6)))
    p.music_frontend = str(good)
    handler._load_frontend(music=True)
    assert handler.frontend is not None and handler.frontend_problem is None
    assert _config(p, "continuous", handler.frontend.config.bands).frontend_bands == 6
    assert _config(p, "periodic", 6).frontend_bands == 0
    handler._load_frontend(music=False)                     # chirps: never loaded
    assert handler.frontend is None and handler.frontend_problem is None
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    for path in (tmp_path / "bad.pt", tmp_path / "missing.pt"):
        p.music_frontend = str(path)
        handler._load_frontend(music=True)
        assert handler.frontend is None and path.name in handler.frontend_problem
    p.music_frontend = ""
    handler._load_frontend(music=True)
    assert handler.frontend is None and handler.frontend_problem is None


def test_music_groups_split_tracks_by_track_and_play_the_given_excerpt():
    from av_pose_ros.lifting import music_dataset as md

    names = {s: {t.name for t in md.split_tracks(s, synthetic=True)} for s in ("train", "val", "test")}
    assert all(names.values())
    assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
    rng = np.random.default_rng(0)
    track = md.split_tracks("val", synthetic=True)[0].load(48000)
    clip = md.excerpt(np.concatenate([track, track]), 48000, rng)
    assert clip.size == int(md.EXCERPT_S * 48000)
    sim = md.TrackSimulator()
    sim.track = clip

    class _Scene:       # what TrackSimulator.emission reads
        audio = type("A", (), {"probe": "music", "window_s": 0.1, "fs": 48000})()
        rig = type("R", (), {"speakers": [0, 1]})()

    emission = sim.emission(_Scene())
    np.testing.assert_array_equal(emission.window(0)[0], clip[:4800])
