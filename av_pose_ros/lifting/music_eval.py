"""``av-pose eval-music-frontend``: the shipped lifter fed each music front end's kernel vs the chirp probe's kernel
of the same scenes (same rooms, people and detections), overall and by music level.

Methods: ``continuous`` (the plain continuous-mode kernel, as the pipeline gives it today), every front-end model
given (``name=path``), ``oracle_uniform`` is not needed (a front end with equal weights *is* ``continuous``), and
``chirp`` (the chirp probe in the same room, same pose; one kernel per pose, counted once per music frame of it so
that every method is scored on the same frames). A frame the pipeline refused (no kernel) or the lifter could not
lift is counted in ``failed`` and scored at the vision-only fallback's pose (what lifter_node publishes then,
``--fallback``), or without a fallback at the evaluation's default guess, as ``eval-lifter`` scores refusals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .evaluate import _default_guess, metrics

LEVEL_BANDS_DB = ((16.0, 22.0), (22.0, 28.0), (28.0, 34.0), (34.0, 40.0))


def _pose_args(g: dict, pose: int) -> tuple:
    return (g["pose_keypoints"][pose].astype(float), g["pose_K"][pose].astype(float),
            g["pose_world_from_camera"][pose].astype(float))


def _lift(lifter, g: dict, pose: int, kernels: np.ndarray | None, fallback=None):
    """(joints (17, 3), failed?) of the lifter on one pose of a group with the given kernels; a failed frame gets
    the ``fallback``'s pose (a ``VisionFallback``) when it has one, else the default guess."""
    from .features import LiftingInputError

    kp, K, wfc = _pose_args(g, pose)
    if kernels is not None and np.any(kernels):
        try:
            joints, _ = lifter.predict(kp, K, wfc, kernels, g["pose_speakers"][pose].astype(float),
                                       g["pose_mics"][pose].astype(float), float(g["pose_fs"][pose]),
                                       speed_of_sound=float(g["pose_c"][pose]))
            if np.all(np.isfinite(joints)):
                return joints, False
        except LiftingInputError:
            pass
    if fallback is not None:
        try:
            return fallback.pose(kp, K, wfc)[0], True
        except LiftingInputError:
            pass
    return _default_guess(kp, K, wfc), True


def frontend_kernels(frontend, g: dict, i: int) -> np.ndarray | None:
    if not g["ok"][i]:
        return None
    if frontend is None:
        return g["kernels"][i]
    return frontend.apply(g["analytic"][i], g["features"][i])


def evaluate_groups(groups: list[dict], frontends: dict, lifter, progress: bool = True,
                    music_lifter=None, fallback=None) -> dict:
    """Predictions of every method on every frame of ``groups``: {method: (N, 17, 3)}, failures, truth, levels.

    ``music_lifter`` (a ``Lifter`` fine-tuned on music kernels) adds two methods: ``music_lifter`` on the plain
    continuous kernel and ``music_lifter_chirp`` on the chirp kernel of the same scene (does it still lift chirps?)."""
    from tqdm import tqdm

    extra = ["music_lifter", "music_lifter_chirp"] if music_lifter is not None else []
    methods = ["continuous", *frontends, *extra, "chirp"]
    preds = {m: [] for m in methods}
    failed = {m: [] for m in methods}
    truth, level, pose_of = [], [], []
    for g in tqdm(groups, desc="evaluating music groups", disable=not progress):
        chirp = {p: _lift(lifter, g, p, g["chirp"][p] if g["chirp_ok"][p] else None, fallback) for p in (0, 1)}
        if music_lifter is not None:
            chirp_m = {p: _lift(music_lifter, g, p, g["chirp"][p] if g["chirp_ok"][p] else None, fallback)
                       for p in (0, 1)}
        for i in range(len(g["ok"])):
            pose = int(g["pose_id"][i])
            for name, fe in [("continuous", None), *frontends.items()]:
                joints, bad = _lift(lifter, g, pose, frontend_kernels(fe, g, i), fallback)
                preds[name].append(joints)
                failed[name].append(bad)
            if music_lifter is not None:
                music = _lift(music_lifter, g, pose, frontend_kernels(None, g, i), fallback)
                for name, (joints, bad) in (("music_lifter", music), ("music_lifter_chirp", chirp_m[pose])):
                    preds[name].append(joints)
                    failed[name].append(bad)
            preds["chirp"].append(chirp[pose][0])
            failed["chirp"].append(chirp[pose][1])
            truth.append(g["pose_joints"][pose].astype(float))
            level.append(float(g["level_db"]))
            pose_of.append(pose)
    return {"preds": {m: np.array(v) for m, v in preds.items()}, "failed": {m: np.array(v) for m, v in failed.items()},
            "truth": np.array(truth), "level_db": np.array(level), "pose": np.array(pose_of)}


def summarise(result: dict) -> dict:
    """{"methods": {m: metrics + failed}, "by_level": {band: {m: metrics}}}."""
    truth, level = result["truth"], result["level_db"]
    out = {"methods": {}, "by_level": {}, "frames": int(len(truth))}
    for m, pred in result["preds"].items():
        out["methods"][m] = {**metrics(pred, truth), "failed": float(np.mean(result["failed"][m]))}
    for lo, hi in LEVEL_BANDS_DB:
        keep = (level >= lo) & (level < hi if hi < LEVEL_BANDS_DB[-1][1] else level <= hi)
        if keep.any():
            out["by_level"][f"{lo:.0f}-{hi:.0f} dB"] = {m: {**metrics(p[keep], truth[keep]),
                                                            "failed": float(np.mean(result["failed"][m][keep]))}
                                                        for m, p in result["preds"].items()}
    chirp = out["methods"]["chirp"]["mpjpe_mm"]
    for row in out["methods"].values():
        row["vs_chirp"] = row["mpjpe_mm"] / chirp if chirp > 0 else float("nan")
    return out


def format_summary(summary: dict, title: str) -> str:
    lines = [title, f"{'method':<22}{'MPJPE mm':>10}{'wrist mm':>10}{'PCK@100':>9}{'failed':>8}{'x chirp':>9}"]
    for m, r in summary["methods"].items():
        lines.append(f"{m:<22}{r['mpjpe_mm']:>10.1f}{r['wrist_mm']:>10.1f}{r['pck100']:>9.2f}{r['failed']:>8.2f}"
                     f"{r['vs_chirp']:>9.2f}")
    lines.append("")
    lines.append("MPJPE (mm) by music level (room-echo SNR over the noise floor; frames)")
    methods = list(summary["methods"])
    lines.append(f"{'level':<14}" + "".join(f"{m[:13]:>14}" for m in methods) + f"{'frames':>8}")
    for band, rows in summary["by_level"].items():
        lines.append(f"{band:<14}" + "".join(f"{rows[m]['mpjpe_mm']:>14.1f}" for m in methods)
                     + f"{rows[methods[0]]['n']:>8d}")
    return "\n".join(lines)


def plot(summary: dict, path: str) -> None:
    """Two panels: MPJPE and wrist error per method; MPJPE per method against the music level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(methods))
    axes[0].bar(x - 0.2, [summary["methods"][m]["mpjpe_mm"] for m in methods], 0.4, label="MPJPE")
    axes[0].bar(x + 0.2, [summary["methods"][m]["wrist_mm"] for m in methods], 0.4, label="wrist")
    axes[0].axhline(80, color="grey", lw=0.8, ls="--", label="80 mm target")
    axes[0].set_xticks(x, methods, rotation=25, ha="right")
    axes[0].set_ylabel("error (mm)")
    axes[0].set_title(f"lifter fed each front end ({summary['frames']} frames)")
    axes[0].legend()
    bands = list(summary["by_level"])
    for m in methods:
        axes[1].plot(bands, [summary["by_level"][b][m]["mpjpe_mm"] for b in bands], marker="o", label=m)
    axes[1].set_xlabel("music level (room-echo SNR over noise)")
    axes[1].set_ylabel("MPJPE (mm)")
    axes[1].set_title("accuracy against loudness")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_frontends(specs: list[str]) -> dict:
    from .music_frontend import load

    out = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        name = name or Path(path).stem
        out[name] = load(path)[0]
    return out


def run(args) -> int:
    import torch

    from .fallback import VisionFallback
    from .lifter import Lifter
    from .music_dataset import generate, load_groups

    torch.set_num_threads(args.threads)
    if args.groups_dir:
        groups = load_groups(args.groups_dir, args.groups)
    else:
        groups = generate(args.scenario, args.split, args.data_seed, args.groups, root=Path(args.cache) if args.cache
                          else None, workers=args.workers, synthetic=args.synthetic_music,
                          progress=not args.no_progress)
    frontends = parse_frontends(args.frontend)
    music_lifter = Lifter.load(args.lifter_music, threads=args.threads) if args.lifter_music else None
    fallback = VisionFallback.load(args.fallback, threads=args.threads) if args.fallback else None
    result = evaluate_groups(groups, frontends, Lifter.load(args.model, threads=args.threads),
                             progress=not args.no_progress, music_lifter=music_lifter, fallback=fallback)
    summary = summarise(result)
    summary.update(split=args.split, groups=len(groups), lifter=args.model, lifter_music=args.lifter_music,
                   fallback=args.fallback or None,
                   data_seed=args.data_seed, groups_dir=args.groups_dir,
                   tracks=sorted({str(g["track"]) for g in groups}))
    print(format_summary(summary, f"{args.split}: {len(groups)} groups, {summary['frames']} frames, tracks "
                                  f"{', '.join(summary['tracks'])}"))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    if args.plot:
        plot(summary, args.plot)
        print(f"plot written to {args.plot}")
    return 0
