"""``av-pose eval-lifter``: the CNN, its baselines and its audio ablations on the same simulated frames.

Methods (``summary["methods"]``): ``cnn`` (the shipped lifter), ``tof`` (non-learned time of flight),
``vision_only`` (a 1.7 m person assumed) and ``vision_learned`` (the same network and recipe without the audio
input, ``models/lifter_vision.pt``). Ablations of the CNN (``summary["ablations"]``), on the same grid the CNN
used (the coarse locator still heard the true kernels, so these measure what the network itself takes from
sound): ``audio_shuffled`` (every pair's kernel taken from another frame of the same run) and ``audio_zero``.
``variants`` adds ``cnn_no_snap`` (no snapping onto the rays) and ``audio_shuffled_end_to_end`` (the whole lifter,
coarse locator included, fed the other frame's kernels).

Streams (``dataset.sample_rng``): ``test`` (the default) never shares a draw with ``train``/``val``, whatever seeds
are used. Decisions (architecture, hyper-parameters, checkpoints, calibration, thresholds) are made on ``val``
(``--split val``); ``test`` gives the final figures, once.

A frame a method cannot lift (too few keypoints; no kernel for the audio methods) is *flagged*: it still counts in
the errors, with every joint at the box-centre ray at 2.5 m (a deliberately poor guess), so refusals raise the
errors instead of vanishing from them. The CNN's frames are also flagged when its refusal rule (``refusal``,
thresholds stored in the model by ``calibration``; the rule lifter_node applies) puts them outside what it can
measure; they keep the CNN's pose in the errors. A frame the CNN cannot lift but ``vision_learned`` can (no usable
kernel) is scored, flagged, at the vision-only fallback's pose: what lifter_node publishes then (``fallback``);
``fallback_fraction``, ``not_published_fraction`` (nothing publishable: too few keypoints) and every method's
``mpjpe_published_mm`` / ``wrist_published_mm`` (over the frames the system published a pose for, the same frames
for every method) say how each frame was published and what it cost. ``flagged_fraction`` and the errors over the
unflagged frames (``mpjpe_unflagged_mm``, ``wrist_unflagged_mm``) are reported beside them. ``methods.cnn`` also
reports its calibration on these frames (``calibration``: Brier score of the confidence against "joint error < 0.1
m" and the base rate's, 1- and 2-sigma coverage of the covariance as defined in ``calibration``), the refusal checks
that fired (``refusal_reasons``) and ``beyond_range`` (frames whose person stands beyond the kernel window's reach,
and the share of them flagged).

``--suite`` runs every family of ``FAMILIES`` (one scenario file each, ``config/scenarios/``), each on its own
frames with every method, and prints one table, a bar chart and ``{"families": {name: summary}}``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from av_pose_ros.primitives.skeleton import BONE_INDICES, LEFT_HIP, LEFT_WRIST, RIGHT_HIP, RIGHT_WRIST

from . import dataset as ds
from .baselines import tof, vision_only
from .calibration import R1, R2, assess_outputs, brier, mahalanobis
from .features import LiftingInputError, box_centre_ray

METHODS = ("cnn", "tof", "vision_only", "vision_learned")
ABLATIONS = ("audio_shuffled", "audio_zero")
VARIANTS = ("cnn_no_snap", "audio_shuffled_end_to_end")
STATURE_BANDS = ((0.0, 1.4, "<1.4 m"), (1.4, 1.8, "1.4-1.8 m"), (1.8, 9.0, ">1.8 m"))
TARGET_BANDS = (("stature", 1.0, 1.3, "children 1.0-1.3 m"), ("distance", 3.0, 4.0, "far 3-4 m"))
DEFAULT_VISION_MODEL = "models/lifter_vision.pt"
# The evaluation families: each stresses one thing (the scenario file's description says what).
FAMILIES = ("default", "low_snr", "reverberant", "large_room", "far", "close", "turned", "unusual_poses",
            "children", "calibration", "music")


def distance_bands(distances: np.ndarray) -> list[tuple[float, float, str]]:
    lo, hi = int(np.floor(np.min(distances))), int(np.ceil(np.max(distances)))
    return [(float(a), float(a + 1), f"{a}-{a + 1} m") for a in range(lo, max(hi, lo + 1))]


def _default_guess(keypoints, K, world_from_camera) -> np.ndarray:
    try:
        origin, central, _, _ = box_centre_ray(keypoints, K, world_from_camera)
    except LiftingInputError:
        origin, central = world_from_camera[:3, 3], world_from_camera[:3, 2]
    return np.repeat((origin + 2.5 * central)[None], 17, axis=0)


def metrics(pred: np.ndarray, true: np.ndarray, flagged: np.ndarray | None = None) -> dict:
    """MPJPE, root (mid-hip) and wrist (mean of both) errors in mm and PCK@100mm of (N, 17, 3) arrays; with
    ``flagged`` (N,) also the flagged fraction and MPJPE/wrist over the unflagged frames (NaN when none is)."""
    err = np.linalg.norm(pred - true, axis=-1)
    mid = [LEFT_HIP, RIGHT_HIP]
    root = np.linalg.norm(pred[:, mid].mean(axis=1) - true[:, mid].mean(axis=1), axis=-1)
    wrists = err[:, [LEFT_WRIST, RIGHT_WRIST]]
    out = {"mpjpe_mm": float(1000 * err.mean()), "root_mm": float(1000 * root.mean()),
           "wrist_mm": float(1000 * wrists.mean()), "pck100": float(np.mean(err < 0.1)), "n": int(len(pred))}
    if flagged is not None:
        keep = ~np.asarray(flagged, bool)
        out["flagged_fraction"] = float(np.mean(~keep)) if len(keep) else 0.0
        out["mpjpe_unflagged_mm"] = float(1000 * err[keep].mean()) if keep.any() else float("nan")
        out["wrist_unflagged_mm"] = float(1000 * wrists[keep].mean()) if keep.any() else float("nan")
    return out


def _args(s: dict) -> tuple:
    return (s["keypoints"].astype(float), s["K"].astype(float), s["world_from_camera"].astype(float),
            s["kernels"], s["speakers"].astype(float), s["mics"].astype(float), float(s["fs"]))


def _has_kernels(s: dict) -> bool:
    return bool(np.any(s["kernels"]))


def _cnn_family(lifter, s: dict, other_kernels: np.ndarray) -> dict:
    """The network's outputs on this frame: ``cnn`` (snapped onto the rays), ``cnn_no_snap`` and the ablations,
    whose network heard other kernels on cubes the lifter placed with the frame's own. Raises
    ``LiftingInputError``."""
    args = _args(s)
    if not _has_kernels(s):
        raise LiftingInputError("no kernel for this frame")
    c = float(s["c"])
    t0 = time.perf_counter()
    lift = lifter.lift(*args, speed_of_sound=c)
    seconds = time.perf_counter() - t0
    assessed = assess_outputs(lifter, args, c, lift)   # as the node does
    out = {"cnn": lift.joints, "cnn_no_snap": lift.raw, "_seconds": seconds, "_assessed": assessed}
    out["audio_shuffled"] = lifter.lift(*args, speed_of_sound=c, network_kernels=other_kernels).joints
    out["audio_zero"] = lifter.lift(*args, speed_of_sound=c, network_kernels=np.zeros_like(s["kernels"])).joints
    try:      # the whole lifter (coarse locator included) on the other frame's kernels
        out["audio_shuffled_end_to_end"] = lifter.lift(*args[:3], other_kernels, *args[4:], speed_of_sound=c).joints
    except LiftingInputError:
        pass
    return out


def _vision_learned(vision_lifter, s: dict) -> np.ndarray:
    return vision_lifter.predict_vision(*_args(s)[:3])


def _predict_frame(s: dict, other_kernels, lifter, vision_lifter) -> tuple[dict, dict, object]:
    """{name: (17, 3) joints or None (refused)}, {method: seconds} and the CNN's ``calibration.Assessed`` (None
    when it could not lift) for one frame, every method."""
    args, c = _args(s), float(s["c"])
    preds, times = {}, {}
    t0 = time.perf_counter()
    try:
        preds.update(_cnn_family(lifter, s, other_kernels))
    except LiftingInputError:
        pass
    times["cnn"] = preds.pop("_seconds", time.perf_counter() - t0)      # the lifter alone, not its ablations
    assessed = preds.pop("_assessed", None)
    calls = {"tof": lambda: tof(*args, speed_of_sound=c) if _has_kernels(s) else None,
             "vision_only": lambda: vision_only(*args[:3])}
    if vision_lifter is not None:
        calls["vision_learned"] = lambda: _vision_learned(vision_lifter, s)
    for name, call in calls.items():
        t0 = time.perf_counter()
        try:
            preds[name] = call()
        except LiftingInputError:
            preds[name] = None
        times[name] = time.perf_counter() - t0
    return {k: (v if v is not None and np.all(np.isfinite(v)) else None) for k, v in preds.items()}, times, assessed


def _load_vision(vision_model, vision_lifter):
    from .lifter import Lifter

    if vision_lifter is not None or vision_model is None:
        return vision_lifter
    return Lifter.load(vision_model)


def evaluate(scenario: str, num: int, seed: int, model: str = "models/lifter.pt", cache_root=None,
             workers: int | None = None, progress: bool = True, lifter=None,
             vision_model: str | None = DEFAULT_VISION_MODEL, vision_lifter=None, split: str = "test") -> dict:
    """Run every method and ablation on ``num`` samples of ``split``; returns predictions, metadata and the summary
    dict. ``vision_model=None`` (and no ``vision_lifter``) leaves ``vision_learned`` out."""
    from tqdm import tqdm

    from .lifter import Lifter

    data = ds.generate(scenario, split, seed, num, cache_root, workers, progress)
    lifter = lifter or Lifter.load(model)
    vision_lifter = _load_vision(vision_model, vision_lifter)
    names = [m for m in METHODS if m != "vision_learned" or vision_lifter is not None] + [*ABLATIONS, *VARIANTS]
    preds = {m: np.zeros((num, 17, 3)) for m in names}
    flagged = {m: np.zeros(num, bool) for m in names}
    times = {m: [] for m in names if m in METHODS}
    assessed = [None] * num
    fallback = np.zeros(num, bool)     # frames the CNN could not lift, published from the vision-only fallback
    step = max(1, num // 2)       # audio_shuffled reads the kernels of the frame half a run away
    for i in tqdm(range(num), desc=f"evaluating {Path(str(scenario)).stem}", disable=not progress, leave=False):
        s = ds.sample_at(data, i)
        out, took, assessed[i] = _predict_frame(s, data["kernels"][(i + step) % num], lifter, vision_lifter)
        flagged["cnn"][i] = assessed[i] is not None and assessed[i].verdict.flagged
        if out.get("cnn") is None and out.get("vision_learned") is not None:   # lifter_node's vision fallback
            out["cnn"], flagged["cnn"][i], fallback[i] = out["vision_learned"], True, True
        guess = _default_guess(*_args(s)[:3])
        for m in names:
            if out.get(m) is None:
                preds[m][i], flagged[m][i] = guess, True
            else:
                preds[m][i] = out[m]
        for m in times:
            times[m].append(took[m])
    truth = data["joints"].astype(float)
    summary = _summary(scenario, num, seed, split, preds, flagged, times, truth, data)
    summary["methods"]["cnn"].update(refusal_summary(assessed, preds["cnn"], truth, flagged["cnn"],
                                                     data["distance"].astype(float)))
    lifted = np.array([a is not None for a in assessed])
    summary["methods"]["cnn"].update(publication_summary(preds["cnn"], truth, fallback, lifted))
    for m, row in summary["methods"].items():      # every method on the frames the system published a pose for
        row.update(published_errors(preds[m], truth, lifted | fallback))
    return {"summary": summary, "preds": preds, "flagged": flagged, "lifted": lifted, "truth": truth,
            "stature": data["stature"].astype(float),
            "distance": data["distance"].astype(float), "data": data}


def publication_summary(pred: np.ndarray, truth: np.ndarray, fallback: np.ndarray, lifted: np.ndarray) -> dict:
    """How each frame was published: lifted with audio, from the vision-only fallback (no usable kernel), or not
    at all (no usable keypoints: the detector missed the person; scored at the default guess), with MPJPE over the
    frames that were published (what a consumer of `human/pose_3d` receives)."""
    out = {"fallback_fraction": float(fallback.mean()), "not_published_fraction": float(np.mean(~(lifted | fallback)))}
    if fallback.any():
        out["mpjpe_fallback_mm"] = float(1000 * np.linalg.norm(pred - truth, axis=-1)[fallback].mean())
    return out


def published_errors(pred: np.ndarray, truth: np.ndarray, published: np.ndarray) -> dict:
    """MPJPE and wrist error (mm) over the frames the system published a pose for: the detector's misses (no
    usable keypoints, the same default guess for every method) left out, so methods compare on what they lift."""
    if not published.any():
        return {"mpjpe_published_mm": float("nan"), "wrist_published_mm": float("nan")}
    err = np.linalg.norm(pred[published] - truth[published], axis=-1)
    return {"mpjpe_published_mm": float(1000 * err.mean()),
            "wrist_published_mm": float(1000 * err[:, [LEFT_WRIST, RIGHT_WRIST]].mean())}


def refusal_summary(assessed: list, pred: np.ndarray, truth: np.ndarray, flagged: np.ndarray,
                    distance: np.ndarray, radius_m: float = 0.1) -> dict:
    """The CNN's calibration (every lifted frame, flagged ones with their flagged figures), the refusal checks that
    fired and the beyond-range frames' flagged share (module docstring)."""
    lifted = [i for i, a in enumerate(assessed) if a is not None]
    reasons: dict[str, int] = {}
    for i in lifted:
        for r in assessed[i].verdict.reasons:
            reasons[r] = reasons.get(r, 0) + 1
    reach = np.array([assessed[i].verdict.evidence.measurable_m if assessed[i] is not None else np.nan
                      for i in range(len(assessed))])
    beyond = distance > np.where(np.isfinite(reach), reach, np.nanmedian(reach) if lifted else 4.2)
    out = {"refusal_reasons": reasons, "beyond_range": {
        "frames": int(beyond.sum()), "flagged_fraction": float(flagged[beyond].mean()) if beyond.any() else None}}
    with_cov = [i for i in lifted if assessed[i].covariance is not None]
    if with_cov:
        err = (pred[with_cov] - truth[with_cov]).reshape(-1, 3)
        conf = np.concatenate([assessed[i].confidence for i in with_cov])
        cov = np.concatenate([assessed[i].covariance for i in with_cov])
        hit = np.linalg.norm(err, axis=1) < radius_m
        b, base = brier(conf, hit)
        d = mahalanobis(err, cov)
        out["calibration"] = {"brier": b, "brier_base_rate": base, "hit_rate": float(hit.mean()),
                              "mean_confidence": float(conf.mean()), "coverage_1sigma": float(np.mean(d <= R1)),
                              "coverage_2sigma": float(np.mean(d <= R2)), "joints": int(len(err))}
    return out


def _summary(scenario, num, seed, split, preds, flagged, times, truth, data) -> dict:
    methods = [m for m in METHODS if m in preds]
    summary = {"num": int(num), "scenario": str(scenario), "seed": int(seed), "split": split,
               "methods": {m: {**metrics(preds[m], truth, flagged[m]), "failures": int(flagged[m].sum()),
                               "median_ms": float(1000 * np.median(times[m]))} for m in methods},
               "ablations": {m: metrics(preds[m], truth, flagged[m]) for m in ABLATIONS},
               "variants": {m: metrics(preds[m], truth, flagged[m]) for m in VARIANTS}}
    stature, distance = data["stature"].astype(float), data["distance"].astype(float)
    bands = {"stature": {}, "distance": {}, "targets": {}}
    selections = [("stature", label, (stature >= lo) & (stature < hi)) for lo, hi, label in STATURE_BANDS]
    selections += [("distance", label, (distance >= lo) & (distance < hi)) for lo, hi, label in
                   distance_bands(distance)]
    selections += [("targets", label, ((stature if key == "stature" else distance) >= lo)
                    & ((stature if key == "stature" else distance) <= hi)) for key, lo, hi, label in TARGET_BANDS]
    for kind, label, sel in selections:
        if sel.any():
            bands[kind][label] = {m: metrics(preds[m][sel], truth[sel]) for m in methods}
    summary["bands"] = bands
    return summary


def family_path(name: str) -> str:
    from av_pose_ros.sim.rig import find_config

    return str(find_config("scenarios", name))


def evaluate_suite(num: int, seed: int, families=FAMILIES, model: str = "models/lifter.pt",
                   vision_model: str | None = DEFAULT_VISION_MODEL, cache_root=None, workers: int | None = None,
                   progress: bool = True, split: str = "test") -> dict:
    """Every family (scenario name or path) evaluated with every method on its own ``num`` frames of ``split``:
    ``{"num", "seed", "split", "families": {name: summary}}`` (the models are loaded once)."""
    from tqdm import tqdm

    from .lifter import Lifter

    lifter = Lifter.load(model)
    vision_lifter = _load_vision(vision_model, None)
    result = {"num": int(num), "seed": int(seed), "split": split, "model": str(model),
              "vision_model": None if vision_lifter is None else str(vision_model), "families": {}}
    for name in tqdm(list(families), desc="families", disable=not progress):
        path = family_path(name)
        one = evaluate(path, num, seed, cache_root=cache_root, workers=workers, progress=progress, lifter=lifter,
                       vision_lifter=vision_lifter, vision_model=None, split=split)
        result["families"][Path(path).stem] = one["summary"]
    return result


# -- output -----------------------------------------------------------------------------------------------------
def _table(rows: dict, title: str) -> str:
    lines = [title, f"  {'method':14s} {'n':>5s} {'MPJPE mm':>9s} {'root mm':>8s} {'wrist mm':>9s} {'PCK@100':>8s}"]
    for m, r in rows.items():
        lines.append(f"  {m:14s} {r['n']:5d} {r['mpjpe_mm']:9.1f} {r['root_mm']:8.1f} {r['wrist_mm']:9.1f} "
                     f"{r['pck100']:8.3f}")
    return "\n".join(lines)


def format_tables(result: dict) -> str:
    s = result["summary"]
    out = [_table(s["methods"], f"Lifting on {s['scenario']} ({s['num']} {s.get('split', 'test')} samples, "
                                f"seed {s['seed']})")]
    flags = ", ".join(f"{m} {r['flagged_fraction']:.2f}" for m, r in s["methods"].items())
    speed = ", ".join(f"{m} {r['median_ms']:.0f} ms" for m, r in s["methods"].items())
    out.append(f"  (flagged fraction: {flags}; median time per frame: {speed})")
    out.append(_table(s["ablations"], "Ablations of the CNN (same grid, audio input replaced)"))
    v, e2e = s["variants"]["cnn_no_snap"], s["variants"]["audio_shuffled_end_to_end"]
    out.append(f"  variant cnn_no_snap (soft-argmax without moving joints onto their rays): MPJPE "
               f"{v['mpjpe_mm']:.1f} mm, wrist {v['wrist_mm']:.1f} mm\n"
               f"  variant audio_shuffled_end_to_end (coarse locator too fed another frame's kernels): MPJPE "
               f"{e2e['mpjpe_mm']:.1f} mm, wrist {e2e['wrist_mm']:.1f} mm")
    for kind in ("stature", "distance", "targets"):
        for label, rows in s["bands"][kind].items():
            out.append(_table(rows, f"{kind} {label}"))
    cnn = s["methods"]["cnn"]
    checks = [("CNN MPJPE <= 80 mm", cnn["mpjpe_mm"] <= 80), ("CNN wrist <= 80 mm", cnn["wrist_mm"] <= 80),
              ("CNN >= 3x better than vision_only", 3 * cnn["mpjpe_mm"] <= s["methods"]["vision_only"]["mpjpe_mm"]),
              ("CNN better than tof", cnn["mpjpe_mm"] < s["methods"]["tof"]["mpjpe_mm"])]
    if "vision_learned" in s["methods"]:
        checks.append(("CNN >= 3x better than vision_learned",
                       3 * cnn["mpjpe_mm"] <= s["methods"]["vision_learned"]["mpjpe_mm"]))
    checks.append(("audio_shuffled >= 3x worse than CNN", s["ablations"]["audio_shuffled"]["mpjpe_mm"]
                   >= 3 * cnn["mpjpe_mm"]))
    for label, rows in s["bands"]["targets"].items():
        checks.append((f"CNN {label} within 1.5x overall", rows["cnn"]["mpjpe_mm"] <= 1.5 * cnn["mpjpe_mm"]))
    out.append("Targets: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks))
    return "\n\n".join(out)


def format_suite(result: dict) -> str:
    """One table: family x method (methods, then the ablations marked with *)."""
    head = (f"Lifting suite ({result['num']} {result['split']} samples per family, seed {result['seed']}; "
            f"* = ablation of the CNN)")
    lines = [head, f"  {'family':14s} {'method':16s} {'MPJPE mm':>9s} {'wrist mm':>9s} {'PCK@100':>8s} "
                   f"{'flagged':>8s}"]
    for family, s in result["families"].items():
        rows = [(m, r) for m, r in s["methods"].items()] + [(f"*{m}", r) for m, r in s["ablations"].items()]
        for k, (m, r) in enumerate(rows):
            lines.append(f"  {family if k == 0 else '':14s} {m:16s} {r['mpjpe_mm']:9.1f} {r['wrist_mm']:9.1f} "
                         f"{r['pck100']:8.3f} {r['flagged_fraction']:8.2f}")
    return "\n".join(lines)


COLOURS = {"truth": "k", "cnn": "tab:blue", "tof": "tab:green", "vision_only": "tab:red",
           "vision_learned": "tab:orange", "audio_shuffled": "tab:purple", "audio_zero": "tab:gray"}


def plot_suite(result: dict, path: str) -> None:
    """Grouped bars per family: MPJPE and wrist error (log scale) of every method and ablation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(result["families"])
    names = [m for m in (*METHODS, *ABLATIONS) if any(m in {**s["methods"], **s["ablations"]}
                                                      for s in result["families"].values())]
    x = np.arange(len(families))
    width = 0.8 / max(len(names), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.1 * len(families) + 3), 8), sharex=True)
    for ax, key, label in ((axes[0], "mpjpe_mm", "MPJPE (mm)"), (axes[1], "wrist_mm", "wrist error (mm)")):
        for k, m in enumerate(names):
            values = [{**s["methods"], **s["ablations"]}.get(m, {}).get(key, np.nan)
                      for s in result["families"].values()]
            ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=m, color=COLOURS.get(m))
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(ncol=3, fontsize=8)
    axes[0].set_title(f"eval-lifter --suite: {result['num']} {result['split']} samples per family, "
                      f"seed {result['seed']}")
    axes[1].set_xticks(x, families, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_results(result: dict, path: str, samples: int = 3) -> None:
    """Predicted vs true skeletons (side and front views) for a few samples, and MPJPE by distance per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds, truth, distance = result["preds"], result["truth"], result["distance"]
    methods = [m for m in METHODS if m in preds]
    order = np.argsort(distance)
    picks = order[np.linspace(0, len(order) - 1, samples).astype(int)]
    fig = plt.figure(figsize=(4.2 * samples, 8.5))
    for col, i in enumerate(picks):
        ax = fig.add_subplot(2, samples, col + 1)
        for name, joints in (("truth", truth[i]), *((m, preds[m][i]) for m in methods)):
            for a, b in BONE_INDICES:
                ax.plot(joints[[a, b], 0], joints[[a, b], 2], color=COLOURS[name], lw=2 if name == "truth" else 1.2,
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
    for m in methods:
        err = 1000 * np.linalg.norm(preds[m] - truth, axis=-1).mean(axis=1)
        curve = [err[(distance >= a) & (distance < b)].mean() if np.any((distance >= a) & (distance < b)) else np.nan
                 for a, b in zip(edges[:-1], edges[1:])]
        ax.plot(centres, curve, "o-", color=COLOURS[m], label=m)
    ax.set_xlabel("distance camera -> person (m)")
    ax.set_ylabel("MPJPE (mm)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
