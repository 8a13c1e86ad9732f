"""Rotation on 3D-room pairs (parallax, lens distortion, +-90 deg): the wide rotation model, the shipped model with
its wide sweep and SIFT + RANSAC, on the same pairs at the same resolution, clean and hard (dim, blur, noise, low
texture), by |relative yaw| band.

``python -m av_pose_ros.slfm.eval_rotation3d --split dev`` decides; ``--split test`` reports (once). Dev pairs use
seed 1 (and 2 for low texture), test pairs seed 0 (and 3); both take their textures from the held-out photographs
and procedural scenes, never from the training pictures.
"""

from __future__ import annotations

import time

import numpy as np

BANDS = ((0, 30), (30, 60), (60, 90.01))
SPLIT_SEEDS = {"dev": (1, 2), "test": (0, 3)}
CONDITIONS = ("clean", "dim", "blur", "noise", "low_texture")


def _pairs(split: str, num: int, fov: float, size, cache_dir: str | None, low_texture: bool):
    """The split's pairs, rendered once and cached (rendering is most of the cost)."""
    import glob
    import os
    import pickle

    from .scenes3d import make_pairs3d

    seed = SPLIT_SEEDS[split][1 if low_texture else 0]
    path = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        stem = f"pairs3d_{split}_{seed}_{{}}_{fov:g}_{size[0]}x{size[1]}_{int(low_texture)}.pkl"
        path = os.path.join(cache_dir, stem.format(num))
        for other in sorted(glob.glob(os.path.join(cache_dir, stem.format("*")))):
            n = int(os.path.basename(other).split("_")[3])
            if n >= num:  # pairs are drawn one after the other: the first num of a longer set are the same
                with open(other, "rb") as fh:
                    d = pickle.load(fh)
                return {**d, "a": d["a"][:num], "b": d["b"][:num], "yaw": d["yaw"][:num], "k1": d["k1"][:num]}
    d = make_pairs3d(num, seed, "eval", {"width": size[0], "height": size[1], "hfov_deg": fov},
                     low_texture=low_texture)
    if path:
        with open(path, "wb") as fh:
            pickle.dump(d, fh)
    return d


def _band_stats(truth, pred, conf=None, ok=None) -> dict:
    out = {}
    ad = np.abs(np.degrees(truth))
    for lo, hi in BANDS:
        m = (ad >= lo) & (ad < hi)
        if not m.any():
            continue
        err = np.degrees(np.abs(pred[m] - truth[m]))
        row = {"n": int(m.sum()), "mae_deg": float(err.mean()), "median_deg": float(np.median(err)),
               "p90_deg": float(np.percentile(err, 90))}
        if conf is not None:
            c = conf[m]
            row["share_confident"] = float(np.mean(c >= 0.5))
            row["mae_confident_deg"] = float(err[c >= 0.5].mean()) if np.any(c >= 0.5) else None
            row["gross_unflagged"] = float(np.mean((err > 5.0) & (c >= 0.5)))  # confident and > 5 deg wrong
        if ok is not None:
            row["failures"] = float(1.0 - ok[m].mean())
        out[f"{lo}-{int(hi)}"] = row
    return out


def evaluate_rotation3d(split: str = "dev", num: int = 60, fov_deg: float = 90.0, size=(320, 240),
                        conditions=CONDITIONS, wide_model: str | None = None, shipped_sweep: bool = True,
                        cache_dir: str | None = "data_cache/slfm3d", seed: int = 0, raw_patches: bool = False) -> dict:
    """Errors (deg) per condition and yaw band for every method on the same pairs (see the module docstring)."""
    from .baselines import feature_yaw
    from .estimators import WIDE_SWEEP, RotationEstimator, model_path
    from .rotation_wide import WideRotationEstimator, WideRotationNet
    from .scenes3d import degrade

    if raw_patches:
        wide = WideRotationEstimator(WideRotationNet({"raw_patches": True}))
    else:
        wide = WideRotationEstimator.load(wide_model or model_path("slfm_rotation_wide.pt"))
    old = RotationEstimator.load(model_path("slfm_rotation.pt"), sweep=WIDE_SWEEP) if shipped_sweep else None
    result = {"split": split, "num": num, "fov_deg": fov_deg, "size": list(size), "conditions": {}}
    for cond in conditions:
        d = _pairs(split, num, fov_deg, size, cache_dir, cond == "low_texture")
        rng = np.random.default_rng([seed, 99, CONDITIONS.index(cond)])
        kind = "clean" if cond == "low_texture" else cond
        pairs = [(degrade(a, kind, rng), degrade(b, kind, rng)) for a, b in zip(d["a"], d["b"])]
        truth = d["yaw"]
        t_wide = t_sift = 0.0
        wp, wc, sp, sok, op = [], [], [], [], []
        for a, b in pairs:
            t = time.perf_counter()
            r = wide.estimate_full(a, b, fov_deg)
            t_wide += time.perf_counter() - t
            wp.append(r.yaw)
            wc.append(r.confidence)
            t = time.perf_counter()
            y, good = feature_yaw(a, b, fov_deg=fov_deg)
            t_sift += time.perf_counter() - t
            sp.append(y)
            sok.append(good)
            if old is not None:
                op.append(old.estimate(a, b, fov_deg=fov_deg))
        wp, wc, sp, sok = map(np.asarray, (wp, wc, sp, sok))
        entry = {"wide": _band_stats(truth, wp, wc), "sift": _band_stats(truth, sp, ok=sok),
                 "ms_per_pair": {"wide": 1000 * t_wide / len(pairs), "sift": 1000 * t_sift / len(pairs)}}
        if old is not None:
            entry["shipped_wide_sweep"] = _band_stats(truth, np.asarray(op))
        result["conditions"][cond] = entry
    return result


def coarse_accuracy(estimators: dict, split: str = "dev", num: int = 60, fov_deg: float = 90.0, size=(320, 240),
                    cache_dir: str | None = "data_cache/slfm3d", max_yaw_deg: float = 60.0, seed: int = 0,
                    conditions=CONDITIONS) -> dict:
    """Share of pairs (|yaw| < ``max_yaw_deg``) whose best coarse candidate is within 4 deg of the truth, per
    condition and estimator: what the learned encoder is for (the refinement fixes the rest)."""
    from .scenes3d import degrade

    out = {name: {} for name in estimators}
    for cond in conditions:
        d = _pairs(split, num, fov_deg, size, cache_dir, cond == "low_texture")
        rng = np.random.default_rng([seed, 99, CONDITIONS.index(cond)])
        kind = "clean" if cond == "low_texture" else cond
        pairs = [(degrade(a, kind, rng), degrade(b, kind, rng)) for a, b in zip(d["a"], d["b"])]
        keep = np.abs(np.degrees(d["yaw"])) < max_yaw_deg
        for name, est in estimators.items():
            hits = []
            for (a, b), y, k in zip(pairs, d["yaw"], keep):
                if k:
                    cands = est.coarse(est.grey(a), est.grey(b), fov_deg)
                    hits.append(bool(cands) and abs(np.degrees(cands[0][0] - y)) < 4.0)
            out[name][cond] = float(np.mean(hits))
    return out


def format_report(res: dict) -> str:
    lines = [f"Rotation on 3D-room pairs ({res['split']}, {res['num']} pairs per condition, "
             f"{res['size'][0]}x{res['size'][1]}, {res['fov_deg']:g}-deg camera), MAE / median deg"]
    head = f"  {'condition':<12} {'band':<6} {'n':>3} {'wide':>13} {'conf>=0.5':>9} {'MAE conf':>8} " \
           f"{'sift':>13} {'fail':>5}"
    has_old = any("shipped_wide_sweep" in e for e in res["conditions"].values())
    if has_old:
        head += f" {'shipped+wide':>13}"
    lines.append(head)
    for cond, e in res["conditions"].items():
        for band, w in e["wide"].items():
            s = e["sift"][band]
            mc = "-" if w["mae_confident_deg"] is None else f"{w['mae_confident_deg']:.2f}"
            row = (f"  {cond:<12} {band:<6} {w['n']:>3} {w['mae_deg']:6.2f}/{w['median_deg']:<6.2f} "
                   f"{100 * w['share_confident']:8.0f}% {mc:>8} {s['mae_deg']:6.2f}/{s['median_deg']:<6.2f} "
                   f"{100 * s['failures']:4.0f}%")
            if has_old:
                o = e["shipped_wide_sweep"][band]
                row += f" {o['mae_deg']:6.2f}/{o['median_deg']:<6.2f}"
            lines.append(row)
        ms = e["ms_per_pair"]
        lines.append(f"  {cond:<12} time per pair: wide {ms['wide']:.0f} ms, sift {ms['sift']:.0f} ms")
    return "\n".join(lines)


def add_arguments(ap) -> None:
    ap.add_argument("--split", default="dev", choices=sorted(SPLIT_SEEDS), help="dev pairs decide, test reports")
    ap.add_argument("--num", type=int, default=60, help="pairs per condition")
    ap.add_argument("--hfov", type=float, default=90.0, help="camera horizontal field of view (deg)")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--wide-model", default=None, help="slfm_rotation_wide.pt (default: the shipped one)")
    ap.add_argument("--raw-patches", action="store_true", help="coarse stage on raw patches (nothing learned)")
    ap.add_argument("--no-shipped", action="store_true", help="skip the shipped model with its wide sweep")
    ap.add_argument("--cache-dir", default="data_cache/slfm3d")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")


def run(args) -> int:
    import json

    import torch

    torch.set_num_threads(args.threads)
    w, h = (int(x) for x in args.size.lower().split("x"))
    res = evaluate_rotation3d(args.split, args.num, args.hfov, (w, h), tuple(args.conditions), args.wide_model,
                              not args.no_shipped, args.cache_dir, raw_patches=args.raw_patches)
    print(json.dumps(res, indent=2) if args.json else format_report(res))
    return 0


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

