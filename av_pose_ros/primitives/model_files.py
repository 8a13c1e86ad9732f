"""One file convention for every learned model (lifter, SLfM rotation, SLfM azimuth): write, check, read.

A model file is a torch file holding only plain data, so it loads with ``torch.load(..., weights_only=True)`` (no
code runs when a file is opened, whoever wrote it)::

    {"format": "av_pose_ros.model", "file_version": 1, "kind": "slfm_rotation",
     "config": {...},        # what the network class needs to be rebuilt (plain numbers, strings, lists, dicts)
     "state_dict": {...},    # tensors
     "metadata": {...}}      # anything else worth keeping: training summary, metrics, calibration, signs

``save_model_file`` writes it atomically (temporary file, then rename); ``load_model_file`` returns a
``ModelFile`` or raises ``ModelFileError`` (or the subclass a caller names) with a message that names the file, what
is wrong with it and what to do. ``build`` rebuilds a network from it with a clear error when the weights do not fit.

Files written before this convention (the lifter's ``{"format": "av_pose_ros.lifter", ...}`` and SLfM's
``{"kind", "format": 1, "config": json, "extra": json, ...}``) are still read: ``load_model_file`` converts them.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

FORMAT = "av_pose_ros.model"
FILE_VERSION = 1
LEGACY_LIFTER_FORMAT = "av_pose_ros.lifter"


class ModelFileError(ValueError):
    """A model file that is missing, unreadable, of another kind, or whose weights do not fit its network."""


@dataclass
class ModelFile:
    """What a model file holds. ``path`` is where it was read from (None before it is saved)."""

    kind: str
    config: dict
    state_dict: dict[str, torch.Tensor]
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    file_version: int = FILE_VERSION


def plain(value):
    """``value`` as plain data that a weights-only load accepts: tuples become lists, unknown objects strings,
    non-finite floats stay floats (torch keeps them; JSON would not)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:     # numpy / torch scalars
        return plain(value.item())
    return str(value)


def save_model_file(path: str | Path, kind: str, config: dict, model_or_state, metadata: dict | None = None) -> Path:
    """Write one model file: ``model_or_state`` is an ``nn.Module`` or a state dict (tensors copied to the CPU).

    The file appears at once or not at all (written next to it, then renamed), so a crash mid-write never leaves a
    half file where a node would load it."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    payload = {"format": FORMAT, "file_version": FILE_VERSION, "kind": str(kind), "config": plain(config),
               "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
               "metadata": plain(metadata or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _read(path: Path, error: type[ModelFileError], hint: str):
    if not path.exists():
        raise error(f"model file {path} not found; {hint}")
    if not path.is_file():
        raise error(f"model path {path} is not a file; {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, TypeError,
            KeyError) as exc:
        raise error(f"cannot read model file {path}: not a valid weights-only torch file ({exc}); the file is "
                    f"damaged or was not written by av_pose_ros: {hint}") from None
    except Exception as exc:  # noqa: BLE001 - pickle.UnpicklingError and friends
        raise error(f"cannot read model file {path}: {type(exc).__name__}: {exc}; {hint}") from None


def _from_legacy(payload: dict, path: Path, error: type[ModelFileError]) -> ModelFile | None:
    """The two layouts that came before this one, or None when ``payload`` is neither."""
    if payload.get("format") == LEGACY_LIFTER_FORMAT and "state_dict" in payload:
        meta = {k: payload[k] for k in ("metrics", "train", "version") if k in payload}
        return ModelFile("lifter", dict(payload.get("config") or {}), payload["state_dict"], meta, path, 0)
    if payload.get("format") == 1 and "kind" in payload and "state_dict" in payload:
        try:
            config = json.loads(payload.get("config", "{}"))
            extra = json.loads(payload.get("extra", "{}"))
        except (TypeError, ValueError) as exc:
            raise error(f"{path}: corrupt model config ({exc}); re-train or restore the file") from None
        return ModelFile(str(payload["kind"]), config, payload["state_dict"], extra, path, 0)
    return None


def load_model_file(path: str | Path, kind: str, *, error: type[ModelFileError] = ModelFileError,
                    hint: str = "") -> ModelFile:
    """Read and check a model file of ``kind``; raises ``error`` (a ``ModelFileError`` subclass) naming the file.

    ``hint`` says what to do when the file is unusable (e.g. "train one with `av-pose train-slfm` or use the shipped
    models/slfm_rotation.pt")."""
    path = Path(path)
    hint = hint or f"pass a {kind} model file written by av_pose_ros"
    payload = _read(path, error, hint)
    if not isinstance(payload, dict):
        raise error(f"{path} is not an av_pose_ros model file (it holds a {type(payload).__name__}); {hint}")
    if payload.get("format") == FORMAT:
        if int(payload.get("file_version", 0)) > FILE_VERSION:
            raise error(f"{path} was written by a newer av_pose_ros (model file version "
                        f"{payload.get('file_version')} > {FILE_VERSION}); update av_pose_ros")
        missing = [k for k in ("kind", "config", "state_dict") if k not in payload]
        if missing or not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state_dict"), dict):
            raise error(f"{path} is a damaged av_pose_ros model file (missing or malformed: "
                        f"{missing or ['config/state_dict']}); {hint}")
        found = ModelFile(str(payload["kind"]), payload["config"], payload["state_dict"],
                          dict(payload.get("metadata") or {}), path, int(payload.get("file_version", FILE_VERSION)))
    else:
        found = _from_legacy(payload, path, error)
        if found is None:
            keys = sorted(map(str, payload))[:6]
            raise error(f"{path} is not an av_pose_ros model file (keys {keys}); {hint}")
    if found.kind != kind:
        raise error(f"{path} holds a {found.kind!r} model, expected {kind!r}; {hint}")
    bad = [k for k, v in found.state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise error(f"{path}: state_dict entries are not tensors ({bad[:3]}); {hint}")
    return found


def build(model_file: ModelFile, make, *, error: type[ModelFileError] = ModelFileError):
    """``make(config)`` -> an ``nn.Module`` with the file's weights loaded (strict), in eval mode.

    Raises ``error`` when the config does not describe a valid network or the weights do not fit it (a file
    trained with another architecture, or damaged tensors)."""
    try:
        model = make(model_file.config)
        model.load_state_dict(model_file.state_dict, strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise error(f"{model_file.path}: weights do not fit the model architecture they describe ({exc}); "
                    f"re-train it with this version of av_pose_ros") from None
    return model.eval()

