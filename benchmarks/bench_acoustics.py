"""Acoustics benchmark: pose-kernel + spatial-encoding time per frame, speaker crosstalk, simulator speed.

Run: python benchmarks/bench_acoustics.py [--repeats 30]. Single-threaded on purpose (the target is one core).
The per-voxel reference is a plain Python loop over voxels and pairs; it runs on a subset of voxels and is
extrapolated linearly to the full grid (the output says so).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from av_pose_ros.acoustics import encoding  # noqa: E402
from av_pose_ros.acoustics.emission import slot_crosstalk_db  # noqa: E402
from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor, envelope  # noqa: E402
from av_pose_ros.sim.render import Simulator  # noqa: E402
from av_pose_ros.sim.scenario import load_scenario  # noqa: E402


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def reference_encoding(kernels, speakers, mics, points, fs, c):
    """Plain per-voxel loop: the obvious implementation the delay table replaces."""
    taps = kernels.shape[1]
    out = np.zeros((len(speakers), len(points)))
    for v, (x, y, z) in enumerate(points.tolist()):
        for p in range(len(speakers)):
            sx, sy, sz = speakers[p]
            mx, my, mz = mics[p]
            path = math.sqrt((x - sx) ** 2 + (y - sy) ** 2 + (z - sz) ** 2) + \
                math.sqrt((x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2)
            d = path / c * fs
            i = int(d)
            if 0 <= i < taps - 1:
                w = d - i
                out[p, v] = kernels[p, i] * (1 - w) + kernels[p, i + 1] * w
    return out


def scene_with(scenario, seed, **audio):
    scene = scenario.sample(np.random.default_rng(seed))
    person = dataclasses.replace(scene.person, pose="offer_left")
    return dataclasses.replace(scene, person=person, audio=dataclasses.replace(scene.audio, **audio))


def primed_extractor(sim, scene, pairs=None, speakers_on=None, frames=6, seed=0):
    """An extractor that has captured the empty room over windows 0 .. frames - 1 (one continuous stream)."""
    rig = scene.rig
    pairs = rig.pairs if pairs is None else pairs
    direct = np.linalg.norm(rig.speakers[pairs[:, 0]] - rig.mics[pairs[:, 1]], axis=1)
    c = sim.render_capture(scene, 0, person=False).speed_of_sound
    extractor = PoseKernelExtractor(pairs, direct, len(rig.mics), c, KernelConfig(taps=1200))
    extractor.empty_room.request_capture(frames)
    rng = np.random.default_rng(seed)
    for k in range(frames):
        cap = sim.render_capture(scene, k, person=False, rng=rng, speakers_on=speakers_on)
        extractor.process(cap.recording, cap.emissions, cap.fs, sequence=k)
    return extractor


MUSIC_FRAMES = 82     # the simulator's 8 s music loop plus the 0.2 s of room tail the first sample needs


def continue_stream(sim, scene, extractor, start, count, person, seed=9, present=None):
    """Process windows start .. start + count - 1 in order; returns the last capture and frame."""
    rng = np.random.default_rng(seed)
    for k in range(start, start + count):
        cap = sim.render_capture(scene, k, person=person, rng=rng)
        frame = extractor.process(cap.recording, cap.emissions, cap.fs, present, sequence=k)
    return cap, frame


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--reference-voxels", type=int, default=3000, help="voxels the Python reference loop visits")
    parser.add_argument("--scenario", default="default")
    args = parser.parse_args()

    scenario = load_scenario(args.scenario)
    sim = Simulator()
    scene = scene_with(scenario, 1, snr_db=30.0)
    extractor = primed_extractor(sim, scene)
    cap = sim.render_capture(scene, 10, rng=np.random.default_rng(5))
    speakers, mics = cap.speakers[cap.pairs[:, 0]], cap.mics[cap.pairs[:, 1]]
    frame = extractor.process(cap.recording, cap.emissions, cap.fs, True)

    rows = []
    t_kernel = median_time(lambda: extractor.process(cap.recording, cap.emissions, cap.fs, None), args.repeats)
    rows.append(("pose kernel (4 pairs, 4800 samples, 1200 taps)", t_kernel, ""))
    centre = cap.joints.mean(axis=0)
    grids = {"fine 32^3 (2 m cube)": encoding.person_grid(centre, 2.0, 32), "coarse room 0.1 m": encoding.room_grid()}
    for name, grid in grids.items():
        points = grid.points()
        t0 = time.perf_counter()
        table = encoding.DelayTable(points, speakers, mics, cap.fs, cap.speed_of_sound, 1200,
                                    voxel_size_m=grid.spacing_m)
        t_build = time.perf_counter() - t0
        t_encode = median_time(lambda t=table: t.encode(frame.kernels), args.repeats)
        plain = encoding.DelayTable(points, speakers, mics, cap.fs, cap.speed_of_sound, 1200)
        t_plain = median_time(lambda t=plain: t.encode(frame.kernels), args.repeats)
        subset = points[np.linspace(0, len(points) - 1, min(args.reference_voxels, len(points))).astype(int)]
        t_ref = median_time(lambda sub=subset: reference_encoding(frame.kernels, speakers, mics, sub, cap.fs,
                                                                  cap.speed_of_sound), 3) * len(points) / len(subset)
        rows.append((f"encode {name}: {len(points)} voxels (smoothed)", t_encode,
                     f"table build {t_build * 1e3:.0f} ms once"))
        rows.append((f"encode {name}: gather only", t_plain,
                     f"reference loop {t_ref * 1e3:.0f} ms* -> x{t_ref / t_plain:.0f}"))
        target = "target <= 10 ms" if "fine" in name else ""
        rows.append((f"kernel + encode {name}", t_kernel + t_encode, target))

    # music (BGM) probe: a music scene with the same pose; the stream must stay continuous, so every window is
    # rendered first and then processed in order (rendering is not timed)
    music_scene = scene_with(load_scenario("music"), 1, snr_db=30.0)
    rig = music_scene.rig
    music = PoseKernelExtractor(rig.pairs, rig.direct_path_m(), len(rig.mics), cap.speed_of_sound,
                                KernelConfig(taps=1200))
    music.empty_room.request_capture(MUSIC_FRAMES)
    rng = np.random.default_rng(6)
    empty_windows = [sim.render_capture(music_scene, k, person=False, rng=rng) for k in range(MUSIC_FRAMES)]
    t0 = time.perf_counter()
    for k, mc in enumerate(empty_windows):
        music.process(mc.recording, mc.emissions, mc.fs, sequence=k)
    t_capture = time.perf_counter() - t0
    person_windows = [sim.render_capture(music_scene, k, rng=rng)
                      for k in range(MUSIC_FRAMES, MUSIC_FRAMES + args.repeats)]
    times, mframe = [], None
    for k, mc in enumerate(person_windows):
        t0 = time.perf_counter()
        frame_k = music.process(mc.recording, mc.emissions, mc.fs, True, sequence=MUSIC_FRAMES + k)
        times.append(time.perf_counter() - t0)
        mframe = frame_k if frame_k.kernels is not None else mframe
    t_music = float(np.median(times))
    rows.append(("pose kernel, music probe (predict room, subtract, deconvolve)", t_music,
                 f"x{t_music / t_kernel:.1f} chirp"))
    if mframe is not None:
        fine = encoding.DelayTable(encoding.person_grid(centre, 2.0, 32).points(), speakers, mics, cap.fs,
                                   cap.speed_of_sound, 1200, voxel_size_m=2.0 / 32)
        t_enc = median_time(lambda: fine.encode(mframe.kernels), args.repeats)
        rows.append(("kernel + encode fine 32^3, music probe", t_music + t_enc, "target <= 10 ms"))
    rows.append((f"music empty-room capture, {MUSIC_FRAMES} windows incl. the fit", t_capture,
                 f"{music.empty_room.fit_report.iterations} CG iterations, once per capture"))

    print(f"\nPer-frame timings, median of {args.repeats} (one core)")
    print(f"{'step':58s} {'ms':>8s}  note")
    for name, t, note in rows:
        print(f"{name:58s} {t * 1e3:8.2f}  {note}")
    print(f"* reference = plain Python per-voxel loop run on {args.reference_voxels} voxels, extrapolated to the grid")

    # -- speakers in time slots: static crosstalk and what survives empty-room subtraction ---------------------
    rirs = next(iter(sim.rirs._store.values()))
    static = slot_crosstalk_db(rirs, sim.emission(scene), scene.rig.pairs)
    clean = scene_with(scenario, 1, snr_db=200.0)
    together = primed_extractor(sim, clean).process(*_cap(sim, clean, None), True).kernels
    residual = []
    for s, m in clean.rig.pairs:
        alone = primed_extractor(sim, clean, np.array([[s, m]]), [s]).process(*_cap(sim, clean, [s]), True).kernels[0]
        p = int(np.flatnonzero((clean.rig.pairs == (s, m)).all(1))[0])
        residual.append(10 * np.log10(np.sum((together[p] - alone) ** 2) / np.sum(alone ** 2)))
    print("\nSpeaker separation by time slots (4 speakers, 25 ms slots), per co-located pair")
    print("  static crosstalk into taps [0, slot) before subtraction (dB):", np.round(static, 1))
    print("  kernel difference all-speakers vs speaker-alone after subtraction (dB):", np.round(residual, 1))

    # -- empty-room subtraction residual: chirp vs music --------------------------------------------------------
    print("\nEmpty-room residual (no person): kernel energy / gated response energy per pair, dB")
    print("  music: multi-speaker room model fitted over 82 windows, predicted and subtracted in the time domain;")
    print("  'unexplained' = recording energy the room model leaves, dB re the recording")
    for snr in (40.0, 200.0):
        for probe, scen, frames in (("chirp", scenario, 8), ("music", load_scenario("music"), MUSIC_FRAMES)):
            s = scene_with(scen, 2, snr_db=snr)
            ex = primed_extractor(sim, s, frames=frames)
            _, f = continue_stream(sim, s, ex, frames, 4, False)
            db = 10 * np.log10(np.sum(f.kernels.astype(float) ** 2, 1)
                               / np.sum((envelope(f.responses) * ex.gate) ** 2, 1))
            extra = (f", unexplained {f.quality.empty_room_residual_db:.1f} dB"
                     if f.quality.probe_mode == "continuous" else "")
            print(f"  SNR {snr:5.0f} dB  {probe:6s}: {np.round(db, 1)}{extra}")

    # -- simulator ----------------------------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    scenes = [scenario.sample(rng) for _ in range(max(3, args.repeats // 5))]
    fresh = Simulator()
    t0 = time.perf_counter()
    for sc in scenes:
        fresh.render_capture(sc, 0, rng=rng)
    t_new_room = (time.perf_counter() - t0) / len(scenes)
    t_same_room = median_time(lambda: fresh.render_capture(scenes[0], 3, rng=rng), args.repeats)
    print("\nSimulator, seconds per capture (median)")
    print(f"  new room each capture (pyroomacoustics RIRs + body): {t_new_room:.3f} s")
    print(f"  cached room, new body pose:                          {t_same_room:.3f} s")
    print(f"  -> {3600 / t_same_room:.0f} captures per core-hour with rooms reused")


def _cap(sim, scene, speakers_on):
    cap = sim.render_capture(scene, 10, rng=np.random.default_rng(5), speakers_on=speakers_on)
    return cap.recording, cap.emissions, cap.fs


if __name__ == "__main__":
    main()
