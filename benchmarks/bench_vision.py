"""Vision benchmarks: detector frames per second on 640x480 and ray-encoding time for 17 joints on a 32^3 grid.

Prints medians over ``--repeats`` and, for the encoding, the ratio against a naive per-voxel Python loop measured in
the same run (on a subset of voxels, extrapolated linearly to the full grid). Targets: >= 15 frames/s, <= 5 ms.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import cv2
import numpy as np

from av_pose_ros.primitives.geometry import LINK_FROM_OPTICAL, invert_transform, make_transform
from av_pose_ros.vision.rays import MIN_CONFIDENCE, ray_encoding

THREADS = 2
DETECTION_TARGET_FPS = 15.0
ENCODING_TARGET_MS = 5.0
K = np.array([[525.0, 0.0, 320.0], [0.0, 525.0, 240.0], [0.0, 0.0, 1.0]])


def limit_threads() -> None:
    cv2.setNumThreads(THREADS)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(THREADS)


def photo_640x480() -> np.ndarray:
    """scikit-image's astronaut (512x512) scaled to 480 rows and centred on a 640x480 grey canvas."""
    from skimage.data import astronaut

    canvas = np.full((480, 640, 3), 128, np.uint8)
    canvas[:, 80:560] = cv2.resize(astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    return canvas


def bench_detector(repeats: int, frames: int) -> dict[str, float]:
    from av_pose_ros.vision.keypoints import PoseDetector

    image = photo_640x480()
    fps = {}
    for tracking in (False, True):
        with PoseDetector(tracking=tracking) as detector:
            assert detector.detect(image) is not None, "the benchmark photo must contain a detectable person"
            per_repeat = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(frames):
                    detector.detect(image)
                per_repeat.append(frames / (time.perf_counter() - start))
        fps["tracking" if tracking else "static"] = float(np.median(per_repeat))
    return fps


def encoding_inputs(rng: np.random.Generator):
    """A 32^3 grid filling a 2 m cube 3 m in front of a camera 1.2 m up, and 17 random keypoints."""
    axis = np.linspace(-1.0, 1.0, 32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3) + [3.0, 0.0, 1.0]
    world_from_camera = make_transform(translation=[0.0, 0.0, 1.2]) @ LINK_FROM_OPTICAL
    keypoints = np.column_stack([rng.uniform(0, 640, 17), rng.uniform(0, 480, 17), rng.uniform(0.3, 1.0, 17)])
    return keypoints, world_from_camera, grid


def naive_encoding(keypoints, world_from_camera, points, sigma_px, width=640, height=480):
    """The definition written as loops over voxels and joints: the baseline for the speed ratio."""
    camera_from_world = invert_transform(world_from_camera)
    out = np.zeros((len(keypoints), len(points)))
    for i, point in enumerate(points):
        x, y, z = camera_from_world[:3, :3] @ point + camera_from_world[:3, 3]
        if z <= 1e-3:
            continue
        u, v = K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]
        if not (0 <= u < width and 0 <= v < height):
            continue
        for j, (ku, kv, c) in enumerate(keypoints):
            if c > 0:
                out[j, i] = c * np.exp(-((u - ku) ** 2 + (v - kv) ** 2) * max(c, MIN_CONFIDENCE) / (2 * sigma_px**2))
    return out


def bench_encoding(repeats: int, inner: int, naive_voxels: int) -> dict[str, float]:
    keypoints, world_from_camera, grid = encoding_inputs(np.random.default_rng(0))
    sigma = 8.0
    ray_encoding(keypoints, K, world_from_camera, grid, sigma, (640, 480))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            encoding = ray_encoding(keypoints, K, world_from_camera, grid, sigma, (640, 480))
        times.append((time.perf_counter() - start) / inner)
    vectorised_ms = 1e3 * float(np.median(times))

    subset = grid[:: len(grid) // naive_voxels][:naive_voxels]
    naive_times = []
    for _ in range(max(1, repeats // 2)):
        start = time.perf_counter()
        reference = naive_encoding(keypoints, world_from_camera, subset, sigma)
        naive_times.append(time.perf_counter() - start)
    naive_ms = 1e3 * float(np.median(naive_times)) * len(grid) / len(subset)
    check = ray_encoding(keypoints, K, world_from_camera, subset, sigma, (640, 480))
    assert np.allclose(check, reference, rtol=1e-4, atol=1e-6), "vectorised and naive encodings disagree"
    assert encoding.shape == (17, 32**3)
    return {"vectorised_ms": vectorised_ms, "naive_ms": naive_ms, "naive_voxels": len(subset)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; medians are reported")
    parser.add_argument("--frames", type=int, default=20, help="detector frames per repeat")
    parser.add_argument("--inner", type=int, default=20, help="encodings per repeat")
    parser.add_argument("--naive-voxels", type=int, default=1024, help="voxels timed for the naive baseline")
    parser.add_argument("--skip-detector", action="store_true", help="only time the ray encoding")
    args = parser.parse_args()
    limit_threads()

    encoding = bench_encoding(args.repeats, args.inner, args.naive_voxels)
    print(f"ray encoding, 17 joints x 32^3 voxels: {encoding['vectorised_ms']:.2f} ms median "
          f"(target <= {ENCODING_TARGET_MS} ms) | naive loop {encoding['naive_ms']:.0f} ms "
          f"(timed on {encoding['naive_voxels']} voxels, extrapolated) | speed-up "
          f"{encoding['naive_ms'] / encoding['vectorised_ms']:.0f}x")
    if not args.skip_detector:
        fps = bench_detector(args.repeats, args.frames)
        for mode, value in fps.items():
            print(f"detector 640x480 {mode:8s}: {value:.1f} frames/s median "
                  f"(target >= {DETECTION_TARGET_FPS}, {THREADS} threads for OpenCV/torch)")


if __name__ == "__main__":
    main()
