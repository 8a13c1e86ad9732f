"""Empty-room model on music it has not heard: residual of the prediction before and after a track change.

One simulated music scene (no person): the room model is fitted over the usual capture of track A (the
synthetic 8 s loop), then predicts (a) later windows of the same loop (heard) and (b) windows after the
playlist switches to track B (a different synthetic composition, or a library track), which it never heard.
Prints the median residual (recording energy the prediction leaves, dB re the recording) per case.

    .venv/bin/python benchmarks/bench_room_new_music.py [--capture 82] [--tonal] [--track-a A.wav --track-b B.wav]

Any WAV works as a track (e.g. two tracks of the music library, `av-pose music-library list`).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission
from av_pose_ros.acoustics.room_model import RoomModel
from av_pose_ros.sim.render import Simulator
from av_pose_ros.sim.scenario import load_scenario

CAPTURE = 82


class Playlist(MusicEmission):
    """Track A until clock sample ``switch``, then track B (same speaker offsets scheme): a track change."""

    def __init__(self, a: np.ndarray, b: np.ndarray, n_speakers: int, window: int, switch: int):
        super().__init__(a, n_speakers, window)
        self.second = MusicEmission(b, n_speakers, window)
        self.switch = int(switch)

    def signal(self, start: int, n_samples: int) -> np.ndarray:
        first = super().signal(start, n_samples)
        later = self.second.signal(start - self.switch, n_samples)
        idx = int(start) + np.arange(int(n_samples))
        return np.where(idx[None, :] >= self.switch, later, first)


def tonal_music(duration_s: float = 8.0, fs: int = 48000, seed: int = 0) -> np.ndarray:
    """Chords of harmonic notes only (no drums): what a piano or string piece gives, the hard case for the model."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    out = np.zeros(n)
    bar = int(rng.uniform(0.6, 1.2) * fs)
    for start in range(0, n, bar):
        tt = np.arange(min(bar, n - start)) / fs
        root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        for ratio in (1.0, 1.26, 1.5):
            for h in range(1, 16):
                f = root * ratio * h
                if f < fs / 2:
                    out[start: start + tt.size] += np.sin(2 * np.pi * f * tt + rng.uniform(0, 6.3)) / h ** 1.5 * \
                        np.exp(-tt * 2.0)
    return (0.9 * out / np.max(np.abs(out))).astype(np.float32)


def scene_and_sim(seed: int, track_a: np.ndarray | None, track_b: np.ndarray, switch_window: int):
    scene = load_scenario("music").sample(np.random.default_rng(seed))
    scene = dataclasses.replace(scene, audio=dataclasses.replace(scene.audio, snr_db=30.0))
    sim = Simulator()
    a = sim.emission(scene)
    key = next(iter(sim._emissions))
    n = a.window_samples
    b = track_b * np.float32(np.abs(a.track).max() / max(np.abs(track_b).max(), 1e-9))
    a_track = a.track if track_a is None else track_a * np.float32(np.abs(a.track).max() / np.abs(track_a).max())
    sim._emissions[key] = Playlist(a_track, b, a.n_speakers, n, switch_window * n)
    return scene, sim


def residual_db(model: RoomModel, emission, recording: np.ndarray, k: int) -> float:
    n = recording.shape[-1]
    x = emission.signal(k * n - (model.taps - 1), model.taps - 1 + n).astype(float)
    err = recording - model.predict(x, n)
    return float(10 * np.log10(np.sum(err ** 2) / np.sum(recording.astype(float) ** 2)))


def kernel_correlations(scene, sim, capture: int, switch: int, seed: int, prior: str) -> dict[str, list[float]]:
    """Correlation of the music kernel with the chirp kernel of the same scene and person, per window, on music the
    capture heard (track A) and on music it never heard (track B), with the room model's ``prior``."""
    from functools import partial

    from av_pose_ros.acoustics import empty_room
    from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor
    from av_pose_ros.acoustics.physics import speed_of_sound

    rig = scene.rig
    c = speed_of_sound(scene.audio.temperature_c)
    chirp_scene = dataclasses.replace(scene, audio=dataclasses.replace(scene.audio, probe="chirp"))
    original = empty_room.RoomModel
    empty_room.RoomModel = partial(original, prior=prior)
    try:
        music, chirp = (PoseKernelExtractor(rig.pairs, rig.direct_path_m(), len(rig.mics), c,
                                            KernelConfig(probe_mode=mode)) for mode in ("continuous", "periodic"))
        music.empty_room.request_capture(capture)
        chirp.empty_room.request_capture(8)
        for k in range(8):
            cap = sim.render_capture(chirp_scene, k, person=False, rng=np.random.default_rng([seed, k]))
            chirp.process(cap.recording, cap.emissions, cap.fs, sequence=k)
        windows = {"heard": range(capture + 2, capture + 12), "unheard": range(switch + 3, switch + 13)}
        out: dict[str, list[float]] = {"heard": [], "unheard": []}
        for k in range(switch + 13):
            cap = sim.render_capture(scene, k, person=k >= capture, rng=np.random.default_rng([seed, k]))
            frame = music.process(cap.recording, cap.emissions, cap.fs, sequence=k)
            which = [name for name, ks in windows.items() if k in ks]
            if which and frame.kernels is not None:
                ref = sim.render_capture(chirp_scene, k, rng=np.random.default_rng([seed, k]))
                reference = chirp.process(ref.recording, ref.emissions, ref.fs, sequence=k).kernels
                out[which[0]].append(float(np.corrcoef(frame.kernels.ravel(), reference.ravel())[0, 1]))
    finally:
        empty_room.RoomModel = original
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--track-b", default="", help="WAV of track B (default: synthetic_music(seed=7))")
    ap.add_argument("--track-a", default="", help="WAV of track A, the one the capture hears")
    ap.add_argument("--tonal", action="store_true", help="tracks A and B both tonal (chords, no drums)")
    ap.add_argument("--capture", type=int, default=CAPTURE, help="windows of the empty-room capture")
    ap.add_argument("--taps", type=int, default=9600)
    ap.add_argument("--prior", choices=("none", "decay"), nargs="+", default=["none", "decay"])
    ap.add_argument("--kernels", action="store_true", help="also: correlation of the music kernel (person present) "
                    "with the chirp kernel of the same scene, on heard and unheard music")
    ap.add_argument("--passes", type=int, default=1, help="empirical-Bayes passes of the decay prior")
    args = ap.parse_args(argv)
    track_b = probes.load_wav(args.track_b, 48000) if args.track_b else (
        tonal_music(seed=7) if args.tonal else probes.synthetic_music(seed=7))
    track_a = probes.load_wav(args.track_a, 48000) if args.track_a else (tonal_music(seed=0) if args.tonal else None)
    capture = args.capture
    switch = capture + 20
    scene, sim = scene_and_sim(args.seed, track_a, track_b, switch)
    emission = sim.emission(scene)
    t0 = time.perf_counter()
    heard_k = list(range(capture + 2, capture + 12))
    unheard_k = list(range(switch + 3, switch + 23))
    caps = {k: sim.render_capture(scene, k, person=False, rng=np.random.default_rng([args.seed, k]))
            for k in list(range(capture)) + heard_k + unheard_k}
    print(f"rendered {len(caps)} windows in {time.perf_counter() - t0:.1f} s")
    n = emission.window_samples
    L = args.taps
    x = emission.signal(-(L - 1), L - 1 + capture * n).astype(float)
    y = np.concatenate([caps[k].recording for k in range(capture)], axis=-1).astype(float)
    for prior in args.prior:
        model = RoomModel(emission.n_speakers, y.shape[0], L, prior=prior, prior_passes=args.passes)
        t0 = time.perf_counter()
        report = model.fit(x, y, L - 1)
        fit_s = time.perf_counter() - t0
        heard = [residual_db(model, emission, caps[k].recording, k) for k in heard_k]
        unheard = [residual_db(model, emission, caps[k].recording, k) for k in unheard_k]
        print(f"prior {prior:6s} fit {fit_s:5.1f} s ({report.iterations} it, fit error {report.fit_error_db:.1f} dB)"
              f"  heard median {np.median(heard):6.1f} dB  unheard median {np.median(unheard):6.1f} dB "
              f"(worst {np.max(unheard):.1f}, share <= -30 dB {np.mean(np.array(unheard) <= -30):.2f})")
        if args.kernels:
            corr = kernel_correlations(scene, sim, capture, switch, args.seed, prior)
            print(f"prior {prior:6s} music vs chirp kernel correlation: heard median "
                  f"{np.median(corr['heard']) if corr['heard'] else float('nan'):.3f} ({len(corr['heard'])} kernels), "
                  f"unheard median {np.median(corr['unheard']) if corr['unheard'] else float('nan'):.3f} "
                  f"({len(corr['unheard'])} kernels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
