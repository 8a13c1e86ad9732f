"""`av-pose train-lifter` and `av-pose eval-lifter` (heavy imports inside the handlers)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap


def _train(args) -> int:
    from .train import LifterTrainConfig, train_lifter

    net = {"grid_n": args.grid_n, "grid_size_m": args.grid_size, "width": args.width, "stages": args.stages,
           "fusion": args.fusion, "use_audio": not args.no_audio}
    config = LifterTrainConfig(scenario=args.scenario, out=args.out, num_train=args.num_train, num_val=args.num_val,
                               epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               shift_voxels=args.shift_voxels, threads=args.threads, device=args.device,
                               resume=args.resume, net_config=net, max_minutes=args.max_minutes,
                               cache_root=args.cache, gen_workers=args.workers, init=args.init,
                               progress=not args.no_progress)
    summary = train_lifter(config)
    if summary["rank"] == 0:
        print(f"best validation MPJPE {summary['best_val_mpjpe_mm']:.1f} mm after {summary['minutes']:.1f} min; "
              f"model written to {args.out}")
    return 0


def _eval(args) -> int:
    from .evaluate import evaluate, evaluate_suite, format_suite, format_tables, plot_results, plot_suite

    vision = None if args.vision_model.lower() == "none" else args.vision_model
    progress = not args.no_progress
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.suite:
        result = evaluate_suite(args.num, args.seed, families=args.families, model=args.model, vision_model=vision,
                                cache_root=args.cache, workers=args.workers, progress=progress, split=args.split)
        plot = args.plot or "eval_suite.png"
        plot_suite(result, plot)
        print(json.dumps(result) if args.json else f"{format_suite(result)}\n\nbar chart written to {plot}")
        return 0
    result = evaluate(args.scenario, args.num, args.seed, model=args.model, cache_root=args.cache,
                      workers=args.workers, progress=progress and not args.json, vision_model=vision,
                      split=args.split)
    if args.plot:
        plot_results(result, args.plot)
    if args.json:
        print(json.dumps(result["summary"]))
    else:
        print(format_tables(result))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def register(subparsers) -> None:
    t = subparsers.add_parser("train-lifter", help="train the audio-visual lifting CNN on simulated data",
                              description="Train the lifter on samples simulated from a scenario file (cached under "
                                          "data_cache/). Runs data-parallel under torchrun. The best epoch is "
                                          "chosen on the val stream; the test stream is never read (it is for "
                                          "eval-lifter's final figures).")
    t.add_argument("--scenario", nargs="+", default=["config/scenarios/default.yaml"],
                   help="scenario names or YAML paths; several train one model on their union")
    t.add_argument("--out", default="models/lifter.pt", help="where the best model is written")
    t.add_argument("--num-train", type=int, nargs="+", default=[6000], help="samples, one count or one per scenario")
    t.add_argument("--num-val", type=int, nargs="+", default=[400], help="samples, one count or one per scenario")
    t.add_argument("--init", default=None, help="fine-tune this model file instead of starting from scratch "
                                                "(its architecture overrides --grid-n/--width/...)")
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--shift-voxels", type=int, default=1, help="augmentation: random whole-voxel shifts")
    t.add_argument("--grid-n", type=int, default=24, help="fine-grid voxels per side")
    t.add_argument("--grid-size", type=float, default=2.4, help="fine-grid side (m)")
    t.add_argument("--width", type=int, default=24, help="CNN channels")
    t.add_argument("--stages", type=int, default=3)
    t.add_argument("--fusion", choices=("max", "attention"), default="max", help="how pair features are fused")
    t.add_argument("--no-audio", action="store_true",
                   help="train the learned vision-only baseline (same network without its audio branch; samples "
                        "are simulated without sound)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    t.add_argument("--workers", type=int, default=None, help="processes for simulation/encoding (default: all)")
    t.add_argument("--cache", default=None, help="data cache folder (default: data_cache/)")
    t.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    t.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)

    from .evaluate import FAMILIES

    e = subparsers.add_parser(
        "eval-lifter", help="evaluate the lifter against its baselines and audio ablations",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "MPJPE, root and wrist error (mm), PCK@100mm and flagged fraction of cnn, tof, vision_only and "
            "vision_learned, and of the CNN's ablations audio_shuffled and audio_zero, all on the same N simulated "
            "frames of a scenario (overall and by band), or of every evaluation family (--suite: one table, a PNG "
            "bar chart, JSON {\"families\": {name: {\"methods\": ..., \"ablations\": ...}}}).", 100)
        + "\n\n" + textwrap.fill(
            "Evaluation hygiene: make every decision (architecture, hyper-parameters, checkpoint, calibration, "
            "thresholds) on --split val; the default test stream, which never shares a draw with train/val, is "
            "for the final figures only.", 100))
    e.add_argument("--scenario", default="config/scenarios/default.yaml", help="scenario name or YAML path")
    e.add_argument("--suite", action="store_true", help="evaluate every family (see --families)")
    e.add_argument("--families", nargs="+", default=list(FAMILIES),
                   help=f"scenario names or paths for --suite (default: {' '.join(FAMILIES)})")
    e.add_argument("--num", type=int, default=500, help="frames (per family with --suite)")
    e.add_argument("--seed", type=int, default=0, help="stream seed (test frames never share draws with training)")
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="val for decisions, test (default) for final figures")
    e.add_argument("--model", default="models/lifter.pt")
    e.add_argument("--vision-model", default="models/lifter_vision.pt",
                   help="the learned vision-only baseline ('none' leaves vision_learned out)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--plot", default=None, help="write a PNG: skeletons and error by distance; with --suite the "
                                                "bar chart (default eval_suite.png)")
    e.add_argument("--workers", type=int, default=None, help="simulation processes (default: all cores)")
    e.add_argument("--threads", type=int, default=None, help="torch CPU threads for the networks (default: torch's, "
                                                             "all cores; 1 on a machine busy with other work)")
    e.add_argument("--cache", default=None, help="data cache folder (default: data_cache/)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars (they go to stderr)")
    e.set_defaults(func=_eval)

    from .music_cli import register as register_music

    register_music(subparsers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="av-pose-lifting")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
