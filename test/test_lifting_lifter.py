"""Inference API: the shipped weights lift an easy frame near the truth; bad model files fail clearly."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from av_pose_ros.lifting import Lifter, LifterLoadError
from av_pose_ros.lifting.dataset import simulate_sample
from av_pose_ros.lifting.features import LiftingInputError
from av_pose_ros.sim.body import facing_yaw
from av_pose_ros.sim.render import Simulator
from av_pose_ros.sim.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "lifter.pt"


class _EasyScenario:
    """The default scenario, but a 1.75 m person standing 2.2 m in front of the camera at 40 dB SNR, in the world
    the shipped weights were trained in (generator v3: the default physics)."""

    def __init__(self):
        self.inner = load_scenario("default")

    def sample(self, rng):
        s = self.inner.sample(rng)
        person = dataclasses.replace(s.person, pose="standing", stature_m=1.75, position_xy=(2.2, 0.1),
                                     yaw=facing_yaw((2.2, 0.1), (0.0, 0.0)))
        return dataclasses.replace(s, person=person, audio=dataclasses.replace(s.audio, snr_db=40.0))


@pytest.fixture(scope="module")
def lifter():
    return Lifter.load(SHIPPED)


def test_shipped_weights_lift_an_easy_frame(lifter):
    s = simulate_sample(_EasyScenario(), Simulator(), "test", 12345, 0)
    joints, conf = lifter.predict(s["keypoints"], s["K"], s["world_from_camera"], s["kernels"], s["speakers"],
                                  s["mics"], float(s["fs"]), speed_of_sound=float(s["c"]))
    assert joints.shape == (17, 3) and conf.shape == (17,)
    assert np.all(np.isfinite(joints)) and np.all((conf >= 0) & (conf <= 1))
    err = np.linalg.norm(joints - s["joints"], axis=1)
    print("easy frame MPJPE mm", 1000 * err.mean())
    assert err.mean() < 0.15
    with pytest.raises(LiftingInputError):
        lifter.predict(s["keypoints"][:5], s["K"], s["world_from_camera"], s["kernels"], s["speakers"], s["mics"],
                       48000)
    blind = s["keypoints"].copy()
    blind[:, 2] = 0
    with pytest.raises(LiftingInputError, match="usable keypoints"):
        lifter.predict(blind, s["K"], s["world_from_camera"], s["kernels"], s["speakers"], s["mics"], 48000)


def test_shipped_weights_are_small():
    assert SHIPPED.stat().st_size <= 20 * 2 ** 20


def test_bad_model_files(tmp_path):
    with pytest.raises(LifterLoadError, match="not found"):
        Lifter.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(LifterLoadError, match="not a readable torch file"):
        Lifter.load(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(LifterLoadError, match="not a lifter model"):
        Lifter.load(foreign)
    broken = tmp_path / "broken.pt"
    payload = torch.load(SHIPPED, weights_only=True)
    payload["state_dict"] = {k: v[..., :1] for k, v in payload["state_dict"].items()}
    torch.save(payload, broken)
    with pytest.raises(LifterLoadError, match="do not match"):
        Lifter.load(broken)
    assert issubclass(LifterLoadError, RuntimeError)      # the node catches RuntimeError


def test_eval_cli_json(tmp_path):
    cmd = [sys.executable, "-m", "av_pose_ros.app.cli", "eval-lifter", "--scenario", "config/scenarios/default.yaml",
           "--num", "4", "--seed", "5", "--json", "--cache", str(tmp_path), "--workers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["num"] == 4 and set(result["methods"]) == {"cnn", "tof", "vision_only", "vision_learned"}
    assert set(result["ablations"]) == {"audio_shuffled", "audio_zero"} and result["split"] == "test"
    for row in [*result["methods"].values(), *result["ablations"].values()]:
        assert {"mpjpe_mm", "root_mm", "wrist_mm", "pck100", "flagged_fraction"} <= set(row)


def test_shipped_vision_model_is_small_and_deaf():
    vision = REPO / "models" / "lifter_vision.pt"
    assert vision.stat().st_size <= 20 * 2 ** 20
    lifter = Lifter.load(vision)
    assert lifter.config.use_audio is False and not hasattr(lifter.net, "audio")


def _mirrored(volume: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.flip(volume, axis=-2))


def test_mirror_average_is_equivariant_under_the_mirror(lifter):
    """The averaged answer on a mirrored cube is the mirror of the averaged answer: averaging over the world's
    mirror symmetry gives the network none of its own handedness, and maps y -> -y and left <-> right correctly."""
    from av_pose_ros.primitives.skeleton import LEFT_RIGHT_SWAP

    s = simulate_sample(_EasyScenario(), Simulator(), "test", 12345, 1)
    _, rays, audio = lifter.prepare(s["keypoints"], s["K"], s["world_from_camera"], s["kernels"], s["speakers"],
                                    s["mics"], float(s["fs"]), float(s["c"]))
    swap = list(LEFT_RIGHT_SWAP)
    local, conf = lifter.run_network(rays, audio, mirror=True)
    m_local, m_conf = lifter.run_network(_mirrored(rays[swap]), _mirrored(audio), mirror=True)
    expected = local[swap] * np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(m_local, expected, atol=1e-5)
    np.testing.assert_allclose(m_conf, conf[swap], atol=1e-5)
    plain, _ = lifter.run_network(rays, audio)
    assert not np.allclose(plain, local, atol=1e-4)       # the mirror image is a second, different look


def test_inference_recipe_travels_in_the_model_file(tmp_path):
    """`calibration` stores how the network was run beside the fit; `Lifter.load` reads it back, and a re-centred
    pass moves the cube onto the first pass's body."""
    from av_pose_ros.lifting.calibration import store_in_model
    from av_pose_ros.lifting.lifter import Inference

    path = tmp_path / "lifter.pt"
    path.write_bytes(SHIPPED.read_bytes())
    store_in_model(path, "inference", Inference(recentre_passes=0, mirror_average=False).as_dict())
    plain = Lifter.load(path)
    assert plain.inference == Inference(recentre_passes=0, mirror_average=False)
    recipe = Inference(recentre_passes=1, mirror_average=True, placing_stages=1)
    store_in_model(path, "inference", recipe.as_dict())
    refined = Lifter.load(path)
    assert refined.inference == recipe

    s = simulate_sample(_EasyScenario(), Simulator(), "test", 12345, 2)
    args = (s["keypoints"], s["K"], s["world_from_camera"], s["kernels"], s["speakers"], s["mics"], float(s["fs"]))
    first = plain.lift(*args, speed_of_sound=float(s["c"]))
    second = refined.lift(*args, speed_of_sound=float(s["c"]))
    np.testing.assert_allclose(second.coarse_grid.centre, first.grid.centre)
    grid, rays, audio = plain.prepare(*args, float(s["c"]))
    placing, _ = plain.run_network(rays, audio, stages=1)          # the first stage alone places the next cube
    np.testing.assert_allclose(second.grid.centre, grid.to_world(placing).mean(axis=0), atol=1e-9)
    assert not np.allclose(placing, plain.run_network(rays, audio)[0], atol=1e-4)
    camera_y = second.grid.to_local(np.asarray(s["world_from_camera"], float)[:3, 3])[1]
    assert abs(camera_y) < 1e-9                     # the camera stays on the cube's mirror plane
    for out in (first, second):
        assert np.linalg.norm(out.joints - s["joints"], axis=1).mean() < 0.15
    deaf = refined.lift(*args, speed_of_sound=float(s["c"]), network_kernels=np.zeros_like(s["kernels"]))
    assert np.allclose(deaf.coarse_grid.centre, second.coarse_grid.centre)
    assert not np.allclose(deaf.raw, second.raw, atol=1e-3)
