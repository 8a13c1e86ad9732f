"""The music lifter: music groups become lifter samples, and music scenarios launch the music-trained weights."""

import numpy as np
import pytest

from av_pose_ros.lifting import music_dataset as md
from av_pose_ros.lifting.dataset import FIELDS


@pytest.fixture(scope="module")
def group():
    from av_pose_ros.sim.scenario import load_scenario

    sim = md.TrackSimulator()
    return md.simulate_group(load_scenario("music"), sim, "val", 0, 0, bands=2, synthetic=True)


def test_group_becomes_lifter_samples_of_music_frames_and_chirp_poses(group):
    music = md.group_samples(group, "music")
    chirp = md.group_samples(group, "chirp")
    frames = md.POSITIVES + len(md.NEGATIVE_AT)
    assert set(music) == set(FIELDS) and set(chirp) == set(FIELDS)
    assert len(music["kernels"]) == frames and len(chirp["kernels"]) == 2
    assert music["kernels"].shape[1:] == group["kernels"].shape[1:] and music["coarse_rotation"].shape[1:] == (3, 3)
    np.testing.assert_array_equal(music["kernels"], group["kernels"])
    np.testing.assert_array_equal(chirp["kernels"], group["chirp"])
    # each frame carries the ground truth and detections of its own pose (A for positives, B for hard negatives)
    for i, pose in enumerate(group["pose_id"]):
        np.testing.assert_array_equal(music["joints"][i], group["pose_joints"][pose])
        np.testing.assert_array_equal(music["keypoints"][i], group["pose_keypoints"][pose])
    assert not np.array_equal(music["joints"][0], music["joints"][-1])
    # the coarse locator placed the frames the pipeline gave a kernel: near the person, not anywhere
    placed = np.flatnonzero(music["coarse_ok"])
    assert placed.size >= frames // 2 and not np.any(music["coarse_ok"] & ~group["ok"])
    hips = 0.5 * (music["joints"][placed, 11] + music["joints"][placed, 12])
    assert np.median(np.linalg.norm(music["coarse_centre"][placed] - hips, axis=1)) < 1.0


def test_refused_frame_is_not_placed_and_unknown_source_raises(group):
    refused = dict(group, ok=np.zeros_like(group["ok"]), chirp_ok=np.zeros_like(group["chirp_ok"]))
    assert not md.group_samples(refused, "music")["coarse_ok"].any()
    assert not md.group_samples(refused, "chirp")["coarse_ok"].any()
    both = md.groups_samples([group, refused])
    assert len(both["kernels"]) == 2 * len(group["ok"])
    with pytest.raises(ValueError, match="source"):
        md.group_samples(group, "sweep")


def test_music_scenario_launches_the_music_lifter_when_it_exists(tmp_path, monkeypatch):
    from av_pose_ros.app import launch_graphs as lg

    def lifter_params(*pairs):
        nodes = lg.resolve("sim", lg.parse_arguments(list(pairs), "sim"))
        return next(n for n in nodes if n.executable == "lifter_node").params

    model = tmp_path / "lifter_music.pt"
    monkeypatch.setattr(lg, "MUSIC_LIFTER", str(model))
    assert "model_path" not in lifter_params("scenario:=music")          # no file: the node's default
    model.write_bytes(b"weights")
    assert lifter_params("scenario:=music")["model_path"] == str(model)
    assert "model_path" not in lifter_params("scenario:=handover")        # chirp scenario: the default lifter
    assert lifter_params("scenario:=music", "model_path:=/x.pt")["model_path"] == "/x.pt"   # explicit wins
    assert "model_path" not in lifter_params("scenario:=no_such_scenario")


def test_eval_adds_music_lifter_rows_on_the_same_frames(group):
    from av_pose_ros.lifting.lifter import Lifter
    from av_pose_ros.lifting.music_eval import evaluate_groups, summarise

    lifter = Lifter.load("models/lifter.pt", threads=1)
    result = evaluate_groups([group], {}, lifter, progress=False, music_lifter=lifter)
    assert list(result["preds"]) == ["continuous", "music_lifter", "music_lifter_chirp", "chirp"]
    # the same weights on the same kernels: the new rows must equal the old ones frame by frame
    np.testing.assert_allclose(result["preds"]["music_lifter"], result["preds"]["continuous"])
    np.testing.assert_allclose(result["preds"]["music_lifter_chirp"], result["preds"]["chirp"])
    assert summarise(result)["methods"]["music_lifter_chirp"]["vs_chirp"] == pytest.approx(1.0)
