"""Wide rotation model (cylinder views, global correlation, photometric refinement of rotation and distortion):
reads known turns of a rendered 3D room across +-70 deg, through an unknown lens distortion, without a bias floor;
says "no confidence" when the views do not overlap; is antisymmetric in the order of the views; the shipped file
loads weights-only and its learned encoder answers like the untrained reference on clean views; bad input raises
SlfmInputError; training (teacher labels, a few steps) writes a loadable file."""

import math
import pickle

import numpy as np
import pytest
import torch

from av_pose_ros.slfm.errors import SlfmInputError, SlfmModelError
from av_pose_ros.slfm.images import ImageBank, load_real_photos
from av_pose_ros.slfm.rotation_wide import (
    WideRotationEstimator,
    WideRotationNet,
    cylinder_maps,
    global_correlation,
)
from av_pose_ros.slfm.scenes3d import Lens, camera_rotation, render, sample_room3d

from ros_harness import REPO

SHIPPED = REPO / "models" / "slfm_rotation_wide.pt"


@pytest.fixture(scope="module")
def room():
    bank = ImageBank(load_real_photos("train"), n_procedural=3, seed=0, p_real=0.5)
    return sample_room3d(np.random.default_rng(4), bank, n_boxes=(2, 2))


def _view(room, yaw, lens, base=0.4):
    origin = np.array([room.dims[0] / 2, room.dims[1] / 2, 1.4])
    return render(room, lens, origin, camera_rotation(base + yaw), supersample=1)


@pytest.fixture(scope="module")
def reference():
    torch.set_num_threads(1)
    return WideRotationEstimator(WideRotationNet({"raw_patches": True}))


@pytest.mark.parametrize("yaw_deg,k1", [(3.0, 0.0), (-25.0, 0.04), (47.0, -0.05), (-70.0, 0.0)])
def test_reads_known_turns_through_distortion(room, reference, yaw_deg, k1):
    """Pure rotations (no translation): 0.1-deg errors on small turns, 0.4 on large ones (where the distortion,
    searched with the turn, is only seen on a small overlap), the lens's k1 found."""
    lens = Lens(width=240, height=180, hfov_deg=100.0, k1=k1)
    a, b = _view(room, 0.0, lens), _view(room, math.radians(yaw_deg), lens)
    r = reference.estimate_full(a, b, lens.hfov_deg)
    assert abs(math.degrees(r.yaw) - yaw_deg) < (0.1 if abs(yaw_deg) < 20 else 0.4), (r, yaw_deg)
    assert r.confidence > 0.5
    if abs(yaw_deg) > 20:  # the distortion is only observable when the overlaps sit at different image places
        assert abs(r.k1 - k1) < 0.02, r


def test_no_overlap_is_not_confident(room, reference):
    lens = Lens(width=240, height=180, hfov_deg=60.0)
    r = reference.estimate_full(_view(room, 0.0, lens), _view(room, math.radians(150.0), lens), lens.hfov_deg)
    assert r.confidence < 0.2, r


def test_antisymmetric_in_the_views(room, reference):
    lens = Lens(width=240, height=180, hfov_deg=90.0, k1=-0.02)
    a, b = _view(room, 0.0, lens), _view(room, math.radians(-33.0), lens)
    assert abs(reference.estimate(a, b, 90.0) + reference.estimate(b, a, 90.0)) < math.radians(0.1)


def test_cylinder_shift_is_the_yaw():
    """On the cylinder a pure turn is a column shift of yaw / step: the global correlation of a cylinder image with
    itself shifted by 7 columns peaks at +7."""
    mx, my, valid = cylinder_maps(320, 240, 90.0, 0.5)
    assert mx.shape[1] == 180 and valid.mean() > 0.8
    f = torch.nn.functional.normalize(torch.randn(1, 8, 10, 40, generator=torch.Generator().manual_seed(0)), dim=1)
    fb = torch.roll(f, 7, dims=3)
    m = torch.ones(1, 1, 10, 40)
    scores, overlap = global_correlation(f, m, fb, m)
    assert int(scores[0].argmax()) - 39 == 7 and overlap[0, 39] == 1.0


def test_bad_inputs(reference):
    img = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(SlfmInputError):
        reference.estimate(img, img[:100], 90.0)
    with pytest.raises(SlfmInputError):
        reference.estimate(img, img, 200.0)
    with pytest.raises(SlfmInputError):
        reference.estimate(img.astype(np.float32) * np.nan, img, 90.0)
    with pytest.raises(SlfmInputError):
        reference.estimate(img[:10, :10], img[:10, :10], 90.0)


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped wide rotation model")
def test_shipped_file_loads_weights_only_and_reads_a_turn(room, reference):
    raw = torch.load(SHIPPED, weights_only=True)
    assert raw["kind"] == "slfm_rotation_wide" and raw["metadata"]["training"]["labels_used_in_loss"] is False
    est = WideRotationEstimator.load(SHIPPED)
    lens = Lens(width=240, height=180, hfov_deg=90.0, k1=0.02)
    a, b = _view(room, 0.0, lens), _view(room, math.radians(38.0), lens)
    assert abs(math.degrees(est.estimate(a, b, 90.0)) - 38.0) < 0.3
    with pytest.raises(SlfmModelError):
        WideRotationEstimator.load(REPO / "models" / "slfm_azimuth.pt")


def test_training_writes_a_loadable_file(tmp_path, room):
    """Three spots of three views, a few steps: teacher labels kept by the self-consistency rules, loss finite."""
    from av_pose_ros.slfm.train_wide import WideTrainConfig, train_wide

    lens = Lens(width=240, height=180, hfov_deg=90.0)
    rng = np.random.default_rng(1)
    spots = []
    for s in range(3):
        yaws = [0.0] + list(np.radians(rng.uniform(-40, 40, 2)))
        spots.append({"views": [_view(room, y, lens, base=1.5 * s) for y in yaws], "fov": 90.0,
                      "yaw_truth_for_audit_only": yaws})
    views = tmp_path / "views.pkl"
    views.write_bytes(pickle.dumps(spots))
    out = tmp_path / "wide.pt"
    summary = train_wide(WideTrainConfig(views=str(views), out=str(out), steps=3, batch=2))
    assert summary["teacher"]["pairs_kept"] >= 3 and np.isfinite(summary["final_loss"])
    assert summary["teacher"]["kept_error_median_deg"] < 0.3
    est = WideRotationEstimator.load(out)
    assert est.model.config["coarse_deg_per_px"] == 0.5
