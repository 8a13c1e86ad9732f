"""A music library on disk for BGM mode: real compositions and recordings, split into train / val / test by track.

BGM mode (after BGM2Pose) senses pose with ordinary music, so a model trained and measured on one synthetic loop
says little about music it has never heard. This module builds a library from what installed packages ship (nothing
is downloaded at run time):

* MIDI compositions rendered with fluidsynth and a General MIDI soundfont (Debian ``fluidsynth``,
  ``fluid-soundfont-gm``): scores from music21's corpus (Bach chorales, Renaissance masses, Classical quartets,
  folk tunes, ragtime, ...) with instruments drawn per rendering, and the General MIDI songs of
  ``planetblupi-music-midi``;
* recorded game music: ``drascula-music`` (ogg) and ``asc-music`` (mp3), decoded with ``soundfile``.

Every track is stored as a 48 kHz mono float WAV of at most ``seconds`` (leading silence skipped), scaled to a fixed
RMS (``TARGET_RMS_DBFS``) with its original level kept in ``index.json``. The split is drawn per *composition*
(a composition and all its renderings share one split) from a hash of its id, so a track's split never depends on
which other tracks a build contains; only a library too small to give every split three compositions and both kinds
of source moves the compositions nearest a split boundary (see ``assign_splits``). Evaluation therefore never hears
music that training heard.

``MusicLibrary.open()`` reads a built library (root: ``$AV_POSE_MUSIC_LIBRARY`` or ``<repo>/music_library``);
``build_library`` makes one (``av-pose music-library build``); ``generated_library`` makes a small one without any
package for tests; ``draw_track`` / ``scene_with_library_music`` give a simulated scene a track of its split.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

FS = 48000
SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.70, 0.15, 0.15)
MIN_PER_SPLIT = 3
TARGET_RMS_DBFS = -20.0
PEAK_LIMIT = 0.99
MIN_TRACK_S = 4.0
INDEX = "index.json"
INDEX_VERSION = 1
RENDER_VERSION = 3                   # bump when a change to the rendering makes stored tracks stale (resume key)
ENV_ROOT = "AV_POSE_MUSIC_LIBRARY"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "music_library"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
BUILD_HINT = "run `av-pose music-library build` (needs the Debian packages that `make setup` installs as root)"

# Debian packages the build reads, and what each gives.
MIDI_PACKAGES = {"fluidsynth": "the fluidsynth renderer", "fluid-soundfont-gm": f"the GM soundfont {SOUNDFONT}"}
RECORDING_DIRS = {"drascula-music": Path("/usr/share/scummvm/drascula/audio"),
                  "asc-music": Path("/usr/share/games/asc/music")}
MIDI_DIRS = {"planetblupi-music-midi": Path("/usr/share/planetblupi/music")}
DEBIAN_MUSIC_PACKAGES = (*MIDI_PACKAGES, *RECORDING_DIRS, *MIDI_DIRS)

# music21 corpus folders used, with how many scores of each (a spread of periods and textures) and a genre label.
CORPUS_FOLDERS = {
    "bach": (24, "baroque chorale"), "palestrina": (14, "renaissance mass"), "monteverdi": (10, "renaissance madrigal"),
    "trecento": (8, "medieval song"), "beethoven": (6, "classical quartet"), "mozart": (6, "classical"),
    "haydn": (5, "classical quartet"), "schumann_robert": (4, "romantic song"), "schumann_clara": (3, "romantic"),
    "joplin": (1, "ragtime"), "chopin": (1, "romantic piano"), "handel": (1, "baroque"), "corelli": (1, "baroque"),
    "cpebach": (1, "baroque"), "schubert": (1, "romantic song"), "verdi": (1, "romantic opera"),
    "weber": (1, "romantic"), "johnson_j_r": (1, "spiritual"), "liliuokalani": (1, "song"), "beach": (1, "romantic"),
    "ciconia": (1, "medieval"), "luca": (1, "renaissance"), "lusitano": (1, "renaissance"),
    "josquin": (3, "renaissance mass"), "essenFolksong": (6, "folk song"), "oneills1850": (6, "irish folk tune"),
    "ryansMammoth": (6, "folk dance tune"), "airdsAirs": (3, "scottish air"), "leadSheet": (2, "popular song"),
    "schoenberg": (1, "modern"), "webern": (1, "modern"),
}
CORPUS_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
MAX_SCORE_BYTES = 250_000        # larger scores take tens of seconds to parse for 60 s of music

# Instrumentations for rendered scores: GM programs for the parts from the top voice down (the last repeats).
ENSEMBLES = {
    "piano": (0,), "electric piano": (4,), "harpsichord": (6,), "vibraphone": (11,), "marimba": (12,),
    "church organ": (19,), "nylon guitar": (24,), "steel guitar": (25,), "string quartet": (40, 40, 41, 42),
    "string ensemble": (48,), "choir": (52,), "brass": (56, 60, 57, 58), "saxophones": (64, 65, 66, 67),
    "woodwinds": (73, 68, 71, 70), "flute and harp": (73, 46), "synth pad": (88, 89, 38),
    "jazz combo": (65, 0, 32), "accordion": (21,),
}


class MusicLibraryError(RuntimeError):
    """The library cannot be built or read; the message says what is missing and how to get it."""


class MusicLibraryMissing(MusicLibraryError, FileNotFoundError):
    """No built library at the root; the message says to run ``av-pose music-library build``."""


@dataclass(frozen=True)
class Track:
    """One stored track (48 kHz mono float WAV at ``path``)."""

    name: str
    path: str
    split: str
    source: str                      # "midi:music21", "midi:planetblupi", "recording:drascula", "generated", ...
    duration_s: float
    composition: str = ""            # the id the split is drawn from (shared by all renderings)
    genre: str = ""
    instrument: str = ""
    original_rms_dbfs: float = 0.0   # level before normalisation (rendering or recording as shipped)

    @property
    def kind(self) -> str:
        """``midi``, ``recording`` or ``generated``: the sort of source, for balancing splits."""
        return self.source.split(":")[0]


def library_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$AV_POSE_MUSIC_LIBRARY``, else ``<repo>/music_library``."""
    return Path(root) if root is not None else Path(os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


class MusicLibrary:
    """A built library: its ``index.json`` and the WAV files beside it."""

    def __init__(self, root: Path, tracks: list[Track], meta: dict):
        self.root = root
        self._tracks = tracks
        self.meta = meta

    @classmethod
    def open(cls, root: str | Path | None = None) -> MusicLibrary:
        root = library_root(root)
        index = root / INDEX
        if not index.is_file():
            raise MusicLibraryMissing(f"no music library at {root} (no {INDEX}): {BUILD_HINT}, or point "
                                      f"${ENV_ROOT} at a built one")
        data = json.loads(index.read_text())
        known = Track.__dataclass_fields__    # a newer index's extra keys are ignored
        tracks = [Track(**{k: v for k, v in t.items() if k in known and k != "path"}, path=str(root / t["path"]))
                  if "path" in t else None for t in data["tracks"]]
        if None in tracks:
            raise MusicLibraryError(f"{index}: a track without a path; rebuild: {BUILD_HINT}")
        missing = [t.name for t in tracks if not Path(t.path).is_file()]
        if missing:
            raise MusicLibraryMissing(f"music library {root} lacks {len(missing)} track files (e.g. {missing[0]}): "
                                      f"{BUILD_HINT}")
        return cls(root, tracks, {k: v for k, v in data.items() if k != "tracks"})

    def tracks(self, split: str) -> list[Track]:
        """Tracks of ``split`` (``all`` for every track), sorted by name."""
        if split != "all" and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or 'all', got {split!r}")
        return sorted((t for t in self._tracks if split in ("all", t.split)), key=lambda t: t.name)

    def load(self, track: Track, fs: int = FS) -> np.ndarray:
        """float32 mono samples of ``track`` at ``fs`` (the stored level: ``TARGET_RMS_DBFS``)."""
        rate, data = wavfile.read(track.path)
        return _resample(np.asarray(data, dtype=np.float64), int(rate), int(fs)).astype(np.float32)

    def digest(self) -> str:
        """Hash of the tracks (names, splits, sources, levels; not build notes such as skipped or reused): part of
        every cache key of samples made with this library."""
        tracks = json.loads((self.root / INDEX).read_text())["tracks"]
        return hashlib.sha1(json.dumps(tracks, sort_keys=True).encode()).hexdigest()[:10]

    def summary(self) -> dict[str, dict[str, int]]:
        """Track counts per split and kind of source."""
        out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
        for t in self._tracks:
            out[t.split][t.kind] = out[t.split].get(t.kind, 0) + 1
        return out


_OPENED: dict[tuple[str, float], MusicLibrary] = {}


def open_cached(root: str | Path | None = None) -> MusicLibrary:
    """``MusicLibrary.open`` once per root and index version (dataset workers call this for every sample)."""
    root = library_root(root)
    index = root / INDEX
    key = (str(root), index.stat().st_mtime if index.exists() else -1.0)
    if key not in _OPENED:
        _OPENED.clear()
        _OPENED[key] = MusicLibrary.open(root)
    return _OPENED[key]


# -- splits -----------------------------------------------------------------------------------------------------
def _unit_hash(composition: str) -> float:
    """A uniform number in [0, 1) fixed by the composition id."""
    digest = hashlib.sha256(f"av_pose_music_split:{composition}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def hash_split(composition: str) -> str:
    """The split a composition's hash puts it in (70 / 15 / 15)."""
    u = _unit_hash(composition)
    edges = np.cumsum(SPLIT_SHARES)
    return SPLITS[int(min(np.searchsorted(edges, u, side="right"), len(SPLITS) - 1))]


def _split_centre(split: str) -> float:
    lo = float(sum(SPLIT_SHARES[: SPLITS.index(split)]))
    return lo + SPLIT_SHARES[SPLITS.index(split)] / 2


def assign_splits(compositions: dict[str, str], min_per_split: int = MIN_PER_SPLIT) -> dict[str, str]:
    """Split of each composition (id -> kind of source): its hash split, then two repairs for small libraries.

    1. Each kind with at least three compositions gets one in every split: a split without it takes, from the split
       with most of that kind, the composition whose hash lies nearest the taking split.
    2. Each split gets ``min_per_split`` compositions when the library has ``3 * min_per_split``: likewise from the
       largest split, preferring a kind the giving split keeps.
    A large library needs neither, so adding tracks never moves a composition to another split.
    """
    split = {c: hash_split(c) for c in sorted(compositions)}

    def move_one(to: str, candidates: list[str]) -> bool:
        if not candidates:
            return False
        best = min(candidates, key=lambda c: (abs(_unit_hash(c) - _split_centre(to)), c))
        split[best] = to
        return True

    for kind in sorted(set(compositions.values())):
        ids = [c for c in split if compositions[c] == kind]
        if len(ids) < len(SPLITS):
            continue
        for to in SPLITS:
            if any(split[c] == to for c in ids):
                continue
            counts = {s: sum(split[c] == s for c in ids) for s in SPLITS}
            donor = max(SPLITS, key=lambda s: counts[s])
            move_one(to, [c for c in ids if split[c] == donor])
    if len(split) >= len(SPLITS) * min_per_split:
        for to in SPLITS:
            while sum(v == to for v in split.values()) < min_per_split:
                counts = {s: sum(v == s for v in split.values()) for s in SPLITS}
                donor = max(SPLITS, key=lambda s: counts[s])
                kinds = {}
                for c in split:
                    if split[c] == donor:
                        kinds[compositions[c]] = kinds.get(compositions[c], 0) + 1
                spare = [c for c in split if split[c] == donor and kinds[compositions[c]] > 1]
                if not move_one(to, spare or [c for c in split if split[c] == donor]):
                    break
    return split


# -- drawing tracks for simulated scenes ------------------------------------------------------------------------
def draw_track(library: MusicLibrary, split: str, rng: np.random.Generator) -> Track:
    """A track of ``split`` drawn uniformly with ``rng``: a dataset's ``test`` samples only hear test music."""
    tracks = library.tracks(split)
    if not tracks:
        raise MusicLibraryError(f"music library {library.root} has no {split} track: {BUILD_HINT}")
    return tracks[int(rng.integers(len(tracks)))]


def scene_with_library_music(scene, split: str, rng: np.random.Generator, library: MusicLibrary | None = None,
                             needed_s: float = 0.0):
    """``scene`` with a library track of ``split`` and a random start in it, when its scenario asks for one.

    Only scenes whose ``audio.music_source`` is ``library`` and that name no ``music_file`` change; the start offset
    leaves ``needed_s`` of the track after it where the track is that long (the renderer loops it otherwise)."""
    audio = scene.audio
    if getattr(audio, "music_source", "synthetic") != "library" or audio.music_file:
        return scene
    library = library or open_cached()
    track = draw_track(library, split, rng)
    offset = float(rng.uniform(0.0, max(0.0, track.duration_s - needed_s)))
    return replace(scene, audio=replace(audio, music_file=track.path, music_offset_s=round(offset, 3)))


# -- signal processing common to every source -------------------------------------------------------------------
def _resample(x: np.ndarray, rate: int, fs: int) -> np.ndarray:
    if rate == fs:
        return x
    g = gcd(rate, fs)
    return resample_poly(x, fs // g, rate // g)


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-12)))


def prepare_track(samples: np.ndarray, rate: int, seconds: float, fs: int = FS, min_s: float = MIN_TRACK_S,
                  ) -> tuple[np.ndarray, float] | None:
    """Mono, ``fs``, leading silence skipped, at most ``seconds``, 20 ms fades, RMS at ``TARGET_RMS_DBFS``.

    Returns (samples, original RMS in dBFS) or None for a track with under ``min_s`` of sound. The peak is
    limited to ``PEAK_LIMIT`` by lowering the whole track (never by clipping), so a few very peaky tracks are quieter.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        return None
    x = _resample(x, int(rate), fs)
    hop = int(0.05 * fs)
    frames = np.sqrt(np.mean(x[: x.size // hop * hop].reshape(-1, hop) ** 2, axis=1)) if x.size >= hop else []
    if len(frames) == 0 or np.max(frames) <= 0:
        return None
    loud = np.flatnonzero(frames > np.max(frames) * 10 ** (-40 / 20))
    start, stop = loud[0] * hop, (loud[-1] + 1) * hop
    x = x[start: min(stop, start + int(round(seconds * fs)))]
    if x.size < min_s * fs:
        return None
    fade = int(0.02 * fs)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    rms = float(np.sqrt(np.mean(x ** 2)))
    gain = 10 ** (TARGET_RMS_DBFS / 20) / rms
    gain = min(gain, PEAK_LIMIT / float(np.max(np.abs(x))))
    return (x * gain).astype(np.float32), round(_db(rms), 2)


# -- building ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """One track to make: ``make()`` returns (samples, rate) or None."""

    name: str
    composition: str
    source: str
    genre: str
    instrument: str
    make: Callable[[], tuple[np.ndarray, int] | None]
    origin: str = ""                 # the file it is made from (part of the resume key)


def _check_midi_tools() -> str:
    fluidsynth = shutil.which("fluidsynth")
    missing = [pkg for pkg, ok in (("fluidsynth", fluidsynth), ("fluid-soundfont-gm", SOUNDFONT.is_file())) if not ok]
    if missing:
        raise MusicLibraryError(
            f"cannot render MIDI: Debian package(s) {' '.join(missing)} missing "
            f"({'; '.join(MIDI_PACKAGES[m] for m in missing)}). Install them with `make setup` as root, or "
            f"`apt-get install -y {' '.join(missing)}`, then run `av-pose music-library build` again.")
    return str(fluidsynth)


def render_midi(midi: Path, fluidsynth: str | None = None, fs: int = FS, gain: float = 0.4,
                seconds: float | None = None, timeout_s: float = 300.0) -> tuple[np.ndarray, int]:
    """(stereo samples, fs) of a MIDI file rendered by fluidsynth with the GM soundfont (its reverb and chorus on).

    ``seconds``: stop once that much is rendered (a score with a stray hour-long note or a looping game song would
    otherwise render for minutes); fluidsynth writes raw float32 frames, so a cut file is still whole frames."""
    fluidsynth = fluidsynth or _check_midi_tools()
    with tempfile.TemporaryDirectory(prefix="av_pose_midi_") as tmp:
        out = Path(tmp) / "out.raw"
        cmd = [fluidsynth, "-ni", "-q", "-F", str(out), "-r", str(fs), "-T", "raw", "-O", "float", "-E", "little",
               "-g", str(gain), str(SOUNDFONT), str(midi)]
        need = None if seconds is None else int(seconds * fs) * 2 * 4
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            if (need is not None and out.exists() and out.stat().st_size >= need) or time.monotonic() > deadline:
                proc.kill()
                break
            time.sleep(0.05)
        stderr = proc.communicate()[1] or ""
        if not out.is_file() or out.stat().st_size < 8:
            raise MusicLibraryError(f"fluidsynth rendered nothing from {midi}: {stderr.strip()[-300:]}")
        data = np.fromfile(out, dtype="<f4")
    data = data[: data.size // 2 * 2].reshape(-1, 2)
    return (data if need is None else data[: need // 8]).astype(np.float64), fs


def _ensemble_for(composition: str, rendering: int) -> str:
    names = sorted(ENSEMBLES)
    h = int(hashlib.sha256(f"ensemble:{composition}:{rendering}".encode()).hexdigest(), 16)
    return names[h % len(names)]


def _score_to_midi(score_path: Path, ensemble: str, seconds: float, midi_out: Path) -> None:
    """Write the first ``seconds`` (at most; estimated from its tempo) of a corpus score to MIDI, parts re-voiced."""
    from music21 import converter, instrument, stream, tempo

    # an ABC file is a book of tunes: parse only its first (the whole book takes tens of seconds)
    first = re.search(r"^X:\s*(\d+)", score_path.read_text(errors="replace"), re.M) if score_path.suffix == ".abc" \
        else None
    score = converter.parse(str(score_path), **({"number": int(first.group(1))} if first else {}))
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
    qpm = float(marks[0].getQuarterBPM() or 120.0) if marks else 120.0
    limit_ql = seconds * qpm / 60.0 * 1.05
    if score.highestTime > limit_ql:
        measures = score.parts[0].getElementsByClass(stream.Measure) if score.parts else []
        if measures:
            bar = max(float(measures[-1].barDuration.quarterLength), 1.0)
            # by index: measure numbers in some corpus files skip (Humdrum), so numbers cut far too early
            score = score.measures(0, int(np.ceil(limit_ql / bar)) + 1, indicesNotNumbers=True)
    _play_through(score)
    programs = ENSEMBLES[ensemble]
    for i, part in enumerate(score.parts):
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        part.insert(0, instrument.instrumentFromMidiProgram(programs[min(i, len(programs) - 1)]))
    score.write("midi", fp=str(midi_out))


def _play_through(score) -> None:
    """Drop repeat barlines and repeat expressions (da capo, segno, ...): the MIDI writer expands repeats and fails
    on many corpus scores' (and a cut score's) unmatched ones; the library keeps at most a minute anyway."""
    from music21 import bar, repeat, stream

    for measure in score.recurse().getElementsByClass(stream.Measure):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, bar.Barline("regular"))
    for mark in list(score.recurse().getElementsByClass((repeat.RepeatExpression, repeat.RepeatMark))):
        if mark.activeSite is not None:
            mark.activeSite.remove(mark)


def corpus_scores(limit_per_folder: dict[str, tuple[int, str]] | None = None) -> list[tuple[str, Path, str]]:
    """(composition id, path, genre) of the music21 corpus scores the library uses: per folder, the first scores
    in hash order (a fixed, varied pick), each under ``MAX_SCORE_BYTES``."""
    try:
        from music21 import corpus
    except ImportError as err:
        raise MusicLibraryError("music21 is not installed: run `make setup` (it is in requirements.txt)") from err
    limits = limit_per_folder or CORPUS_FOLDERS
    by_folder: dict[str, list[Path]] = {}
    for p in map(Path, corpus.getPaths()):
        if "corpus" not in p.parts or p.suffix not in CORPUS_SUFFIXES:
            continue
        rel = p.parts[p.parts.index("corpus") + 1:]
        if rel[0] in limits and p.stat().st_size <= MAX_SCORE_BYTES:
            by_folder.setdefault(rel[0], []).append(p)
    out = []
    for folder, (count, genre) in limits.items():
        paths = by_folder.get(folder, [])
        ids = {"/".join(p.parts[p.parts.index("corpus") + 1:]).rsplit(".", 1)[0]: p for p in paths}
        for cid in sorted(ids, key=lambda c: hashlib.sha256(f"pick:{c}".encode()).hexdigest())[:count]:
            out.append((f"music21/{cid}", ids[cid], genre))
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip("-")


def _jobs(seconds: float, renderings: int, fluidsynth: str) -> list[_Job]:
    """Every track the installed packages allow, recordings first (fewest, so ``max_tracks`` keeps them)."""
    import soundfile

    jobs: list[_Job] = []

    def recording(path: Path, package: str):
        def make():
            data, rate = soundfile.read(str(path), frames=int((seconds + 30) * soundfile.info(str(path)).samplerate),
                                        always_2d=True)
            return data, rate
        short = package.replace("-music", "")
        return _Job(f"{short}-{_safe(path.stem)}", f"{short}/{path.stem}", f"recording:{short}", "game music", "",
                    make, str(path))

    for package, folder in RECORDING_DIRS.items():
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.suffix.lower() in (".ogg", ".flac", ".mp3", ".wav"):
                jobs.append(recording(path, package))
    for package, folder in MIDI_DIRS.items():
        short = package.split("-")[0]
        for path in sorted(folder.glob("*.mid")) if folder.is_dir() else []:
            jobs.append(_Job(f"{short}-{_safe(path.stem)}", f"{short}/{path.stem}", f"midi:{short}", "game music",
                             "general midi (as composed)",
                             lambda path=path: render_midi(path, fluidsynth, seconds=seconds + 5), str(path)))
    for cid, path, genre in corpus_scores():
        for r in range(renderings):
            ensemble = _ensemble_for(cid, r)

            def make(path=path, ensemble=ensemble):
                with tempfile.TemporaryDirectory(prefix="av_pose_score_") as tmp:
                    midi = Path(tmp) / "score.mid"
                    _score_to_midi(path, ensemble, seconds, midi)
                    return render_midi(midi, fluidsynth, seconds=seconds + 5)
            jobs.append(_Job(f"m21-{_safe(cid.split('/', 1)[1])}-r{r}", cid, "midi:music21", genre, ensemble, make,
                             str(path)))
    return jobs


def _write_library(root: Path, entries: list[dict], meta: dict) -> MusicLibrary:
    kinds = {e["composition"]: e["source"].split(":")[0] for e in entries}
    splits = assign_splits(kinds)
    for e in entries:
        e["split"] = splits[e["composition"]]
    data = {"version": INDEX_VERSION, "fs": FS, "target_rms_dbfs": TARGET_RMS_DBFS,
            "split_rule": "by composition: sha256 of the id, 70/15/15; small libraries repaired (assign_splits)",
            **meta, "tracks": sorted(entries, key=lambda e: e["name"])}
    tmp = root / (INDEX + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, root / INDEX)
    return MusicLibrary.open(root)


def _store(root: Path, job_name: str, samples: np.ndarray) -> str:
    rel = f"tracks/{job_name}.wav"
    (root / "tracks").mkdir(parents=True, exist_ok=True)
    wavfile.write(str(root / rel), FS, samples)
    return rel


def build_library(root: str | Path | None = None, *, max_tracks: int | None = None, seconds: float = 60.0,
                  progress: bool = True, renderings: int = 1, fresh: bool = False) -> MusicLibrary:
    """Build the library under ``root`` from installed packages; returns it opened.

    Needs fluidsynth and the GM soundfont (``MusicLibraryError`` names the missing Debian package otherwise);
    recordings are used when their packages are installed. ``renderings``: instrumentations per corpus score.
    A track already stored with the same settings (``tracks/<name>.json``) is reused unless ``fresh``, so an
    interrupted build resumes; stored tracks the build no longer makes are deleted.
    """
    from tqdm import tqdm

    root = library_root(root)
    fluidsynth = _check_midi_tools()
    jobs = _jobs(float(seconds), int(renderings), fluidsynth)
    if max_tracks is not None:
        jobs = _spread(jobs, int(max_tracks))
    (root / INDEX).unlink(missing_ok=True)
    (root / "tracks").mkdir(parents=True, exist_ok=True)
    entries, skipped, reused = [], [], 0
    for job in tqdm(jobs, desc="music library", unit="track", disable=not progress):
        entry = None if fresh else _stored(root, job, seconds)
        if entry is not None:
            entries.append(entry)
            reused += 1
            continue
        try:
            made = job.make()
            prepared = None if made is None else prepare_track(made[0], made[1], seconds)
        except Exception as err:  # noqa: BLE001 - one unreadable score must not stop the build; it is reported
            skipped.append(f"{job.name}: {type(err).__name__}: {str(err)[:120]}")
            continue
        if prepared is None:
            skipped.append(f"{job.name}: under {MIN_TRACK_S} s of sound")
            continue
        samples, level = prepared
        entry = dict(name=job.name, path=_store(root, job.name, samples), source=job.source,
                     duration_s=round(samples.size / FS, 3), composition=job.composition, genre=job.genre,
                     instrument=job.instrument, original_rms_dbfs=level)
        (root / "tracks" / f"{job.name}.json").write_text(json.dumps({"key": _resume_key(job, seconds),
                                                                       "entry": entry}))
        entries.append(entry)
    if not entries:
        raise MusicLibraryError(f"no track could be made ({len(skipped)} skipped): {skipped[:3]}")
    keep = {e["name"] for e in entries}
    for f in (root / "tracks").iterdir():
        if f.suffix in (".wav", ".json") and f.stem not in keep:
            f.unlink()
    packages = [p for p in DEBIAN_MUSIC_PACKAGES if p in MIDI_PACKAGES or (RECORDING_DIRS | MIDI_DIRS)[p].is_dir()]
    return _write_library(root, entries, {"seconds": float(seconds), "packages": packages + ["music21"],
                                          "skipped": skipped, "reused": reused})


def _resume_key(job: _Job, seconds: float) -> str:
    origin = Path(job.origin)
    size = origin.stat().st_size if job.origin and origin.is_file() else -1
    text = f"{RENDER_VERSION}|{job.name}|{job.source}|{job.instrument}|{float(seconds)}|{job.origin}|{size}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _stored(root: Path, job: _Job, seconds: float) -> dict | None:
    """The entry of a track this build would make that is already stored with the same settings, else None."""
    side = root / "tracks" / f"{job.name}.json"
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != _resume_key(job, seconds) or not (root / data["entry"]["path"]).is_file():
        return None
    return data["entry"]


def _spread(jobs: list[_Job], n: int) -> list[_Job]:
    """At most ``n`` jobs, taken round-robin over sources so a small build still has every kind."""
    by_source: dict[str, list[_Job]] = {}
    for job in jobs:
        by_source.setdefault(job.source, []).append(job)
    queues = [list(v) for _, v in sorted(by_source.items())]
    out: list[_Job] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


# -- generated library (tests; no package needed) ---------------------------------------------------------------
TIMBRES = {  # harmonic amplitudes (h -> 1/h**tilt), decay per second, inharmonicity
    "organ": (0.6, 0.3, 0.0), "plucked": (1.2, 3.0, 0.0), "bell": (0.9, 1.5, 0.02), "reed": (0.4, 0.8, 0.0),
    "soft pad": (2.0, 0.2, 0.0), "bright saw": (1.0, 1.0, 0.0),
}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10),
          "pentatonic": (0, 2, 4, 7, 9)}
DRUMS = ("none", "rock", "waltz", "shuffle")


def _note(f0: float, n: int, fs: int, timbre: str, rng: np.random.Generator) -> np.ndarray:
    """One decaying note: harmonic timbres from a one-period wavetable (fast), inharmonic ones partial by partial."""
    tilt, decay, inharm = TIMBRES[timbre]
    t = np.arange(n) / fs
    harmonics = [h for h in range(1, 16) if f0 * h * np.sqrt(1 + inharm * h * h) < fs / 2 * 0.95]
    phases = rng.uniform(0, 2 * np.pi, len(harmonics))
    if inharm == 0:
        grid = 2 * np.pi * np.arange(2048) / 2048
        table = sum(np.sin(h * grid + ph) / h ** tilt for h, ph in zip(harmonics, phases))
        out = table[((f0 * t) % 1.0 * 2048).astype(np.int64) % 2048]
    else:
        out = sum(np.sin(2 * np.pi * f0 * h * np.sqrt(1 + inharm * h * h) * t + ph) / h ** tilt
                  for h, ph in zip(harmonics[:6], phases))
    attack = np.minimum(1.0, t / 0.01)
    return out * attack * np.exp(-t * decay * (1 + 0.2 * np.log2(max(f0, 30) / 110)))


def _drums(pattern: str, beat_s: float, n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    if pattern == "none":
        return out
    beats = {"rock": (("kick", 0), ("hat", 0.5), ("snare", 1), ("hat", 1.5)), "waltz": (("kick", 0), ("hat", 1),
             ("hat", 2)), "shuffle": (("kick", 0), ("hat", 0.67), ("snare", 1), ("hat", 1.67))}[pattern]
    cycle = 3 if pattern == "waltz" else 2
    k = 0
    while True:
        for kind, at in beats:
            start = int((k * cycle + at) * beat_s * fs)
            if start >= n:
                return out
            length = min(n - start, int(0.15 * fs))
            tt = np.arange(length) / fs
            if kind == "kick":
                hit = np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 12)
            elif kind == "snare":
                hit = (0.6 * rng.standard_normal(length) + 0.4 * np.sin(2 * np.pi * 190 * tt)) * np.exp(-tt * 25)
            else:
                hit = 0.4 * np.diff(rng.standard_normal(length + 1)) * np.exp(-tt * 60)
            out[start:start + length] += hit
        k += 1


def synthesize_composition(composition: str, seconds: float, fs: int = FS, timbre: str | None = None,
                           ) -> tuple[np.ndarray, dict]:
    """A short piece fixed by its id: key, scale, tempo, chord progression, melody, drum pattern and timbre.

    Not a real composition, but tracks differ as songs do (spectra, rhythm, density), which is what tests of the
    split and of music the model never heard need. ``timbre`` overrides the drawn one (another rendering)."""
    seed = int(hashlib.sha256(composition.encode()).hexdigest()[:12], 16)
    rng = np.random.default_rng(seed)          # the composition: the same for every rendering
    key_hz = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = SCALES[sorted(SCALES)[rng.integers(len(SCALES))]]
    beat_s = 60.0 / float(rng.uniform(70, 160))
    drawn = sorted(TIMBRES)[rng.integers(len(TIMBRES))]
    timbre = timbre or drawn
    drums = DRUMS[rng.integers(len(DRUMS))]
    bar = 4 * beat_s
    n_bars = int(np.ceil(seconds / bar))
    progression = rng.integers(0, len(scale), size=4)
    melody = rng.integers(0, len(scale), size=(n_bars, 4))
    sound = np.random.default_rng([seed, 1])   # phases and drum noise
    n = int(round(seconds * fs))
    out = np.zeros(n)
    for b in range(n_bars):
        degree = int(progression[b % 4])
        start = int(b * bar * fs)
        length = min(n - start, int(bar * fs))
        for step in (0, 2, 4):                 # triad of the scale degree, an octave below the melody
            semis = scale[(degree + step) % len(scale)] + 12 * ((degree + step) // len(scale))
            out[start:start + length] += 0.3 * _note(key_hz * 2 ** (semis / 12), length, fs, timbre, sound)
        for beat in range(4):                  # a melody note per beat
            s0 = start + int(beat * beat_s * fs)
            ln = min(n - s0, int(beat_s * fs))
            if ln <= 0:
                break
            semis = scale[int(melody[b, beat])] + 12
            out[s0:s0 + ln] += 0.5 * _note(key_hz * 2 ** (semis / 12), ln, fs, timbre, sound)
    out += 0.5 * _drums(drums, beat_s, n, fs, sound) * np.std(out)
    meta = dict(genre=f"generated {drums} beat", instrument=timbre)
    return out, meta


def generated_library(root: str | Path, *, tracks_per_split: int = 3, seconds: float = 6.0, seed: int = 0,
                      renderings: int = 1) -> MusicLibrary:
    """A small library of synthetic compositions (no package needed), split by the same hash rule as a real one.

    Compositions ``gen<seed>-<k>`` are taken in order until every split has ``tracks_per_split`` of them, so each
    split's compositions are the ones the hash put there; ``renderings`` > 1 renders each with several timbres.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, list[str]] = {s: [] for s in SPLITS}
    k = 0
    while any(len(v) < tracks_per_split for v in chosen.values()):
        cid = f"gen{seed}-{k:03d}"
        split = hash_split(cid)
        if len(chosen[split]) < tracks_per_split:
            chosen[split].append(cid)
        k += 1
    entries = []
    for cid in sorted(c for v in chosen.values() for c in v):
        timbres = [None] + [sorted(TIMBRES)[int(hashlib.sha256(f"{cid}:{r}".encode()).hexdigest(), 16) % len(TIMBRES)]
                            for r in range(1, renderings)]
        for r, timbre in enumerate(timbres):
            samples, meta = synthesize_composition(cid, seconds + 1.0, FS, timbre)
            prepared = prepare_track(samples, FS, seconds, min_s=0.5 * seconds)
            if prepared is None:
                raise MusicLibraryError(f"generated composition {cid} came out silent")
            name = f"{cid}-r{r}"
            entries.append(dict(name=name, path=_store(root, name, prepared[0]), source="generated",
                                duration_s=round(prepared[0].size / FS, 3), composition=cid,
                                original_rms_dbfs=prepared[1], **meta))
    return _write_library(root, entries, {"seconds": float(seconds), "packages": [], "generated_seed": int(seed)})


def describe(tracks: Iterable[Track]) -> str:
    """A table (name, source, split, duration) for ``av-pose music-library list``."""
    rows = [(t.name, t.source, t.split, f"{t.duration_s:.1f}", t.genre, t.instrument) for t in tracks]
    head = ("name", "source", "split", "dur_s", "genre", "instrument")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows])
