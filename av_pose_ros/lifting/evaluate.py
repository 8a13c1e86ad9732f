"""``av-pose eval-lifter``: the CNN and both baselines on the same simulated test samples, overall and by band.

Test samples come from the ``test`` stream of the dataset generator, which never shares a draw with the
``train``/``val`` streams the model was trained on, whatever seeds are used. A frame the lifter refuses (too few
keypoints) still counts: every method then predicts all joints at the box-centre ray at 2.5 m (a deliberately
poor guess), so failures raise the errors instead of vanishing from them.
"""

from __future__ import annotations

import time

import numpy as np

from av_pose_ros.primitives.skeleton import BONE_INDICES, LEFT_HIP, LEFT_WRIST, RIGHT_HIP, RIGHT_WRIST

from . import dataset as ds
from .baselines import tof, vision_only
from .features import LiftingInputError, box_centre_ray
from .lifter import snap

METHODS = ("cnn", "tof", "vision_only")
STATURE_BANDS = ((0.0, 1.4, "<1.4 m"), (1.4, 1.8, "1.4-1.8 m"), (1.8, 9.0, ">1.8 m"))
TARGET_BANDS = (("stature", 1.0, 1.3, "children 1.0-1.3 m"), ("distance", 3.0, 4.0, "far 3-4 m"))


def distance_bands(distances: np.ndarray) -> list[tuple[float, float, str]]:
    lo, hi = int(np.floor(np.min(distances))), int(np.ceil(np.max(distances)))
    return [(float(a), float(a + 1), f"{a}-{a + 1} m") for a in range(lo, max(hi, lo + 1))]


def _default_guess(keypoints, K, world_from_camera) -> np.ndarray:
    try:
        origin, central, _, _ = box_centre_ray(keypoints, K, world_from_camera)
    except LiftingInputError:
        origin, central = world_from_camera[:3, 3], world_from_camera[:3, 2]
    return np.repeat((origin + 2.5 * central)[None], 17, axis=0)


def metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """MPJPE, root (mid-hip) and wrist (mean of both) errors in mm and PCK@100mm of (N, 17, 3) arrays."""
    err = np.linalg.norm(pred - true, axis=-1)
    mid = [LEFT_HIP, RIGHT_HIP]
    root = np.linalg.norm(pred[:, mid].mean(axis=1) - true[:, mid].mean(axis=1), axis=-1)
    return {"mpjpe_mm": float(1000 * err.mean()), "root_mm": float(1000 * root.mean()),
            "wrist_mm": float(1000 * err[:, [LEFT_WRIST, RIGHT_WRIST]].mean()),
            "pck100": float(np.mean(err < 0.1)), "n": int(len(pred))}


def evaluate(scenario: str, num: int, seed: int, model: str = "models/lifter.pt", cache_root=None,
             workers: int | None = None, progress: bool = True, lifter=None) -> dict:
    """Run every method on ``num`` test samples; returns predictions, metadata and the summary dict."""
    from tqdm import tqdm

    from .lifter import Lifter

    data = ds.generate(scenario, "test", seed, num, cache_root, workers, progress)
    lifter = lifter or Lifter.load(model)
    preds = {m: np.zeros((num, 17, 3)) for m in (*METHODS, "cnn_no_snap")}
    failures = {m: 0 for m in preds}
    times = {m: [] for m in METHODS}
    for i in tqdm(range(num), desc="evaluating", disable=not progress):
        s = ds.sample_at(data, i)
        args = (s["keypoints"].astype(float), s["K"].astype(float), s["world_from_camera"].astype(float),
                s["kernels"], s["speakers"].astype(float), s["mics"].astype(float), float(s["fs"]))
        c = float(s["c"])
        guess = _default_guess(*args[:3])
        t0 = time.perf_counter()
        try:       # the network runs once; "cnn" is its output moved onto the rays, "cnn_no_snap" the raw one
            grid, rays, audio = lifter.prepare(*args, speed_of_sound=c)
            raw = grid.to_world(lifter.run_network(rays, audio)[0])
            cnn = {"cnn_no_snap": raw, "cnn": snap(raw, *args[:3]) if lifter.snap_to_rays else raw}
        except LiftingInputError:
            cnn = {}
        times["cnn"].append(time.perf_counter() - t0)
        for name in preds:
            t0 = time.perf_counter()
            try:
                if name in ("cnn", "cnn_no_snap"):
                    if name not in cnn:
                        raise LiftingInputError("lifter refused the frame")
                    out = cnn[name]
                elif name == "tof":
                    out = tof(*args, speed_of_sound=c)
                else:
                    out = vision_only(*args[:3])
                if not np.all(np.isfinite(out)):
                    raise LiftingInputError("non-finite output")
            except LiftingInputError:
                out, failures[name] = guess, failures[name] + 1
            if name in ("tof", "vision_only"):
                times[name].append(time.perf_counter() - t0)
            preds[name][i] = out
    truth = data["joints"].astype(float)
    stature, distance = data["stature"].astype(float), data["distance"].astype(float)
    summary = {"num": int(num), "scenario": str(scenario), "seed": int(seed),
               "methods": {m: {**metrics(preds[m], truth), "failures": failures[m],
                               "median_ms": float(1000 * np.median(times[m]))} for m in METHODS},
               "variants": {"cnn_no_snap": metrics(preds["cnn_no_snap"], truth)}}
    bands = {"stature": {}, "distance": {}, "targets": {}}
    for lo, hi, label in STATURE_BANDS:
        sel = (stature >= lo) & (stature < hi)
        if sel.any():
            bands["stature"][label] = {m: metrics(preds[m][sel], truth[sel]) for m in METHODS}
    for lo, hi, label in distance_bands(distance):
        sel = (distance >= lo) & (distance < hi)
        if sel.any():
            bands["distance"][label] = {m: metrics(preds[m][sel], truth[sel]) for m in METHODS}
    for key, lo, hi, label in TARGET_BANDS:
        values = stature if key == "stature" else distance
        sel = (values >= lo) & (values <= hi)
        if sel.any():
            bands["targets"][label] = {m: metrics(preds[m][sel], truth[sel]) for m in METHODS}
    summary["bands"] = bands
    return {"summary": summary, "preds": preds, "truth": truth, "stature": stature, "distance": distance,
            "data": data}


def _table(rows: dict, title: str) -> str:
    lines = [title, f"  {'method':12s} {'n':>5s} {'MPJPE mm':>9s} {'root mm':>8s} {'wrist mm':>9s} {'PCK@100':>8s}"]
    for m, r in rows.items():
        lines.append(f"  {m:12s} {r['n']:5d} {r['mpjpe_mm']:9.1f} {r['root_mm']:8.1f} {r['wrist_mm']:9.1f} "
                     f"{r['pck100']:8.3f}")
    return "\n".join(lines)


def format_tables(result: dict) -> str:
    s = result["summary"]
    out = [_table(s["methods"], f"Lifting on {s['scenario']} ({s['num']} test samples, seed {s['seed']})")]
    fails = ", ".join(f"{m} {r['failures']}" for m, r in s["methods"].items())
    speed = ", ".join(f"{m} {r['median_ms']:.0f} ms" for m, r in s["methods"].items())
    out.append(f"  (failures: {fails}; median time per frame: {speed})")
    v = s["variants"]["cnn_no_snap"]
    out.append(f"  variant cnn_no_snap (soft-argmax without moving joints onto their rays): MPJPE "
               f"{v['mpjpe_mm']:.1f} mm, wrist {v['wrist_mm']:.1f} mm")
    for kind in ("stature", "distance", "targets"):
        for label, rows in s["bands"][kind].items():
            out.append(_table(rows, f"{kind} {label}"))
    cnn = s["methods"]["cnn"]
    checks = [("CNN MPJPE <= 80 mm", cnn["mpjpe_mm"] <= 80), ("CNN wrist <= 80 mm", cnn["wrist_mm"] <= 80),
              ("CNN >= 3x better than vision_only", 3 * cnn["mpjpe_mm"] <= s["methods"]["vision_only"]["mpjpe_mm"]),
              ("CNN better than tof", cnn["mpjpe_mm"] < s["methods"]["tof"]["mpjpe_mm"])]
    for label, rows in s["bands"]["targets"].items():
        checks.append((f"CNN {label} within 1.5x overall", rows["cnn"]["mpjpe_mm"] <= 1.5 * cnn["mpjpe_mm"]))
    out.append("Targets: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks))
    return "\n\n".join(out)


def plot_results(result: dict, path: str, samples: int = 3) -> None:
    """Predicted vs true skeletons (side and front views) for a few samples, and MPJPE by distance per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds, truth, distance = result["preds"], result["truth"], result["distance"]
    order = np.argsort(distance)
    picks = order[np.linspace(0, len(order) - 1, samples).astype(int)]
    fig = plt.figure(figsize=(4.2 * samples, 8.5))
    colours = {"truth": "k", "cnn": "tab:blue", "tof": "tab:green", "vision_only": "tab:red"}
    for col, i in enumerate(picks):
        ax = fig.add_subplot(2, samples, col + 1)
        for name, joints in (("truth", truth[i]), *((m, preds[m][i]) for m in METHODS)):
            for a, b in BONE_INDICES:
                ax.plot(joints[[a, b], 0], joints[[a, b], 2], color=colours[name], lw=2 if name == "truth" else 1.2,
                        label=name if (a, b) == BONE_INDICES[0] else None)
        ax.set_title(f"sample {i}: {result['stature'][i]:.2f} m tall, {distance[i]:.1f} m away", fontsize=9)
        ax.set_xlabel("x forward (m)")
        ax.set_ylabel("z up (m)")
        ax.set_aspect("equal", adjustable="datalim")
        if col == 0:
            ax.legend(fontsize=8)
    ax = fig.add_subplot(2, 1, 2)
    edges = np.linspace(np.floor(distance.min() * 2) / 2, np.ceil(distance.max() * 2) / 2, 8)
    centres = 0.5 * (edges[1:] + edges[:-1])
    for m in METHODS:
        err = 1000 * np.linalg.norm(preds[m] - truth, axis=-1).mean(axis=1)
        curve = [err[(distance >= a) & (distance < b)].mean() if np.any((distance >= a) & (distance < b)) else np.nan
                 for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(centres, curve, "o-", color=colours[m], label=m)
    ax.set_xlabel("distance camera -> person (m)")
    ax.set_ylabel("MPJPE (mm)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
