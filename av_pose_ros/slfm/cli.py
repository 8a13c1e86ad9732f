"""Command line for SLfM: ``av-pose train-slfm``, ``av-pose eval-slfm``, ``av-pose eval-slfm-tracking`` and
``av-pose calibrate-head``.

``register(subparsers)`` is wired into the top-level ``av-pose`` command; ``python -m av_pose_ros.slfm.cli ...``
runs the same subcommands on their own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np


def _size(text: str):
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must look like 320x240, got {text!r}") from None


def _train(args) -> int:
    import torch

    from .train import SlfmTrainConfig, train_slfm

    if args.threads:
        torch.set_num_threads(args.threads)
    config = SlfmTrainConfig(out_dir=args.out_dir, cache_dir=args.cache_dir, steps=args.steps, batch=args.batch,
                             seed=args.seed, n_configs=args.configs, lr=args.lr, device=args.device,
                             resume=not args.no_resume, threads=args.threads, progress=not args.quiet,
                             log_file=args.log, n_procedural=args.procedural, rotation_model=args.rotation_model,
                             min_confidence=args.min_confidence, w_side=args.w_side)
    summary = train_slfm(config)
    summary.pop("history", None)
    print(json.dumps(summary, indent=2))
    return 0


def _eval(args) -> int:
    import torch

    from .errors import SlfmError
    from .evaluate import evaluate_slfm, format_report

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        res = evaluate_slfm(num=args.num, seed=args.seed, rotation_model=args.rotation_model,
                            azimuth_model=args.azimuth_model, sizes=args.sizes or ((128, 96), (320, 240)),
                            levels=args.levels, cache_dir=args.cache_dir, feature_method=args.features,
                            wide_model=args.wide_model, head_calibration=args.head_calibration,
                            measured_head_recordings=args.measured_head_recordings, progress=not args.json)
    except SlfmError as exc:
        print(f"eval-slfm: {exc}", file=sys.stderr)
        return 2
    if args.rotation3d_num > 0:
        from .eval_rotation3d import evaluate_rotation3d
        from .eval_rotation3d import format_report as format_3d

        res["rotation3d"] = evaluate_rotation3d(args.rotation3d_split, args.rotation3d_num, args.rotation3d_hfov,
                                                args.rotation3d_size, wide_model=args.wide_model)
    print(json.dumps(res, indent=2) if args.json else format_report(res) + (
        "\n\n" + format_3d(res["rotation3d"]) if "rotation3d" in res else ""))
    return 0


def _calibrate_head(args) -> int:
    from av_pose_ros.bag.reader import BagError

    from .calibration_bag import BagRecordingsConfig, recordings_from_bag
    from .errors import SlfmError
    from .estimators import AzimuthEstimator, model_path
    from .head_calibration import fit_head_calibration, model_digest
    from .head_eval import turn_recordings
    from .heads import head_model

    try:
        estimator = AzimuthEstimator.load(args.azimuth_model or model_path("slfm_azimuth.pt"), device="cpu",
                                          calibration=None)
        if args.bag:
            config = BagRecordingsConfig(audio_topic=args.audio_topic, yaw_topic=args.yaw_topic,
                                         left_channel=args.left_channel, right_channel=args.right_channel)
            parts = [recordings_from_bag(bag, estimator, config)[:2] for bag in args.bag]
            delays, turns = np.concatenate([d for d, _ in parts]), np.concatenate([t for _, t in parts])
            name = args.name or ", ".join(map(str, args.bag))
        else:
            head = head_model(args.head)
            delays, turns, _ = turn_recordings(estimator, head, args.recordings, args.seed, progress=not args.quiet)
            name = args.name or head.name
        cal = fit_head_calibration(delays, turns, head=name, symmetric=args.symmetric or
                                   (not args.bag and args.head == "spherical"))
        cal = dataclasses.replace(cal, azimuth_model=model_digest(estimator.path))
    except (OSError, ValueError, BagError, SlfmError) as exc:
        print(f"calibrate-head: {exc}", file=sys.stderr)
        return 2
    cal.save(args.out)
    print(f"{args.out}: {cal.recordings} recordings, median residual {cal.residual_us:.1f} us, "
          f"{'separate' if cal.back_delays_s else 'one'} curve for sources behind")
    return 0


def register(subparsers) -> None:
    """Add ``train-slfm``, ``eval-slfm``, ``calibrate-head`` and ``eval-slfm-tracking`` to an argparse subparsers
    object."""
    t = subparsers.add_parser("train-slfm", help="self-supervised SLfM training (rotation + sound direction)",
                              description="Train the SLfM rotation and azimuth models without labels.")
    t.add_argument("--out-dir", default="models", help="where slfm_rotation.pt / slfm_azimuth.pt are written")
    t.add_argument("--cache-dir", default="data_cache/slfm", help="generated audio, speech corpus, checkpoints")
    t.add_argument("--steps", type=int, default=1800)
    t.add_argument("--batch", type=int, default=10, help="room configurations (4 head yaws each) per step")
    t.add_argument("--configs", type=int, default=6000, help="simulated room configurations (4 head yaws each)")
    t.add_argument("--procedural", type=int, default=300, help="procedural indoor scenes for image pairs")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:1 ...")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    t.add_argument("--log", default=None, help="append monitoring lines to this file")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--rotation-model", default=None,
                   help="train only the audio model; head turns from this trained, frozen slfm_rotation.pt")
    t.add_argument("--min-confidence", type=float, default=0.0,
                   help="skip configurations whose multi-view direction posterior is less concentrated than this")
    t.add_argument("--w-side", type=float, default=0.2, help="weight of the IID left/right vote")
    t.set_defaults(func=_train)

    e = subparsers.add_parser("eval-slfm", help="evaluate SLfM models against SIFT and GCC-PHAT baselines",
                              description="Rotation and azimuth errors of the SLfM models and the baselines.")
    e.add_argument("--num", type=int, default=100, help="pairs per image size and clips per reverberation level")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--rotation-model", default=None)
    e.add_argument("--azimuth-model", default=None)
    e.add_argument("--sizes", type=_size, nargs="+", default=None, help="image sizes, e.g. 128x96 320x240")
    e.add_argument("--levels", nargs="+", default=None, choices=["low", "medium", "high"])
    e.add_argument("--features", default="sift", choices=["sift", "orb"])
    e.add_argument("--cache-dir", default="data_cache/slfm", help="where the held-out speech is cached")
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--rotation3d-num", type=int, default=0,
                   help="also rotation on 3D-room pairs (parallax, lens distortion, +-90 deg; clean, dim, blur, "
                        "noise, low texture): this many pairs per condition, 0 = skip (slfm.eval_rotation3d)")
    e.add_argument("--rotation3d-split", default="dev", choices=["dev", "test"],
                   help="3D-room pairs: dev decides, test reports once")
    e.add_argument("--rotation3d-hfov", type=float, default=90.0, help="3D-room camera field of view (deg)")
    e.add_argument("--rotation3d-size", type=_size, default=(320, 240), help="3D-room image size")
    e.add_argument("--wide-model", default=None, help="wide rotation model (default models/slfm_rotation_wide.pt)")
    e.add_argument("--head-calibration", default=None,
                   help="head calibration to read the azimuth model through "
                        "(default models/slfm_head_calibration.json)")
    e.add_argument("--measured-head-recordings", type=int, default=300,
                   help="also the measured MIT KEMAR head (libmysofa1): its own-turn calibration from this many "
                        "recordings; 0 = skip that table (it takes about 1 s per recording)")
    e.set_defaults(func=_eval)

    c = subparsers.add_parser(
        "calibrate-head", help="learn the head's delay -> direction curves from its own turns (no labels)",
        description="Fit which interaural delay means which direction for a head (slfm/head_calibration.py) from "
                    "recordings of fixed sources at several head yaws: known turns, unknown directions, no labels. "
                    "On a robot: record binaural/frames and slfm/head_rotation while a speaker plays noise or "
                    "music and the head turns now and then (move the speaker between takes; a few minutes in "
                    "all), then pass the bag with --bag. Without --bag the recordings are simulated through "
                    "--head. slfm_node and SourceTracker read the result through `head_calibration_path`.")
    c.add_argument("--bag", nargs="+", default=None,
                   help="rosbag2 recordings of the robot's ears and head yaw (see above), one or more takes")
    c.add_argument("--audio-topic", default="binaural/frames", help="AudioFrame topic of the two ears (--bag)")
    c.add_argument("--yaw-topic", default="slfm/head_rotation",
                   help="HeadRotation topic whose integrated_yaw is the head's yaw (--bag; sim: sim/head_yaw)")
    c.add_argument("--left-channel", type=int, default=0, help="left ear's channel in the AudioFrame (--bag)")
    c.add_argument("--right-channel", type=int, default=1, help="right ear's channel in the AudioFrame (--bag)")
    c.add_argument("--name", default=None, help="the head's name stored in the file")
    c.add_argument("--symmetric", action="store_true",
                   help="one curve for front and back (a head known to be front/back symmetric; implied for the "
                        "simulated spherical head); by default sources behind get their own curve")
    c.add_argument("--head", default="spherical", choices=["spherical", "kemar"],
                   help="without --bag: spherical = the training head (the shipped file); kemar = the measured MIT "
                        "KEMAR head")
    c.add_argument("--recordings", type=int, default=600, help="without --bag: recordings, four head yaws each")
    c.add_argument("--seed", type=int, default=11,
                   help="without --bag: rooms of the recordings (eval-slfm's clips are others)")
    c.add_argument("--azimuth-model", default=None, help="default models/slfm_azimuth.pt")
    c.add_argument("--out", default="head_calibration.json",
                   help="where to write it (the shipped file: models/slfm_head_calibration.json)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_calibrate_head)

    from .tracking_eval import add_arguments, run

    f = subparsers.add_parser("eval-slfm-tracking", help="front/back from head motion: SourceTracker vs the "
                                                         "per-window model on turning-head scenarios",
                              description="Full-circle azimuth error and front/back accuracy after head turns.")
    add_arguments(f)
    f.set_defaults(func=run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m av_pose_ros.slfm.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
