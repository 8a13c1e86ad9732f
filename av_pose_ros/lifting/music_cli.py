"""`av-pose train-music-frontend` and `av-pose eval-music-frontend` (heavy imports inside the handlers)."""

from __future__ import annotations

VARIANT_NAMES = ("cpe", "fa", "fa_cpe", "fa_refine")


def _train(args) -> int:
    from .music_train import run

    return run(args)


def _eval(args) -> int:
    from .music_eval import run

    return run(args)


def _common(p) -> None:
    p.add_argument("--scenario", default="config/scenarios/music.yaml", help="scenario name or YAML path")
    p.add_argument("--data-seed", type=int, default=0, help="group stream seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=1, help="processes generating missing groups (threads 1 each)")
    p.add_argument("--cache", default=None, help="data cache root (default data_cache/)")
    p.add_argument("--synthetic-music", action="store_true", help="synthetic tracks even if the library exists")
    p.add_argument("--no-progress", action="store_true")


def register(subparsers) -> None:
    t = subparsers.add_parser(
        "train-music-frontend", help="train the learned music front end (frequency-wise attention, contrastive "
                                     "pose extraction) for BGM mode",
        description="Train the music front end on simulated music groups (one room fit, the same pose under "
                    "several music windows, the same window with another pose, the chirp kernel of the same scene "
                    "as target); tracks are split by track. The best epoch is chosen on val; test is never read.")
    _common(t)
    t.add_argument("--variant", choices=VARIANT_NAMES, default="fa_cpe",
                   help="fa: frequency-wise attention only; cpe: refiner + contrastive embedding only; fa_cpe: both; "
                        "fa_refine: both parts with contrastive weight 0 (ablation)")
    t.add_argument("--train-groups", type=int, default=80)
    t.add_argument("--val-groups", type=int, default=20)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--groups-per-batch", type=int, default=6)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--contrastive-weight", type=float, default=None, help="default: the variant's")
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument("--train-dir", default=None, help="train on the cached groups in this folder instead")
    t.add_argument("--val-dir", default=None, help="validate on the cached groups in this folder instead")
    t.add_argument("--out", default="models/music_frontend.pt")
    t.set_defaults(func=_train)

    e = subparsers.add_parser(
        "eval-music-frontend", help="lifter accuracy with each music front end vs the chirp probe on the same scenes",
        description="MPJPE / wrist (mm) and PCK@100 of the lifter fed the plain continuous kernel, each front-end "
                    "model given, and the chirp probe's kernel of the same scenes (same rooms, people, detections); "
                    "a table by music level; a PNG. Decide on --split val; test once for final figures.")
    _common(e)
    e.add_argument("--split", choices=("val", "test"), default="val")
    e.add_argument("--groups", type=int, default=20)
    e.add_argument("--groups-dir", default=None, help="evaluate the cached groups in this folder (of --split)")
    e.add_argument("--frontend", nargs="*", default=["models/music_frontend.pt"],
                   help="front-end model files (name=path or path)")
    e.add_argument("--model", default="models/lifter.pt", help="the lifter")
    e.add_argument("--lifter-music", default=None,
                   help="a lifter fine-tuned on music kernels (models/lifter_music.pt): adds the rows music_lifter "
                        "(plain continuous kernel) and music_lifter_chirp (the chirp kernel of the same scenes)")
    e.add_argument("--fallback", default="models/lifter_vision.pt",
                   help="vision-only model that poses a frame without a usable kernel, as lifter_node does (the "
                        "frame still counts in `failed`); '' scores such frames at the default guess instead")
    e.add_argument("--json", default=None, help="write the results here")
    e.add_argument("--plot", default=None, help="write a PNG bar chart here")
    e.set_defaults(func=_eval)
