"""Lifting geometry oracles: soft-argmax, fine-grid coordinates, ray snapping, coarse locator."""

import numpy as np
import torch

from av_pose_ros.lifting.features import FineGrid, closest_on_rays, person_frame
from av_pose_ros.lifting.model import LifterNet, NetConfig, soft_argmax


def test_soft_argmax_peak_and_midpoint():
    n = 8
    axis = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * 0.25
    logits = torch.full((1, 2, n, n, n), -1e4)
    logits[0, 0, 1, 6, 3] = 0.0                          # one voxel: its centre exactly, zero spread
    logits[0, 1, 2, 2, 2] = logits[0, 1, 3, 2, 2] = 0.0  # two equal voxels along x: the midpoint
    mean, spread = soft_argmax(logits, axis)
    np.testing.assert_allclose(mean[0, 0].numpy(), [axis[1], axis[6], axis[3]], atol=1e-6)
    np.testing.assert_allclose(mean[0, 1].numpy(), [(axis[2] + axis[3]) / 2, axis[2], axis[2]], atol=1e-6)
    assert spread[0, 0] < 1e-3 and abs(spread[0, 1] - 0.125) < 1e-4


def test_heatmap_axis_matches_fine_grid_blocks():
    """Heatmap voxel (i, j, k) at half resolution sits at the centre of fine voxels 2i..2i+1 (C order, x first)."""
    cfg = NetConfig(grid_n=12, grid_size_m=2.4)
    net = LifterNet(cfg)
    grid = FineGrid(np.array([1.0, 2.0, 0.9]), person_frame(np.array([0.6, 0.8, 0.0])), cfg.grid_size_m, cfg.grid_n)
    fine = grid.local_points().reshape(12, 12, 12, 3)
    block = fine.reshape(6, 2, 6, 2, 6, 2, 3).mean(axis=(1, 3, 5))
    i, j, k = 4, 1, 5
    np.testing.assert_allclose(block[i, j, k], [net.axis[i], net.axis[j], net.axis[k]], atol=1e-6)
    world = grid.to_world(block[i, j, k])
    np.testing.assert_allclose(grid.to_local(world), block[i, j, k], atol=1e-9)
    # world points of the grid are the local points rotated about the centre, x axis towards the person
    np.testing.assert_allclose(grid.points().reshape(12, 12, 12, 3)[i, j, k], grid.to_world(fine[i, j, k]))
    np.testing.assert_allclose(grid.rotation[:, 0], [0.6, 0.8, 0.0], atol=1e-12)
    np.testing.assert_allclose(grid.rotation[:, 2], [0, 0, 1.0])


def test_closest_on_rays():
    origin = np.array([0.0, 0.0, 1.0])
    dirs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pts = np.array([[2.0, 0.3, 1.2], [-0.5, -1.0, 1.0]])
    out = closest_on_rays(pts, origin, dirs)
    np.testing.assert_allclose(out, [[2.0, 0.0, 1.0], [0.0, 0.0, 1.0]])   # behind the camera clamps to t = 0
