"""SLfM benchmarks: median time per estimate of the two shipped models and of the two classical baselines measured
in the same run on 2 threads (rotation: SLfM model vs SIFT + RANSAC on a 320x240 pair; azimuth: SLfM model vs
GCC-PHAT on a 1 s binaural clip at 16 kHz). Prints medians and the ratio model / baseline."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import cv2
import numpy as np

THREADS = 2


def limit_threads() -> None:
    cv2.setNumThreads(THREADS)
    import torch

    torch.set_num_threads(THREADS)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (lazy initialisation, caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    limit_threads()

    from av_pose_ros.slfm import AzimuthEstimator, RotationEstimator
    from av_pose_ros.slfm.baselines import feature_yaw, gcc_phat_azimuth
    from av_pose_ros.slfm.estimators import model_path
    from av_pose_ros.slfm.images import load_real_photos, sample_pair
    from av_pose_ros.slfm.rooms import render_view, sample_room
    from av_pose_ros.slfm.sources import music_like

    rng = np.random.default_rng(0)
    img_a, img_b = sample_pair(load_real_photos("eval")[0], np.deg2rad(12.0), rng, 320, 240)
    cfg = sample_room(rng, rt60_range=(0.3, 0.5))
    clip = render_view(cfg, 0.3, music_like(16000 + 11200, rng), rng)[:, :16000]

    rot = RotationEstimator.load(model_path("slfm_rotation.pt"), device="cpu")
    azm = AzimuthEstimator.load(model_path("slfm_azimuth.pt"), device="cpu")
    rows = [
        ("rotation model (320x240 pair)", median_time(lambda: rot.estimate(img_a, img_b), args.repeats),
         "sift+ransac", median_time(lambda: feature_yaw(img_a, img_b), args.repeats)),
        ("azimuth model (1 s, 16 kHz)", median_time(lambda: azm.estimate(clip, 16000), args.repeats),
         "gcc-phat", median_time(lambda: gcc_phat_azimuth(clip), args.repeats)),
    ]
    print(f"SLfM per-estimate medians on {THREADS} threads ({args.repeats} repeats)")
    for name, t_model, base, t_base in rows:
        print(f"  {name:<32} {1e3 * t_model:8.2f} ms   {base:<12} {1e3 * t_base:8.2f} ms   "
              f"ratio model/baseline {t_model / t_base:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
