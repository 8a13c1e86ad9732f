"""Per-frame cost of the lifter's refusal rule and calibration (what lifter_node adds to every lift), against the
lift itself, on real (simulated val) frames of the default family. Medians over frames and repeats, one thread.

    python benchmarks/bench_refusal.py --frames 20 --repeat 5
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np


def _time_frame(lifter, a: tuple, c: float, repeat: int) -> tuple[float, float]:
    """(best ms of Lifter.predict, best ms of the refusal rule + calibration on its outputs) for one frame."""
    from av_pose_ros.lifting.calibration import assess_outputs

    out = lifter.lift(*a, speed_of_sound=c)
    lift = min(timeit.repeat(lambda: lifter.predict(*a, speed_of_sound=c), number=1, repeat=repeat))
    check = min(timeit.repeat(lambda: assess_outputs(lifter, a, c, out), number=1, repeat=repeat))
    return 1000 * lift, 1000 * check


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/lifter.pt")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    import torch

    from av_pose_ros.lifting import Lifter
    from av_pose_ros.lifting import dataset as ds
    from av_pose_ros.lifting.evaluate import family_path
    from av_pose_ros.lifting.features import LiftingInputError

    torch.set_num_threads(1)
    lifter = Lifter.load(args.model, threads=1)
    data = ds.generate(family_path(args.scenario), "val", 0, args.frames, workers=1, progress=False)
    lift_ms, check_ms = [], []
    for i in range(args.frames):
        s = ds.sample_at(data, i)
        a = (s["keypoints"].astype(float), s["K"].astype(float), s["world_from_camera"].astype(float), s["kernels"],
             s["speakers"].astype(float), s["mics"].astype(float), float(s["fs"]))
        c = float(s["c"])
        try:
            lifter.predict(*a, speed_of_sound=c)
        except LiftingInputError:
            continue
        lift, check = _time_frame(lifter, a, c, args.repeat)
        lift_ms.append(lift)
        check_ms.append(check)
    print(f"{len(lift_ms)} frames of {args.scenario} (val), best of {args.repeat} per frame, median over frames: "
          f"Lifter.predict {np.median(lift_ms):.1f} ms, refusal + calibration {np.median(check_ms):.2f} ms "
          f"(+{100 * np.median(check_ms) / np.median(lift_ms):.0f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
