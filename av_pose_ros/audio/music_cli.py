"""`av-pose music-library build|list`: the BGM-mode music library (``audio/music_library.py``)."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "music-library", help="build or list the music library BGM-mode scenarios draw tracks from",
        description="The music library: real compositions (music21's corpus and a game's General MIDI songs, "
                    "rendered with fluidsynth and a GM soundfont, instruments varied per track) and recorded game "
                    "music (Debian drascula-music, asc-music), as 48 kHz mono WAVs at a fixed RMS, split into "
                    "train / val / test by composition so evaluation never hears training music. Made only from "
                    "installed packages (`make setup` as root installs them); nothing is downloaded. Root: --root, "
                    "else $AV_POSE_MUSIC_LIBRARY, else <repo>/music_library.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    b = actions.add_parser("build", help="(re)build the library from the installed packages (minutes)",
                           description="Render and decode every source the installed packages give, normalise, "
                                       "split by composition and write index.json. Tracks already stored with "
                                       "the same settings are reused (an interrupted build resumes).")
    b.add_argument("--root", default=None, help="library folder (default: see `av-pose music-library --help`)")
    b.add_argument("--max-tracks", type=int, default=None,
                   help="at most this many tracks, taken round-robin over sources (default: all, ~160)")
    b.add_argument("--seconds", type=float, default=60.0, help="longest stored track, seconds (default 60)")
    b.add_argument("--renderings", type=int, default=1,
                   help="instrumentations per corpus score (all in the score's split; default 1)")
    b.add_argument("--fresh", action="store_true",
                   help="make every track again (default: reuse tracks stored with the same settings)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)
    s = actions.add_parser("list", help="table of tracks: name, source, split, duration",
                           description="List the built library's tracks (and counts per split and source kind).")
    s.add_argument("--root", default=None, help="library folder")
    s.add_argument("--split", default="all", choices=("all", "train", "val", "test"))
    s.set_defaults(func=_list)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _build(args: argparse.Namespace) -> int:
    from .music_library import MusicLibraryError, build_library

    start = time.monotonic()
    try:
        lib = build_library(args.root, max_tracks=args.max_tracks, seconds=args.seconds, progress=not args.quiet,
                            renderings=args.renderings, fresh=args.fresh)
    except MusicLibraryError as err:
        print(f"music-library build: {err}", file=sys.stderr)
        return 1
    print(f"built {len(lib.tracks('all'))} tracks ({lib.meta.get('reused', 0)} reused) in "
          f"{time.monotonic() - start:.0f} s at {lib.root}")
    _print_summary(lib)
    for line in lib.meta.get("skipped", []):
        print(f"  skipped {line}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from .music_library import MusicLibrary, MusicLibraryError, describe

    try:
        lib = MusicLibrary.open(args.root)
    except MusicLibraryError as err:
        print(f"music-library list: {err}", file=sys.stderr)
        return 1
    print(describe(lib.tracks(args.split)))
    _print_summary(lib)
    return 0


def _print_summary(lib) -> None:
    for split, kinds in lib.summary().items():
        total = sum(kinds.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        print(f"{split}: {total} tracks ({parts})")
