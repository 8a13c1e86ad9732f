"""Front/back from head motion, measured: `SourceTracker` against the per-window model on turning-head scenarios.

A scenario is one reverberant shoebox room (the SLfM spherical head, `slfm.rooms`), one fixed source anywhere on the
circle around the head (1-2.5 m, about head height) and a head that holds still, turns by ``turn_deg`` at a steady
rate and holds still again; one audio window per hop, each rendered at the head's yaw in the middle of that window
(a fresh stretch of the same source each window). Every method sees the same clips: the tracker with the shipped
model, the tracker with GCC-PHAT, and the per-window model alone (front-folded: a source behind the head comes out
mirrored in front). Errors are full-circle, at the last window.

Splits: ``dev`` scenarios (rooms 2,000,000+) chose the tracker's settings; ``test`` (3,000,000+) is reported once.

    python -m av_pose_ros.slfm.tracking_eval --num 60 --split test --turns 0 10 20 30
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from .baselines import gcc_phat_azimuth
from .constants import SAMPLE_RATE
from .rooms import RoomConfig, _image_sources, render_view, sample_room
from .sources import SourceBank, speech_corpus
from .tracking import SourceTracker, TrackerConfig, wrap_angle

SPLIT_OFFSETS = {"dev": 2_000_000, "test": 3_000_000}
RIR_SECONDS = 0.7


@dataclass
class TurnScenario:
    """A room, a fixed source, and the windows a turning head hears (angles in rad)."""

    room: RoomConfig
    signals: list          # per window, mono source signal (window + room response)
    kind: str
    source_azimuth: float  # head frame at the start (yaw 0 of the head relative to its base yaw)


def place_source(room: RoomConfig, azimuth: float, rng: np.random.Generator, distance_range=(1.0, 2.5)) -> bool:
    """Move the room's source to ``azimuth`` (head frame at the room's base yaw); False if no spot fits."""
    for _ in range(50):
        d = rng.uniform(*distance_range)
        ang = room.base_yaw + azimuth
        src = room.head + np.array([d * np.cos(ang), d * np.sin(ang), rng.uniform(-0.15, 0.15)])
        if np.all(src[:2] > 0.5) and np.all(src[:2] < room.dims[:2] - 0.5):
            room.source = src
            _image_sources(room)
            return True
    return False


def make_scenario(index: int, seed: int, bank: SourceBank, n_windows: int, window_s: float,
                  azimuth: float | None = None, rt60_range=(0.15, 0.8)) -> TurnScenario:
    """Scenario ``index``: room, source direction (uniform on the circle unless given) and per-window signals."""
    rng = np.random.default_rng([int(seed), int(index), 919])
    n = int(round(window_s * SAMPLE_RATE)) + int(RIR_SECONDS * SAMPLE_RATE)
    for _ in range(100):
        room = sample_room(rng, rt60_range=rt60_range)
        az = float(rng.uniform(-np.pi, np.pi)) if azimuth is None else float(azimuth)
        if place_source(room, az, rng):
            break
    else:
        raise RuntimeError("no room fits the source")
    kind = None
    signals = []
    for _ in range(n_windows):
        sig, kind = bank.draw(n, rng, kind=kind)
        signals.append(sig)
    return TurnScenario(room, signals, kind, az)


def turn_profile(n_windows: int, turn_rad: float) -> np.ndarray:
    """Head yaw per window relative to the start: still, a steady turn, still (two windows at each end)."""
    k = np.arange(n_windows, dtype=float)
    ramp = np.clip((k - 1) / max(n_windows - 3, 1), 0.0, 1.0)
    return turn_rad * ramp


def render_windows(sc: TurnScenario, yaws: np.ndarray, window_s: float, seed: int, head=None) -> np.ndarray:
    """(W, 2, n) clips, window k heard at head yaw ``yaws[k]`` (relative to the room's base yaw) by ``head``
    (``slfm.heads``; default the spherical training head)."""
    rng = np.random.default_rng([int(seed), 5])
    n = int(round(window_s * SAMPLE_RATE))
    clips = np.zeros((len(yaws), 2, n), np.float32)
    for k, (yaw, sig) in enumerate(zip(yaws, sc.signals)):
        out = render_view(sc.room, sc.room.base_yaw + float(yaw), sig, rng, snr_db=30.0, head=head)
        clips[k, :, :min(n, out.shape[1])] = out[:, :n]
    return clips


def _errors(pred, true) -> dict:
    e = np.rad2deg(np.abs(wrap_angle(np.asarray(pred) - np.asarray(true))))
    return {"mae_deg": float(e.mean()), "median_deg": float(np.median(e)), "n": int(e.size)} if e.size else {}


def collect_measurements(num: int = 40, seed: int = 0, split: str = "dev", turns_deg=(0.0, 10.0, 20.0, 30.0),
                         n_windows: int = 8, window_s: float = 1.0, cache_dir: str | None = "data_cache/slfm",
                         estimator="auto", head=None) -> dict:
    """Per head turn: the per-window lateral estimates of the model and of GCC-PHAT (num, W), the head yaws (num, W)
    and the true head-frame azimuth at the last window (num,). Same scenarios and clips for every method; ``head``
    hears them (default the spherical training head)."""
    speech = speech_corpus(cache_dir, count=60, seed=seed, split="eval") if cache_dir else None
    bank = SourceBank(speech)
    model = SourceTracker(estimator)
    out = {"estimator": model.estimator_name, "split": split, "num": num, "seed": seed, "n_windows": n_windows,
           "window_s": window_s, "head": getattr(head, "name", "spherical"), "turns": {},
           "head_calibration": model.head_calibration}
    t0 = time.perf_counter()
    rows = {t: {"model": [], "gcc": [], "yaws": [], "truth": []} for t in turns_deg}
    for i in range(num):
        sc = make_scenario(SPLIT_OFFSETS[split] + i, seed, bank, n_windows, window_s)
        for turn in turns_deg:
            yaws = turn_profile(n_windows, np.deg2rad(turn)) * (1 if i % 2 == 0 else -1)
            clips = render_windows(sc, yaws, window_s, seed + i, head)
            rows[turn]["model"].append([model.estimator(c, SAMPLE_RATE) for c in clips])
            rows[turn]["gcc"].append([gcc_phat_azimuth(c, SAMPLE_RATE) for c in clips])
            rows[turn]["yaws"].append(yaws)
            rows[turn]["truth"].append(wrap_angle(sc.source_azimuth - yaws[-1]))
    out["turns"] = {t: {k: np.asarray(v) for k, v in r.items()} for t, r in rows.items()}
    out["seconds"] = time.perf_counter() - t0
    return out


def _track(laterals: np.ndarray, yaws: np.ndarray, config: TrackerConfig | None, head_calibration=None):
    # the estimator is not called: the laterals are given
    tracker = SourceTracker("gcc_phat", config, head_calibration=head_calibration)
    for lat, yaw in zip(laterals, yaws):
        tracker.update_lateral(lat, yaw)
    return tracker.state


def score(measured: dict, config: TrackerConfig | None = None) -> dict:
    """Full-circle errors at the last window of the tracker (model), the tracker (GCC-PHAT) and the per-window
    model, per head turn."""
    res = {k: v for k, v in measured.items() if k not in ("turns", "head_calibration")}
    res["turns"] = {}
    cal = measured.get("head_calibration")
    for turn, r in measured["turns"].items():
        states = [_track(m, y, config, cal) for m, y in zip(r["model"], r["yaws"])]
        states_gcc = [_track(g, y, config) for g, y in zip(r["gcc"], r["yaws"])]
        res["turns"][str(turn)] = _summary({
            "truth": r["truth"], "tracker": [s.azimuth for s in states], "tracker_gcc": [s.azimuth for s in states_gcc],
            "window_model": r["model"][:, -1], "conf": [s.front_back_confidence for s in states],
            "conf_gcc": [s.front_back_confidence for s in states_gcc]})
    return res


def evaluate_tracking(num: int = 40, seed: int = 0, split: str = "dev", turns_deg=(0.0, 10.0, 20.0, 30.0),
                      n_windows: int = 8, window_s: float = 1.0, config: TrackerConfig | None = None,
                      cache_dir: str | None = "data_cache/slfm", estimator="auto", head=None) -> dict:
    """`collect_measurements` then `score` with ``config``."""
    return score(collect_measurements(num, seed, split, turns_deg, n_windows, window_s, cache_dir, estimator, head),
                 config)


def _summary(r: dict) -> dict:
    truth = np.asarray(r["truth"])
    behind = np.abs(truth) > np.pi / 2
    clear = np.abs(np.abs(truth) - np.pi / 2) > np.deg2rad(10.0)  # hemisphere defined (not within 10 deg of the side)
    out = {}
    for name in ("tracker", "tracker_gcc", "window_model"):
        pred = np.asarray(r[name])
        hemi_ok = (np.abs(pred) > np.pi / 2 + 1e-5) == behind  # a lateral estimate of -90.0000025 deg is "side"
        out[name] = {"all": _errors(pred, truth), "behind": _errors(pred[behind], truth[behind]),
                     "front": _errors(pred[~behind], truth[~behind]),
                     "front_back_correct": float(np.mean(hemi_ok[clear])) if clear.any() else None}
    conf = np.asarray(r["conf"])
    out["tracker"]["confidence_median"] = float(np.median(conf))
    out["tracker"]["resolved_share"] = float(np.mean(conf >= 0.9))
    out["tracker_gcc"]["confidence_median"] = float(np.median(r["conf_gcc"]))
    return out


def format_report(res: dict) -> str:
    lines = [f"split {res['split']}, {res['num']} scenarios, seed {res['seed']}, {res['n_windows']} windows of "
             f"{res['window_s']} s, head {res.get('head', 'spherical')}, estimator {res['estimator']} "
             f"({res['seconds']:.0f} s)",
             "turn | method | MAE all | MAE behind | MAE front | front/back correct | median confidence"]
    for turn, methods in res["turns"].items():
        for name, m in methods.items():
            fb = m["front_back_correct"]
            behind, front = m["behind"].get("mae_deg", float("nan")), m["front"].get("mae_deg", float("nan"))
            conf = m.get("confidence_median")
            lines.append(f"{float(turn):4.0f} | {name:12s} | {m['all']['mae_deg']:6.1f} | {behind:6.1f} | {front:6.1f}"
                         f" | {'-' if fb is None else f'{100 * fb:5.1f} %'} | {'-' if conf is None else f'{conf:.3f}'}")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--num", type=int, default=40, help="scenarios (each heard at every head turn)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=sorted(SPLIT_OFFSETS), default="dev",
                    help="dev: for decisions; test: report once")
    ap.add_argument("--turns", type=float, nargs="+", default=[0.0, 10.0, 20.0, 30.0], help="head turns (deg)")
    ap.add_argument("--windows", type=int, default=8, help="audio windows (1 s) per scenario")
    ap.add_argument("--cache-dir", default="data_cache/slfm", help="where the held-out speech is cached")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    ap.add_argument("--head", default="spherical", choices=["spherical", "kemar"],
                    help="who hears the scenarios: the spherical training head or the measured MIT KEMAR head")
    ap.add_argument("--head-calibration", default=None,
                    help="the model's head calibration (default models/slfm_head_calibration.json; 'none' = the "
                         "spherical-head curve); for kemar, e.g. one from `av-pose calibrate-head --head kemar`")


def run(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    from .estimators import AzimuthEstimator, model_path
    from .heads import head_model

    cal = args.head_calibration or model_path("slfm_head_calibration.json")
    estimator = AzimuthEstimator.load(model_path("slfm_azimuth.pt"), device="cpu",
                                      calibration=None if cal == "none" else cal)
    res = evaluate_tracking(args.num, args.seed, args.split, tuple(args.turns), args.windows,
                            cache_dir=args.cache_dir or None, estimator=estimator, head=head_model(args.head))
    print(format_report(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
