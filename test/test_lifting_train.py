"""Training: a tiny model learns within about a minute; the same command runs data-parallel on two CPU processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from av_pose_ros.lifting.train import LifterTrainConfig, train_lifter

REPO = Path(__file__).resolve().parent.parent
TINY = {"grid_n": 16, "grid_size_m": 2.4, "width": 12, "stages": 2, "audio_channels": 4}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("lifting_cache")


@pytest.fixture(scope="module")
def plain_world(tmp_path_factory):
    """The default scenario without body-wall paths and shadowing: a trainer check, not a physics one, that a
    few minutes of CPU can pass (the full world needs far more data than a test can afford)."""
    data = yaml.safe_load((REPO / "config" / "scenarios" / "default.yaml").read_text())
    data["room"].update(body_wall_paths=False, body_shadowing=False)
    path = tmp_path_factory.mktemp("scenarios") / "plain.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_tiny_model_validation_error_falls(cache, plain_world, tmp_path):
    torch.set_num_threads(2)
    common = dict(scenario=plain_world, out=tmp_path / "tiny.pt", num_train=120, num_val=24, epochs=5,
                  batch_size=8, seed=0, net_config=TINY, cache_root=cache, gen_workers=2, progress=False)
    summary = train_lifter(LifterTrainConfig(**common, lr=3e-3), log=lambda *a: None)
    start = summary["history"][0]["val_mpjpe_mm"]
    best = summary["best_val_mpjpe_mm"]
    print("validation MPJPE", [round(h["val_mpjpe_mm"]) for h in summary["history"]])
    assert best < 0.6 * start, (start, best)
    payload = torch.load(tmp_path / "tiny.pt", weights_only=True)
    assert payload["format"] == "av_pose_ros.lifter" and payload["config"]["grid_n"] == 16
    # resuming a finished run continues from the checkpoint and does not start over
    again = train_lifter(LifterTrainConfig(**common, resume=True), log=lambda *a: None)
    assert len(again["history"]) == len(summary["history"])
    # fine-tuning on two scenarios starts from the trained weights, not from scratch
    tuned = train_lifter(LifterTrainConfig(scenario=[plain_world, "offers"], out=tmp_path / "tuned.pt",
                                           num_train=[120, 24], num_val=[24, 8], epochs=1, batch_size=8, lr=1e-3,
                                           seed=0, init=tmp_path / "tiny.pt", cache_root=cache, gen_workers=2,
                                           progress=False), log=lambda *a: None)
    assert tuned["history"][0]["val_mpjpe_mm"] < 0.8 * start
    info = torch.load(tmp_path / "tuned.pt", weights_only=True)["train"]
    assert info["scenario"] == [plain_world, "offers"] and info["num_train"] == [120, 24]


def test_vision_only_model_trains_without_sound(cache, tmp_path):
    """The learned vision-only baseline: no audio branch, trained on samples rendered without sound, and its
    predictions do not change when the kernels do."""
    import numpy as np

    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting import dataset as ds

    torch.set_num_threads(2)
    summary = train_lifter(LifterTrainConfig(out=tmp_path / "vision.pt", num_train=120, num_val=24, epochs=4,
                                             batch_size=8, lr=3e-3, seed=0, net_config={**TINY, "use_audio": False},
                                             cache_root=cache, gen_workers=1, progress=False), log=lambda *a: None)
    assert summary["best_val_mpjpe_mm"] < summary["history"][0]["val_mpjpe_mm"]
    payload = torch.load(tmp_path / "vision.pt", weights_only=True)
    assert payload["config"]["use_audio"] is False and payload["train"]["use_audio"] is False
    assert not any(k.startswith("audio.") for k in payload["state_dict"])
    assert (cache / ds.scenario_key("default") / "train-seed0-noaudio").is_dir()     # no sound was rendered
    lifter = Lifter.load(tmp_path / "vision.pt")
    s = ds.sample_at(ds.generate("default", "test", 3, 1, cache, 1, False), 0)
    args = (s["keypoints"], s["K"], s["world_from_camera"], s["kernels"], s["speakers"], s["mics"], float(s["fs"]))
    joints, _ = lifter.predict(*args)
    silent, _ = lifter.predict(*args[:3], np.zeros_like(s["kernels"]), *args[4:])
    np.testing.assert_allclose(joints, silent)


def test_data_parallel_two_cpu_processes(cache, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m", "av_pose_ros.lifting.cli",
           "train-lifter", "--num-train", "120", "--num-val", "24", "--epochs", "1", "--batch-size", "8",
           "--grid-n", "16", "--width", "12", "--stages", "2", "--out", str(out), "--cache", str(cache),
           "--workers", "2", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    payload = torch.load(out, weights_only=True)
    assert payload["train"]["world_size"] == 2
    assert proc.stdout.count("best validation MPJPE") == 1      # only rank 0 reports and writes
    json.dumps(payload["metrics"])


def test_training_mixes_are_servable_and_not_evaluation_families():
    """The training mixes (config/scenarios/train_*.yaml) load, the generator can serve them, and none of them is
    an evaluation family (the families stay the yardstick; mixes are read through train/val streams only)."""
    from av_pose_ros.lifting import dataset as ds
    from av_pose_ros.lifting.evaluate import FAMILIES
    from av_pose_ros.sim.scenario import load_scenario

    mixes = sorted((REPO / "config" / "scenarios").glob("train_*.yaml"))
    assert mixes, "no training mix shipped"
    for path in mixes:
        scenario = load_scenario(str(path))
        ds.check_servable(scenario)
        assert path.stem not in FAMILIES
        # a walker needs room to walk: its path is 2 x (distance - 0.8) m (sim/choreography.py), none below 0.8 m
        if "walking" in scenario.poses:
            assert scenario.distance[0] > 0.8, (path.name, scenario.distance)


def test_coarse_locator_range_prior_rejects_an_echo_near_the_rig():
    """Oracle: kernels with the body's echo at the torso's round-trip delay and a three times stronger residual at
    0.6 m (what imperfect direct-path removal leaves). Without the apparent-size prior the locator takes the
    residual; with it, the body (the prior only down-weights ranges far from what a person of that image size has)."""
    import numpy as np

    from av_pose_ros.lifting import features as F
    from av_pose_ros.primitives.geometry import invert_transform
    from av_pose_ros.sim.body import body_joints
    from av_pose_ros.sim.rig import load_rig

    rig = load_rig("default")
    speakers, mics = rig.pair_positions("base_link")
    world_from_camera = rig.base_from_optical
    camera = rig.intrinsics.camera_model()
    joints = body_joints(1.7, "standing") + np.array([2.5, 0.0, 0.0])     # facing the camera along base_link x
    optical = joints @ invert_transform(world_from_camera)[:3, :3].T + invert_transform(world_from_camera)[:3, 3]
    keypoints = np.column_stack([camera.project_ideal(optical), np.full(17, 0.9)])
    fs, c, taps = 48000.0, 343.0, 1200
    torso_front = 0.5 * (joints[5] + joints[12]) - np.array([0.12, 0.0, 0.0])
    near = world_from_camera[:3, 3] + 0.6 * (torso_front - world_from_camera[:3, 3]) / np.linalg.norm(
        torso_front - world_from_camera[:3, 3])
    t = np.arange(taps)
    kernels = np.zeros((len(speakers), taps), np.float32)
    for p, (s, m) in enumerate(zip(speakers, mics)):
        for point, amp in ((torso_front, 1.0), (near, 3.0)):
            delay = (np.linalg.norm(point - s) + np.linalg.norm(point - m)) / c * fs
            kernels[p] += amp * np.exp(-0.5 * ((t - delay) / 3.0) ** 2)
    args = (keypoints, camera.K, world_from_camera, kernels, speakers, mics, fs, c)
    truth = float(np.linalg.norm(torso_front - world_from_camera[:3, 3]))
    without = F.coarse_locate(*args, range_prior_sigma=0.0)
    with_prior = F.coarse_locate(*args)
    assert without.range_m < 1.0, without.range_m
    assert abs(with_prior.range_m - truth) < 0.25, (with_prior.range_m, truth)
