"""One model-file convention for every learned model: round trip, the legacy layouts, and clear errors for files that
cannot be used (each error names the file and says what to do)."""

from __future__ import annotations

import json

import pytest
import torch

from av_pose_ros.primitives.model_files import FORMAT, ModelFileError, build, load_model_file, plain, save_model_file


class Tiny(torch.nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.linear = torch.nn.Linear(int(config["inputs"]), int(config["outputs"]))


class CallerError(ModelFileError):
    """A caller's own error type (as SlfmModelError)."""


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    return Tiny({"inputs": 3, "outputs": 2, "sizes": (4, 5)})


def test_round_trip_keeps_config_weights_and_metadata(tmp_path, tiny):
    path = save_model_file(tmp_path / "sub" / "m.pt", "tiny", tiny.config, tiny,
                           {"metrics": {"mae": 1.5, "nan": float("nan")}, "where": tmp_path,
                            "sign": torch.tensor(-1.0)})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["kind"] == "tiny" and raw["config"]["sizes"] == [4, 5]
    found = load_model_file(path, "tiny")
    assert found.path == path and found.metadata["sign"] == -1.0 and found.metadata["where"] == str(tmp_path)
    net = build(found, Tiny)
    assert not net.training
    for key, value in tiny.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_legacy_slfm_and_lifter_layouts_still_load(tmp_path, tiny):
    state = tiny.state_dict()
    torch.save({"kind": "slfm_rotation", "format": 1, "config": json.dumps(plain(tiny.config)),
                "extra": json.dumps({"output_sign": -1.0}), "state_dict": state}, tmp_path / "slfm.pt")
    found = load_model_file(tmp_path / "slfm.pt", "slfm_rotation")
    assert found.file_version == 0 and found.metadata == {"output_sign": -1.0} and found.config["inputs"] == 3
    torch.save({"format": "av_pose_ros.lifter", "version": 3, "config": {"inputs": 3, "outputs": 2},
                "state_dict": state, "metrics": {"mm": 40.0}, "train": {}}, tmp_path / "lifter.pt")
    found = load_model_file(tmp_path / "lifter.pt", "lifter")
    assert found.kind == "lifter" and found.metadata["metrics"] == {"mm": 40.0}
    assert torch.equal(build(found, Tiny).linear.weight, tiny.linear.weight)


def test_unusable_files_raise_the_callers_error_naming_the_file(tmp_path, tiny):
    def fails(path, match, kind="tiny"):
        with pytest.raises(CallerError, match=match) as info:
            load_model_file(path, kind, error=CallerError, hint="retrain with `make tiny`")
        print(info.value)
        assert str(path) in str(info.value) and "retrain with `make tiny`" in str(info.value)

    fails(tmp_path / "missing.pt", "not found")
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file" * 20)
    fails(tmp_path / "corrupt.pt", "cannot read")
    good = save_model_file(tmp_path / "good.pt", "tiny", tiny.config, tiny)
    fails(good, "holds a 'tiny' model, expected 'other'", kind="other")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    fails(tmp_path / "foreign.pt", "not an av_pose_ros model file")
    torch.save([1, 2], tmp_path / "list.pt")
    fails(tmp_path / "list.pt", "holds a list")
    raw = torch.load(good, weights_only=True)
    torch.save({**raw, "state_dict": {"linear.weight": [1.0]}}, tmp_path / "nontensor.pt")
    fails(tmp_path / "nontensor.pt", "not tensors")
    torch.save({k: v for k, v in raw.items() if k != "config"}, tmp_path / "noconfig.pt")
    fails(tmp_path / "noconfig.pt", "damaged")
    torch.save({**raw, "file_version": 99}, tmp_path / "newer.pt")
    with pytest.raises(ModelFileError, match="newer av_pose_ros"):
        load_model_file(tmp_path / "newer.pt", "tiny")


def test_weights_that_do_not_fit_their_network(tmp_path, tiny):
    path = save_model_file(tmp_path / "m.pt", "tiny", {**tiny.config, "outputs": 7}, tiny)
    with pytest.raises(CallerError, match="do not fit") as info:
        build(load_model_file(path, "tiny"), Tiny, error=CallerError)
    assert str(path) in str(info.value)
