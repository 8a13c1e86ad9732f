"""Regression oracle for the pose-kernel extractor: a few simulated windows through every probe mode and every
empty-room path (explicit capture, slow tracking, gaps, refused windows, the auto switch from periodic to
continuous), compared with the outputs recorded before ``acoustics/kernel.py`` was split into modules.

The recorded arrays (``test/data/kernel_regression.npz``) were written by this file's ``record()`` from the
pre-split code; regenerate only on a deliberate change of the maths (``python test/test_acoustics_kernel_regression.py
--record``) and say why in the commit.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission, SlottedEmission
from av_pose_ros.acoustics.kernel import AudioInputError, KernelConfig, PoseKernelExtractor

FS, WINDOW, C = 48000, 4800, 343.0
DATA = Path(__file__).parent / "data" / "kernel_regression.npz"
DIRECT_M = np.array([0.06, 0.07, 0.06, 0.08])
PAIRS = np.stack([np.arange(4)] * 2, axis=1)
QUALITY_FIELDS = ("snr_db", "clipped_fraction", "direct_delay_drift_s", "applied_shift_s", "empty_room_ready",
                  "empty_room_frames", "history_ok", "empty_room_residual_db", "latency_jump_samples",
                  "psf_sidelobe_db")


def room_responses(seed: int = 0, taps: int = 1500) -> np.ndarray:
    """(speakers, mics, taps) decaying random rooms with a direct path at each pair's distance (fractional)."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((4, 4, taps)) * 0.02 * np.exp(-np.arange(taps) / 300.0)
    freqs = np.fft.rfftfreq(taps)
    for s in range(4):
        for m in range(4):
            d = (DIRECT_M[s] if s == m else 0.3 + 0.05 * abs(s - m)) / C * FS
            h[s, m] += np.fft.irfft(np.exp(-2j * np.pi * freqs * d), taps) * (1.0 if s == m else 0.3)
    return h


def body(taps: int = 1500) -> np.ndarray:
    """A reflector: one delayed echo per pair, 1.6 m to 1.8 m of path."""
    h = np.zeros((4, 4, taps))
    freqs = np.fft.rfftfreq(taps)
    for s in range(4):
        for m in range(4):
            h[s, m] = 0.01 * np.fft.irfft(np.exp(-2j * np.pi * freqs * (1.6 + 0.05 * (s + m)) / C * FS), taps)
    return h


def capture(emission, k: int, h: np.ndarray, seed: int, latency: int = 0) -> np.ndarray:
    """Window k of a continuous stream through responses h (whole emission history convolved in), recorded
    ``latency`` samples late."""
    taps = h.shape[-1]
    x = emission.signal(k * WINDOW - taps - latency, taps + WINDOW)
    n = 1 << int(np.ceil(np.log2(2 * taps + WINDOW)))
    y = np.fft.irfft(np.einsum("smf,sf->mf", np.fft.rfft(h, n), np.fft.rfft(x, n)), n)[:, taps: taps + WINDOW]
    y = 0.3 * y / max(np.abs(y).max(), 1e-12)
    return (y + np.random.default_rng(seed).normal(0, 1e-5, y.shape)).astype(np.float32)


SCENES = {
    # name: (probe_mode, music?, capture frames)
    "periodic": ("periodic", False, 4),
    "auto_chirp": ("auto", False, 4),
    "continuous": ("continuous", True, 8),
    "auto_music": ("auto", True, 8),
}


def run_scene(name: str) -> dict[str, np.ndarray]:
    """Every output array of one scripted run, keyed ``<frame>/<field>``."""
    mode, music, frames = SCENES[name]
    emission = (MusicEmission(probes.synthetic_music(0.4), 4, WINDOW) if music
                else SlottedEmission(probes.linear_chirp(), 4, WINDOW))
    config = KernelConfig(probe_mode=mode, taps=480, max_range_m=1.5, room_taps=1600, music_capture_frames=frames,
                          empty_room_frames=frames, room_fit_iterations=40, max_room_residual_db=-20.0)
    ex = PoseKernelExtractor(PAIRS, DIRECT_M, 4, C, config)
    room, person = room_responses(), room_responses() + body()
    out: dict[str, np.ndarray] = {}
    # (window index, responses, person_present, corrupt?, latency): a clipped window, a dropped one, then the
    # device latency moves by two samples
    script = [(k, room, None, False, 0) for k in range(0, 3 + frames)]
    script += [(k, person, True, False, 0) for k in range(3 + frames, 6 + frames)]
    script += [(6 + frames, room, False, False, 0), (7 + frames, room, False, True, 0)]
    script += [(9 + frames, room, False, False, 0)]
    script += [(k, person, True, False, 0) for k in range(10 + frames, 12 + frames)]
    script += [(k, person, True, False, 2) for k in range(12 + frames, 19 + frames)]
    for i, (k, h, present, corrupt, latency) in enumerate(script):
        if i == 1:
            ex.empty_room.request_capture(frames)
        rec = capture(emission, k, h, seed=k, latency=latency)
        if corrupt:
            rec[:, ::50] = 1.0
        key = f"{i:02d}"
        try:
            frame = ex.process(rec, emission.window(k), FS, present, sequence=k)
        except AudioInputError as err:
            out[f"{key}/error"] = np.array(err.reason)
            continue
        out[f"{key}/mode"] = np.array(ex.mode)
        out[f"{key}/responses"] = frame.responses
        if frame.kernels is not None:
            out[f"{key}/kernels"] = frame.kernels
        for field in QUALITY_FIELDS:
            value = getattr(frame.quality, field)
            if value is not None:
                out[f"{key}/{field}"] = np.asarray(value)
    return out


STRIDE = 8   # the stored file keeps every eighth tap of the kernels and responses (size); full check: --check-full


def thin(arrays: dict[str, np.ndarray], stride: int) -> dict[str, np.ndarray]:
    return {k: v[..., ::stride] if k.endswith(("/kernels", "/responses")) else v for k, v in arrays.items()}


def record(path: Path = DATA, stride: int = STRIDE) -> None:
    """One file with three arrays (keys, text values, numbers): a thousand small npz entries would cost more in zip
    headers than in data."""
    arrays = {f"{scene}/{k}": v for scene in SCENES for k, v in thin(run_scene(scene), stride).items()}
    numbers = {k: np.asarray(v, float).ravel() for k, v in arrays.items() if v.dtype.kind not in "US"}
    shapes = [",".join(map(str, arrays[k].shape)) for k in numbers]
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(path, stride=np.array(stride), keys=np.array(list(numbers)), shapes=np.array(shapes),
                        values=np.concatenate(list(numbers.values())),
                        text=np.array([[k, str(v)] for k, v in arrays.items() if v.dtype.kind in "US"]))
    print(f"wrote {len(arrays)} arrays to {path}")


def load(path: Path) -> tuple[int, dict[str, np.ndarray]]:
    data = np.load(path)
    arrays, offset = {}, 0
    for key, shape in zip(data["keys"], data["shapes"]):
        shape = tuple(int(d) for d in str(shape).split(",") if d)
        size = int(np.prod(shape))
        arrays[str(key)] = data["values"][offset: offset + size].reshape(shape)
        offset += size
    arrays.update({str(k): np.array(str(v)) for k, v in data["text"]})
    return int(data["stride"]), arrays


def compare(path: Path, scene: str) -> dict[str, np.ndarray]:
    """Assert that a fresh run of ``scene`` gives the recorded arrays (atol 1e-6); returns the recorded ones."""
    stride, recorded = load(path)
    expected = {k.split("/", 1)[1]: v for k, v in recorded.items() if k.startswith(scene + "/")}
    got = thin(run_scene(scene), stride)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if value.dtype.kind in "US":
            assert str(got[key]) == str(value), key
        else:
            np.testing.assert_allclose(np.asarray(got[key], float), value, rtol=0, atol=1e-6, err_msg=key)
    return expected


@pytest.mark.parametrize("scene", list(SCENES))
def test_outputs_match_recorded(scene):
    expected = compare(DATA, scene)
    modes = {str(v) for k, v in expected.items() if k.endswith("/mode")}
    assert modes == ({"continuous"} if scene == "continuous" else {"periodic", "continuous"} if scene == "auto_music"
                     else {"periodic"})
    kernels = sum(k.endswith("/kernels") for k in expected)
    print(scene, kernels, "frames with kernels")
    assert kernels >= 3 and any(k.endswith("/error") for k in expected)


if __name__ == "__main__":
    # --record: write the stored oracle; --record-full PATH: all taps to PATH; --check-full PATH: compare with it
    if "--record" in sys.argv:
        record()
    elif "--record-full" in sys.argv:
        record(Path(sys.argv[sys.argv.index("--record-full") + 1]), 1)
    elif "--check-full" in sys.argv:
        full = Path(sys.argv[sys.argv.index("--check-full") + 1])
        for name in SCENES:
            compare(full, name)
            print(name, "identical within 1e-6")
