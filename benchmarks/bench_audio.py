"""Audio I/O figures on this machine: round trip and stamp jitter of the device backend on a private PulseAudio
null sink (a real PortAudio full-duplex stream), and the sim backend's render time per window.

Stamp jitter is measured as the spread of the spacing between consecutive window stamps around the ideal one (the
sample distance between the windows' first samples over the rate: one period, or more or less when the round trip
was realigned) over the longest run of windows without xrun or re-anchor, for the published (DLL-filtered) stamps and,
as the baseline measured in the same run, for the raw per-window times taken straight from PortAudio's
``inputBufferAdcTime``; the ratio is the filter's gain. Medians over ``--runs`` stream openings.

    python benchmarks/bench_audio.py [--runs 3] [--windows 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time

import numpy as np

from av_pose_ros.audio.clock import jitter_report


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{platform.machine()} {os.cpu_count()} CPUs, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, "
            f"Python {platform.python_version()}")


def longest_clean_run(log) -> slice:
    cuts = [i for i, entry in enumerate(log) if entry[4]] + [len(log)]
    best, start = slice(0, 0), 0
    for cut in cuts:
        if cut - start > best.stop - best.start:
            best = slice(start, cut)
        start = cut
    return best


def device_runs(runs: int, windows: int) -> None:
    from av_pose_ros.audio.duplex import DuplexConfig, DuplexSource
    from av_pose_ros.audio.probe_setup import ProbeSettings
    from av_pose_ros.audio.virtual_device import VirtualDeviceError, VirtualSoundDevice

    device = VirtualSoundDevice(daemonize=False)
    try:
        device.start()
    except VirtualDeviceError as err:
        print(f"device backend: skipped, no virtual device: {err}")
        return
    os.environ.update(device.env())
    rows = []
    try:
        for _ in range(runs):
            config = DuplexConfig(device="pulse", startup_calibration=True, track_latency=True,
                                  reference_channels=(0, 0))
            source = DuplexSource(config, ProbeSettings())
            source.start()
            got, handed = [], []
            deadline = time.monotonic() + 10 + windows * 0.3
            while len(got) < windows and time.monotonic() < deadline:
                w = source.next_window(1.0)
                if w is not None:
                    got.append(w)
                    handed.append(time.time_ns())
            source.close()
            log = [entry for entry in source.stamp_log][5:]          # past the settling windows
            clean = longest_clean_run(log)
            seq = np.array([e[0] for e in log[clean]])
            contiguous = np.all(np.diff(seq) == 1)
            starts = [e[1] for e in log[clean]]
            published = jitter_report(np.array([e[3] for e in log[clean]]) * 1e9, 0.1, starts, 48000)
            raw = jitter_report(np.array([e[2] for e in log[clean]]) * 1e9, 0.1, starts, 48000)
            age = [(h - w.start_time_ns) / 1e6 - 100.0 for w, h in zip(got, handed)]
            rows.append({"round_trip": source.measured_latency[0] if source.measured_latency else np.nan,
                         "final_round_trip": source.latency_samples, "windows": len(got),
                         "usable": sum(w.usable for w in got), "xruns": source.counters["xruns"],
                         "latency_changes": source.counters["latency_changes"], "clean": clean.stop - clean.start,
                         "contiguous": bool(contiguous), "pub_std_us": published["spacing_std_us"],
                         "pub_max_us": published["spacing_max_us"], "raw_std_us": raw["spacing_std_us"],
                         "raw_max_us": raw["spacing_max_us"], "age_ms": float(np.median(age)) if age else np.nan})
    finally:
        device.stop()
        shutil.rmtree(device.directory, ignore_errors=True)
    print(f"device backend (PulseAudio null sink via ALSA 'pulse', PortAudio full duplex, blocksize 0, "
          f"latency 'high'), {len(rows)} openings x {windows} windows:")
    for r in rows:
        print(f"  round trip at start {r['round_trip']} samples ({r['round_trip'] / 48:.1f} ms), at end "
              f"{r['final_round_trip']}; usable {r['usable']}/{r['windows']}, xruns {r['xruns']}, realigned "
              f"{r['latency_changes']}x; jitter over {r['clean']} windows: published std {r['pub_std_us']:.0f} us "
              f"(max {r['pub_max_us']:.0f}), raw ADC std {r['raw_std_us']:.0f} us (max {r['raw_max_us']:.0f}); "
              f"handed out {r['age_ms']:.0f} ms after the window ended")

    def med(key):
        return float(np.nanmedian([r[key] for r in rows]))

    print(f"  MEDIAN round trip {med('round_trip'):.0f} samples = {med('round_trip') / 48:.1f} ms (spread "
          f"{np.nanmax([r['round_trip'] for r in rows]) - np.nanmin([r['round_trip'] for r in rows]):.0f} samples "
          f"between openings)")
    print(f"  MEDIAN stamp jitter: published {med('pub_std_us'):.0f} us std / {med('pub_max_us'):.0f} us max; raw "
          f"ADC {med('raw_std_us'):.0f} us std / {med('raw_max_us'):.0f} us max; raw/published std ratio "
          f"{med('raw_std_us') / max(med('pub_std_us'), 1e-9):.1f}x")
    print(f"  MEDIAN delivery after window end {med('age_ms'):.0f} ms (device latency + one window of tracking "
          "look-ahead)")


def sim_render(windows: int) -> None:
    from av_pose_ros.audio.probe_setup import ProbeSettings
    from av_pose_ros.audio.sim_source import SimConfig, SimSource

    source = SimSource(SimConfig(seed=0, pose="walking", realtime=False), ProbeSettings())
    times = []
    for _ in range(windows):
        t = time.perf_counter()
        source.next_window(10.0)
        times.append(time.perf_counter() - t)
    med = float(np.median(times[1:]))
    print(f"sim backend: median render {med * 1e3:.0f} ms per 100 ms window (realtime factor {0.1 / med:.2f}; "
          "walking person, default scenario)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--windows", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    device_runs(args.runs, args.windows)
    sim_render(10)


if __name__ == "__main__":
    main()
