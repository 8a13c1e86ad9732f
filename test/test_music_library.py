"""The music library: split by composition (never by excerpt), deterministic, loads at any rate, feeds simulated
scenes only tracks of their dataset split, and says how to build it when it is missing.

Every test uses ``generated_library`` in a temporary folder (no Debian package needed); the fluidsynth test runs
only where fluidsynth and the GM soundfont are installed.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from av_pose_ros.acoustics.emission import MusicEmission
from av_pose_ros.audio import music_library as ml
from av_pose_ros.sim.scenario import Scenario, ScenarioError, load_scenario


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return ml.generated_library(tmp_path_factory.mktemp("music"), tracks_per_split=3, seconds=3.0, renderings=2)


def test_every_composition_and_all_its_renderings_stay_in_one_split(lib):
    splits_of: dict[str, set] = {}
    for t in lib.tracks("all"):
        splits_of.setdefault(t.composition, set()).add(t.split)
    assert all(len(s) == 1 for s in splits_of.values()), splits_of
    per_split = Counter(next(iter(s)) for s in splits_of.values())
    assert per_split == {"train": 3, "val": 3, "test": 3}
    for split in ml.SPLITS:
        tracks = lib.tracks(split)
        assert len(tracks) == 6 and {t.split for t in tracks} == {split}
        assert all(t.split == ml.hash_split(t.composition) for t in tracks)      # the hash rule, unrepaired
    renderings = [t for t in lib.tracks("all") if t.composition == lib.tracks("test")[0].composition]
    a, b = (lib.load(t) for t in renderings)
    assert not np.allclose(a, b)               # another instrumentation of the same piece, not a copy


def test_hash_split_is_about_70_15_15_and_stable_when_tracks_are_added():
    ids = {f"music21/bach/bwv{i}": "midi" for i in range(400)}
    ids.update({f"drascula/track{i}": "recording" for i in range(60)})
    split = ml.assign_splits(ids)
    shares = Counter(split.values())
    assert abs(shares["train"] / len(ids) - 0.70) < 0.07
    assert abs(shares["val"] / len(ids) - 0.15) < 0.05 and abs(shares["test"] / len(ids) - 0.15) < 0.05
    more = dict(ids, **{f"music21/palestrina/mass{i}": "midi" for i in range(100)})
    bigger = ml.assign_splits(more)
    assert all(bigger[c] == split[c] for c in ids)          # a composition never changes split as the library grows


def test_small_library_is_repaired_to_three_per_split_with_both_kinds():
    ids = {f"rec{i}": "recording" for i in range(3)} | {f"mid{i}": "midi" for i in range(7)}
    split = ml.assign_splits(ids)
    for s in ml.SPLITS:
        members = [c for c in ids if split[c] == s]
        assert len(members) >= 3, (s, members)
        assert {ids[c] for c in members} == {"midi", "recording"}, (s, members)
    assert split == ml.assign_splits(dict(reversed(list(ids.items()))))       # order of the input does not matter


def test_generated_library_is_deterministic(tmp_path, lib):
    again = ml.generated_library(tmp_path / "a", tracks_per_split=3, seconds=3.0, renderings=2)
    assert [t.name for t in again.tracks("all")] == [t.name for t in lib.tracks("all")]
    first = lib.tracks("val")[0]
    np.testing.assert_array_equal(lib.load(first), again.load(again.tracks("val")[0]))
    assert again.digest() == lib.digest()
    other = ml.generated_library(tmp_path / "b", tracks_per_split=3, seconds=3.0, seed=1)
    assert not {t.composition for t in other.tracks("all")} & {t.composition for t in lib.tracks("all")}
    assert other.digest() != lib.digest()


def test_tracks_load_at_the_requested_rate_at_the_fixed_level(lib):
    track = lib.tracks("train")[0]
    native = lib.load(track)
    assert native.dtype == np.float32 and native.ndim == 1 and native.size == round(track.duration_s * ml.FS)
    low = lib.load(track, 16000)
    assert low.dtype == np.float32 and abs(low.size - track.duration_s * 16000) <= 1
    rms_db = 20 * np.log10(np.sqrt(np.mean(native.astype(np.float64) ** 2)))
    assert abs(rms_db - ml.TARGET_RMS_DBFS) < 0.5 or np.max(np.abs(native)) > ml.PEAK_LIMIT - 1e-3
    assert np.max(np.abs(native)) <= ml.PEAK_LIMIT + 1e-6
    index = json.loads((lib.root / ml.INDEX).read_text())
    assert all("original_rms_dbfs" in t and not Path(t["path"]).is_absolute() for t in index["tracks"])


def test_tracks_differ_in_spectrum_and_rhythm(lib):
    """Generated compositions are not one loop re-keyed: spectral centroids and onset rates spread out."""
    centroids, onsets = [], []
    for t in lib.tracks("all")[::2]:
        x = lib.load(t).astype(np.float64)
        spec = np.abs(np.fft.rfft(x))
        centroids.append(np.sum(spec * np.arange(spec.size)) / np.sum(spec) * ml.FS / 2 / spec.size)
        env = np.sqrt(np.mean(x[: x.size // 960 * 960].reshape(-1, 960) ** 2, axis=1))
        onsets.append(int(np.sum(np.diff(env) > 0.3 * env[:-1].mean())))
    assert max(centroids) > 1.5 * min(centroids), centroids
    assert len(set(onsets)) > 3, onsets


def test_draw_track_respects_the_split(lib):
    rng = np.random.default_rng(0)
    for split in ml.SPLITS:
        drawn = {ml.draw_track(lib, split, rng).name for _ in range(60)}
        assert drawn == {t.name for t in lib.tracks(split)}
    with pytest.raises(ValueError):
        ml.draw_track(lib, "everything", rng)


def test_scene_gets_a_track_of_its_split_and_an_offset(lib):
    scenario = load_scenario("music_library")
    assert scenario.music_source == "library"
    scene = scenario.sample(np.random.default_rng(3))
    assert scene.audio.music_source == "library" and scene.audio.music_file is None
    names = {t.path for t in lib.tracks("test")}
    for k in range(10):
        out = ml.scene_with_library_music(scene, "test", np.random.default_rng(k), library=lib, needed_s=1.0)
        assert out.audio.music_file in names and out.person == scene.person
        assert 0.0 <= out.audio.music_offset_s <= 2.0 + 1e-9
    chosen = replace(scene, audio=replace(scene.audio, music_file="/x.wav"))     # music_file overrides the library
    assert ml.scene_with_library_music(chosen, "test", np.random.default_rng(0), library=lib) is chosen
    synthetic = load_scenario("music").sample(np.random.default_rng(3))
    assert ml.scene_with_library_music(synthetic, "test", np.random.default_rng(0), library=lib) is synthetic


def test_dataset_draws_from_the_dataset_split(lib, monkeypatch):
    from av_pose_ros.lifting import dataset as ds

    monkeypatch.setenv(ml.ENV_ROOT, str(lib.root))
    scenario = load_scenario("music_library")
    for split in ml.SPLITS:
        allowed = {t.path for t in lib.tracks(split)}
        for i in range(6):
            scene = ds._with_library_music(scenario.sample(ds.sample_rng(split, 0, i)), split, 0, i)
            assert scene.audio.music_file in allowed
    same = [ds._with_library_music(scenario.sample(ds.sample_rng("val", 0, 1)), "val", 0, 1) for _ in range(2)]
    assert same[0].audio.music_file == same[1].audio.music_file
    assert same[0].audio.music_offset_s == same[1].audio.music_offset_s


def test_cache_key_follows_the_library(tmp_path, lib, monkeypatch):
    from av_pose_ros.lifting import dataset as ds

    monkeypatch.setenv(ml.ENV_ROOT, str(lib.root))
    key = ds.scenario_key("music_library")
    other = ml.generated_library(tmp_path / "other", tracks_per_split=3, seconds=3.0, seed=2)
    monkeypatch.setenv(ml.ENV_ROOT, str(other.root))
    assert ds.scenario_key("music_library") != key
    assert ds.scenario_key("music") == ds.scenario_key("music")     # synthetic music needs no library


def test_scenario_field_validates():
    import yaml

    from av_pose_ros.sim.rig import find_config

    good = yaml.safe_load(find_config("scenarios", "music").read_text())
    assert Scenario.from_dict(good).music_source == "synthetic"
    good["audio"]["music_source"] = "library"
    assert Scenario.from_dict(good).music_source == "library"
    good["audio"]["music_source"] = "spotify"
    with pytest.raises(ScenarioError, match="music_source"):
        Scenario.from_dict(good)


def test_missing_library_says_how_to_build_it(tmp_path, monkeypatch):
    with pytest.raises(ml.MusicLibraryMissing, match="av-pose music-library build"):
        ml.MusicLibrary.open(tmp_path / "nothing")
    from av_pose_ros.lifting import dataset as ds

    monkeypatch.setenv(ml.ENV_ROOT, str(tmp_path / "nothing"))
    with pytest.raises(ml.MusicLibraryMissing, match="music-library build"):
        ds.check_servable(load_scenario("music_library"))


def test_missing_fluidsynth_names_the_package_and_setup(monkeypatch):
    monkeypatch.setattr(ml.shutil, "which", lambda name: None)
    with pytest.raises(ml.MusicLibraryError, match="fluidsynth.*make setup"):
        ml.build_library("/nonexistent/never-made", progress=False)
    assert not Path("/nonexistent/never-made").exists()


def test_cli_list_prints_the_split(lib, capsys):
    import argparse

    from av_pose_ros.app.cli import AREA_CLIS
    from av_pose_ros.audio import music_cli

    assert "av_pose_ros.audio.music_cli" in AREA_CLIS          # `av-pose music-library ...`
    parser = argparse.ArgumentParser(prog="av-pose")
    music_cli.register(parser.add_subparsers())

    def main(argv):
        args = parser.parse_args(argv)
        return args.func(args)

    assert main(["music-library", "list", "--root", str(lib.root), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["name", "source", "split", "dur_s"]
    for t in lib.tracks("all"):
        assert (t.name in out) == (t.split == "test")
    assert "test: 6 tracks (generated 6)" in out
    assert main(["music-library", "list", "--root", "/nonexistent/lib"]) == 1
    assert "music-library build" in capsys.readouterr().err


def test_emission_plays_the_track_from_the_scene_offset():
    track = np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    plain = MusicEmission(track, 2, 4800)
    late = MusicEmission(track, 2, 4800, start_offset_samples=12345)
    np.testing.assert_array_equal(late.signal(0, 9600), plain.signal(12345, 9600))
    np.testing.assert_array_equal(late.window(3), plain.signal(3 * 4800 + 12345, 4800))


def _midi_bytes() -> bytes:
    """A format-0 MIDI file: four quarter notes (C E G C) on a piano at 120 bpm, two seconds."""
    events = bytes([0x00, 0xC0, 0x00])
    for note in (60, 64, 67, 72):
        events += bytes([0x00, 0x90, note, 0x64, 0x83, 0x60, 0x80, note, 0x40])
    events += bytes([0x00, 0xFF, 0x2F, 0x00])
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (480).to_bytes(2,
                                                                                                               "big")
    return header + b"MTrk" + len(events).to_bytes(4, "big") + events


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not ml.SOUNDFONT.is_file(),
                    reason="fluidsynth / fluid-soundfont-gm not installed")
def test_fluidsynth_renders_a_short_midi(tmp_path):
    midi = tmp_path / "four.mid"
    midi.write_bytes(_midi_bytes())
    samples, fs = ml.render_midi(midi, seconds=1.5)
    assert fs == ml.FS and samples.shape == (int(1.5 * ml.FS), 2)
    mono = samples.mean(axis=1)
    spec = np.abs(np.fft.rfft(mono[: ml.FS // 2]))           # the first note: middle C (261.6 Hz) and harmonics
    peak_hz = np.argmax(spec[50:]) + 50
    assert abs(peak_hz * 2 - 261.6) < 8 or abs(peak_hz * 2 - 523.3) < 12, peak_hz * 2
    prepared = ml.prepare_track(np.tile(samples, (3, 1)), fs, seconds=60.0)
    assert prepared is not None and prepared[0].dtype == np.float32


def test_build_resumes_reports_bad_sources_and_drops_stale_tracks(tmp_path, monkeypatch):
    """The build loop itself, with stand-in sources (no package): an interrupted build resumes from stored tracks,
    a source that fails is reported and skipped, tracks no longer made are deleted, and splits mix both kinds."""
    calls = []

    def job(name, kind):
        def make():
            calls.append(name)
            if name == "broken":
                raise ValueError("unreadable score")
            return ml.synthesize_composition(name, 5.5)[0], ml.FS
        return ml._Job(name, name, f"{kind}:test", "test", "", make)

    sources = [(f"rec{i}", "recording") for i in range(3)] + [(f"mid{i}", "midi") for i in range(6)] + [
        ("broken", "midi")]
    monkeypatch.setattr(ml, "_check_midi_tools", lambda: "fluidsynth")
    monkeypatch.setattr(ml, "_jobs", lambda seconds, renderings, fluidsynth: [job(n, k) for n, k in sources])
    lib = ml.build_library(tmp_path, seconds=5.0, progress=False)
    digest = lib.digest()
    assert len(lib.tracks("all")) == 9 and any("broken" in s and "unreadable" in s for s in lib.meta["skipped"])
    assert all({t.kind for t in lib.tracks(s)} == {"midi", "recording"} for s in ml.SPLITS)
    assert all(len(lib.tracks(s)) >= 3 for s in ml.SPLITS)
    calls.clear()
    again = ml.build_library(tmp_path, seconds=5.0, progress=False)
    assert calls == ["broken"] and again.meta["reused"] == 9
    assert again.digest() == digest             # same tracks: samples cached with the first build stay valid
    sources = sources[1:]
    ml.build_library(tmp_path, seconds=5.0, progress=False)
    assert not (tmp_path / "tracks" / "rec0.wav").exists() and (tmp_path / "tracks" / "rec1.wav").exists()


def test_corpus_scores_are_cut_by_measure_index_and_play_through(tmp_path):
    """A Humdrum mass whose measure numbers skip was cut to 4 s when cut by number; by index it keeps ~20 s."""
    pytest.importorskip("music21")
    from music21 import converter

    scores = {cid: path for cid, path, _ in ml.corpus_scores({"palestrina": (2000, "mass")})}
    midi = tmp_path / "kyrie.mid"
    ml._score_to_midi(scores["music21/palestrina/Kyrie_35_b"], "choir", 20.0, midi)
    quarters = converter.parse(str(midi)).highestTime          # no tempo mark: 120 quarters a minute
    assert 40 <= quarters <= 64, quarters
