"""Lifting speed per frame on 2 CPU threads: full lifter (coarse + fine encodings + CNN, run with the model's
inference recipe) with its split, the same network run once without the recipe, and the non-learned baselines,
all measured in the same run (target: full lifter <= 100 ms)."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from av_pose_ros.lifting import Lifter  # noqa: E402
from av_pose_ros.lifting.baselines import tof, vision_only  # noqa: E402
from av_pose_ros.lifting.dataset import simulate_sample  # noqa: E402
from av_pose_ros.lifting.lifter import Inference  # noqa: E402
from av_pose_ros.sim.render import Simulator  # noqa: E402
from av_pose_ros.sim.scenario import load_scenario  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "lifter.pt"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--frames", type=int, default=3, help="different simulated frames to time")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lifter = Lifter.load(args.model, threads=args.threads)
    one_pass = Lifter(lifter.net, threads=args.threads, info=lifter.info, inference=Inference())
    scenario, sim = load_scenario("default"), Simulator()
    rows = {k: [] for k in ("coarse + fine encodings", "CNN (3 stages) + soft-argmax", "CNN on the cube and its mirror",
                            "full lifter (predict)", "one pass, no mirror (previous)",
                            "tof baseline", "vision_only baseline")}
    for f in range(args.frames):
        s = simulate_sample(scenario, sim, "test", 777, f)
        a = (s["keypoints"], s["K"], s["world_from_camera"], s["kernels"], s["speakers"], s["mics"], float(s["fs"]))
        c = float(s["c"])
        _, rays, audio = lifter.prepare(*a, speed_of_sound=c)
        steps = {"coarse + fine encodings": lambda a=a, c=c: lifter.prepare(*a, speed_of_sound=c),
                 "CNN (3 stages) + soft-argmax": lambda r=rays, u=audio: lifter.run_network(r, u),
                 "CNN on the cube and its mirror": lambda r=rays, u=audio: lifter.run_network(r, u, mirror=True),
                 "full lifter (predict)": lambda a=a, c=c: lifter.predict(*a, speed_of_sound=c),
                 "one pass, no mirror (previous)": lambda a=a, c=c: one_pass.predict(*a, speed_of_sound=c),
                 "tof baseline": lambda a=a, c=c: tof(*a, speed_of_sound=c),
                 "vision_only baseline": lambda a=a: vision_only(*a[:3])}
        for name, fn in steps.items():
            rows[name].append(median_ms(fn, args.repeats))
    cfg = lifter.config
    print(f"\ninference recipe: {lifter.inference}")
    print(f"Lifter per frame, median of {args.repeats} runs x {args.frames} frames, torch threads {args.threads} "
          f"(grid {cfg.grid_n}^3 over {cfg.grid_size_m} m, width {cfg.width}, {cfg.stages} stages, "
          f"{sum(p.numel() for p in lifter.net.parameters())} parameters)")
    full = float(np.median(rows["full lifter (predict)"]))
    print(f"{'step':34s} {'ms':>8s}  {'x full lifter':>13s}")
    for name, values in rows.items():
        ms = float(np.median(values))
        print(f"{name:34s} {ms:8.1f}  {ms / full:13.2f}")
    print(f"target: full lifter <= 100 ms -> {'met' if full <= 100 else 'MISSED'} ({full:.0f} ms; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores during the run)")


if __name__ == "__main__":
    main()
