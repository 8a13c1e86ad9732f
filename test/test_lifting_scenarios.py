"""eval-lifter on every scenario file: nothing valid crashes it, every method runs on the same frames, the suite's
JSON has the documented shape, and a scenario the generator cannot serve fails naming the field.

Samples are simulated into the data cache (``data_cache/`` or ``$AV_POSE_DATA_CACHE``, keyed by the scenario file's
content and the generator version), so a second run only evaluates.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from av_pose_ros.lifting import Lifter
from av_pose_ros.lifting import dataset as ds
from av_pose_ros.lifting.evaluate import ABLATIONS, FAMILIES, METHODS, evaluate, evaluate_suite, format_suite
from av_pose_ros.sim.scenario import ScenarioError, load_scenario

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "config" / "scenarios").glob("*.yaml"))
NUM = 2


@pytest.fixture(scope="module")
def lifters():
    return Lifter.load(REPO / "models" / "lifter.pt"), Lifter.load(REPO / "models" / "lifter_vision.pt")


def test_every_family_has_a_scenario_file():
    names = {p.stem for p in SCENARIOS}
    assert set(FAMILIES) <= names, set(FAMILIES) - names
    for name in FAMILIES:
        assert load_scenario(name).name == name


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_eval_runs_on_every_scenario(path, lifters, tmp_path, monkeypatch):
    lifter, vision = lifters
    if load_scenario(str(path)).music_source == "library":     # a small generated library: no Debian packages
        from av_pose_ros.audio.music_library import generated_library

        monkeypatch.setenv("AV_POSE_MUSIC_LIBRARY", str(generated_library(tmp_path / "music", seconds=10.0).root))
    result = evaluate(str(path), NUM, 0, workers=1, progress=False, lifter=lifter, vision_lifter=vision)
    s = result["summary"]
    assert set(s["methods"]) == set(METHODS) and set(s["ablations"]) == set(ABLATIONS)
    for row in [*s["methods"].values(), *s["ablations"].values()]:
        assert row["n"] == NUM                      # every method on the same frames, refusals included
        assert math.isfinite(row["mpjpe_mm"]) and 0 <= row["flagged_fraction"] <= 1
    assert np.all(np.isfinite(result["preds"]["cnn"]))
    json.dumps(s)


def test_suite_json_and_table(tmp_path, lifters):
    result = evaluate_suite(NUM, 0, families=["default", "close"], progress=False, workers=1)
    assert set(result["families"]) == {"default", "close"}
    for family in result["families"].values():
        assert {"methods", "ablations"} <= set(family)
        assert set(family["methods"]["cnn"]) >= {"mpjpe_mm", "wrist_mm", "pck100", "flagged_fraction",
                                                 "mpjpe_unflagged_mm", "wrist_unflagged_mm", "median_ms"}
    table = format_suite(result)
    assert table.count("*audio_shuffled") == 2 and "vision_learned" in table
    from av_pose_ros.lifting.evaluate import plot_suite

    plot_suite(result, tmp_path / "suite.png")
    assert (tmp_path / "suite.png").read_bytes()[:4] == b"\x89PNG"


def test_music_is_primed_with_the_whole_loop():
    """Music's continuous deconvolution models only music it has heard: 4 empty windows gave no kernel (the old
    crash); the generator primes with the pipeline's music capture and gets one."""
    from av_pose_ros.acoustics.kernel import KernelConfig

    assert ds.empty_frames_for("music") == KernelConfig().music_capture_frames > ds.empty_frames_for("chirp")


def _scenario_file(tmp_path, **audio) -> Path:
    data = yaml.safe_load((REPO / "config" / "scenarios" / "default.yaml").read_text())
    data["audio"].update(audio)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unservable_scenario_names_the_field(tmp_path):
    path = _scenario_file(tmp_path, window_s=0.02)        # valid schema, but shorter than the kernel
    with pytest.raises(ScenarioError, match=r"audio\.window_s"):
        ds.generate(str(path), "test", 0, 1, tmp_path / "cache", 1, False)
    path = _scenario_file(tmp_path, window_s=0.03, probe_duration_s=0.05)
    with pytest.raises(ScenarioError, match=r"audio\.probe_duration_s"):
        ds.generate(str(path), "test", 0, 1, tmp_path / "cache", 1, False)
