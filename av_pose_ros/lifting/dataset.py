"""Training and evaluation samples for the lifter, simulated from a scenario file and cached on disk.

A sample is what the node has at one frame: 2D keypoints (simulated detections in ideal pixels), the camera
intrinsics and pose, the rig's pair positions, pose kernels from the real kernel pipeline (``PoseKernelExtractor``
primed with empty-room captures of the same room, then fed the capture with the person), plus metric ground truth
and the coarse person location (non-learned, stored so that training epochs do not recompute it).

Sample ``i`` of split ``split`` with seed ``seed`` is drawn from ``np.random.default_rng([tag(split), seed, i])``: the
result does not depend on the worker count, and training (``train``/``val``) and evaluation (``test``) streams
never share a draw whatever seeds they are given. Samples are cached as npz shards under ``data_cache/``, keyed by
the scenario file's content, the generator version and a hash of the generator's sources, so repeated runs only
generate what is missing and a changed simulator never serves old samples.

The empty room is primed as the node primes it: ``EMPTY_FRAMES`` windows for a periodic probe (chirp, sweep), the
kernel pipeline's ``music_capture_frames`` (the whole music loop) for music, whose continuous deconvolution only
models music it has heard. A frame the pipeline refuses (no kernel) is stored with all-zero kernels and
``coarse_ok`` false; every audio method then counts it as a failure.

``audio=False`` samples (for training vision-only models) draw the same scenes from the same streams but render
no sound: joints and detections only, with zero-width kernels, more than a hundred times faster. Their detection
noise is a different realisation than in the full sample of the same index (the audio rendering consumes the
stream first); the distribution is the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 3
SHARD_SIZE = 250
EMPTY_FRAMES = 4
SPLITS = ("train", "val", "test")
DEFAULT_CACHE = Path(os.environ.get("AV_POSE_DATA_CACHE", Path(__file__).resolve().parents[2] / "data_cache"))

# Arrays of one sample and their shapes (P = pairs, T = taps); stacked along a leading sample axis in shards.
FIELDS = ("keypoints", "K", "world_from_camera", "kernels", "speakers", "mics", "joints", "fs", "c", "stature",
          "distance", "pose", "coarse_centre", "coarse_rotation", "coarse_ok", "image_size")


def split_tag(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return zlib.crc32(split.encode())


def sample_rng(split: str, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([split_tag(split), int(seed), int(index)])


def taps_for(fs: int) -> int:
    """Kernel length: 1200 taps at 48 kHz (8.6 m of bistatic path, persons up to ~4.2 m)."""
    return int(round(1200 * fs / 48000))


# -- generation (runs in worker processes) ----------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(scenario_path: str):
    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import load_scenario

    _WORKER["scenario"] = load_scenario(scenario_path)
    check_servable(_WORKER["scenario"])
    _WORKER["sim"] = Simulator()


def empty_frames_for(probe: str) -> int:
    """Empty-room windows to prime the kernel pipeline with: the node's defaults for the probe's mode."""
    from av_pose_ros.acoustics.kernel import KernelConfig

    return KernelConfig().music_capture_frames if probe == "music" else EMPTY_FRAMES


def check_servable(scenario) -> None:
    """Raise ``ScenarioError`` naming the field when a valid scenario asks for something the generator cannot
    produce samples of (checked before any rendering)."""
    from av_pose_ros.sim.scenario import ScenarioError

    window = int(round(scenario.window_s * scenario.fs))
    taps = taps_for(scenario.fs)
    if window < taps:
        raise ScenarioError(f"{scenario.name}: audio.window_s = {scenario.window_s} s is {window} samples at "
                            f"audio.fs_hz = {scenario.fs}, shorter than the {taps}-tap pose kernel; use "
                            f"window_s >= {taps / scenario.fs:.3f} s")
    if scenario.probe != "music" and scenario.probe_duration > scenario.window_s:
        raise ScenarioError(f"{scenario.name}: audio.probe_duration_s = {scenario.probe_duration} s does not fit "
                            f"in audio.window_s = {scenario.window_s} s")
    if len(scenario.rig.pairs) < 1:
        raise ScenarioError(f"{scenario.name}: rig has no speaker/mic pair")
    if _uses_music_library(scenario):
        from av_pose_ros.audio.music_library import open_cached

        open_cached()   # MusicLibraryMissing says how to build it, before any rendering


def _uses_music_library(scenario) -> bool:
    return scenario.probe == "music" and scenario.music_source == "library" and not scenario.music_file


def _with_library_music(scene, split: str, seed: int, index: int):
    """``audio.music_source: library``: a track of this split (test samples never hear training music) at a random
    start, drawn from a stream of its own so the scene's other draws equal those of the synthetic-music sample."""
    if scene.audio.music_source != "library" or scene.audio.music_file:
        return scene
    from av_pose_ros.audio.music_library import scene_with_library_music

    rng = np.random.default_rng([split_tag(split), int(seed), int(index), 1])
    needed = (empty_frames_for("music") + 1) * scene.audio.window_s
    return scene_with_library_music(scene, split, rng, needed_s=needed)


def _extractor(scene, c: float):
    from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor

    rig, audio = scene.rig, scene.audio
    mode = "continuous" if audio.probe == "music" else "auto"
    return PoseKernelExtractor(rig.pairs, rig.direct_path_m(), len(rig.mics), c,
                               KernelConfig(fs=audio.fs, taps=taps_for(audio.fs), band_hz=audio.band_hz,
                                            probe_mode=mode))


def _kernels(sim, scene, rng):
    """The capture with the person after an empty-room capture: (capture, kernels or None, speed of sound).

    A window the pipeline rejects (``AudioInputError``: clipped, no probe, ...) is dropped as the node drops it;
    when that leaves no kernel for the frame, the result is None (the frame is then refused, not a crash)."""
    from av_pose_ros.acoustics.kernel import AudioInputError

    frames = empty_frames_for(scene.audio.probe)
    extractor = None
    for k in range(frames + 1):
        cap = sim.render_capture(scene, k, person=k == frames, rng=rng)
        if extractor is None:
            c = cap.speed_of_sound
            extractor = _extractor(scene, c)
            extractor.empty_room.request_capture(frames)
        try:
            out = extractor.process(cap.recording, cap.emissions, cap.fs, person_present=True if k == frames else None)
        except AudioInputError:
            out = None
    return cap, (None if out is None else out.kernels), c


def simulate_sample(scenario, sim, split: str, seed: int, index: int, audio: bool = True) -> dict:
    """One sample as a dict of arrays (see ``FIELDS``); ``audio=False``: no sound rendered (module docstring)."""
    from av_pose_ros.acoustics.physics import speed_of_sound
    from av_pose_ros.sim.body import GENERATED_POSES, MOTION_NAMES, POSE_NAMES
    from av_pose_ros.vision.simulated import DetectionNoise, simulate_detections

    from .features import LiftingInputError, coarse_locate, vision_locate

    rng = sample_rng(split, seed, index)
    scene = _with_library_music(scenario.sample(rng), split, seed, index)
    rig = scene.rig
    speakers, mics = rig.pair_positions("base_link")
    if audio:
        cap, kernels, c = _kernels(sim, scene, rng)
        joints, world_from_camera, fs = cap.joints, cap.base_from_optical, cap.fs
    else:
        frames = empty_frames_for(scene.audio.probe)
        joints = sim.joints_at(scene, scene.person.time_s + frames * scene.audio.window_s)
        world_from_camera, fs = rig.base_from_optical, scene.audio.fs
        c = speed_of_sound(scene.audio.temperature_c)
        kernels = np.zeros((len(speakers), 0), np.float32)
    camera = rig.intrinsics.camera_model()
    true_camera = sim.true_geometry(scene)[2]     # detections see the true camera; the pipeline gets the nominal
    keypoints = simulate_detections(joints, camera, true_camera, DetectionNoise.from_scenario(scene.camera), rng)
    kernels_ok = kernels is not None
    if not kernels_ok:   # the pipeline refused the window (e.g. music it never heard): no audio for this frame
        kernels = np.zeros((len(speakers), taps_for(scene.audio.fs)), np.float32)
    cam_xy = world_from_camera[:2, 3]
    mid_hip = 0.5 * (joints[11] + joints[12])
    out = dict(keypoints=keypoints.astype(np.float32), K=camera.K.astype(np.float32),
               world_from_camera=world_from_camera.astype(np.float32), kernels=kernels.astype(np.float32),
               speakers=speakers.astype(np.float32), mics=mics.astype(np.float32), joints=joints.astype(np.float32),
               fs=np.float32(fs), c=np.float32(c), stature=np.float32(scene.person.stature_m),
               distance=np.float32(np.linalg.norm(mid_hip[:2] - cam_xy)),
               pose=np.int16((POSE_NAMES + MOTION_NAMES + GENERATED_POSES).index(scene.person.pose)),
               image_size=np.array([camera.width, camera.height], np.float32))
    try:
        if not kernels_ok:
            raise LiftingInputError("no kernel")
        if audio:
            coarse = coarse_locate(keypoints, camera.K, world_from_camera, kernels, speakers, mics, fs, c)
        else:
            coarse = vision_locate(keypoints, camera.K, world_from_camera)
        out.update(coarse_centre=coarse.centre.astype(np.float32), coarse_rotation=coarse.rotation.astype(np.float32),
                   coarse_ok=np.bool_(True))
    except LiftingInputError:
        out.update(coarse_centre=np.zeros(3, np.float32), coarse_rotation=np.eye(3, dtype=np.float32),
                   coarse_ok=np.bool_(False))
    return out


def _generate_one(args) -> dict:
    split, seed, index, audio = args
    return simulate_sample(_WORKER["scenario"], _WORKER["sim"], split, seed, index, audio)


# -- cache ------------------------------------------------------------------------------------------------------
# Sources whose code decides what a sample holds: a cached sample is reused only while none of them changed (several
# people change the simulator at once; a forgotten GENERATOR_VERSION bump must not serve stale samples).
GENERATOR_SOURCES = ("sim", "acoustics", "vision/simulated.py", "lifting/dataset.py", "lifting/features.py",
                     "lifting/baselines.py", "primitives", "audio/music_library.py")


@lru_cache(maxsize=1)
def generator_digest() -> str:
    """Hash of the generator's source files (``GENERATOR_SOURCES``), part of every cache key."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for entry in GENERATOR_SOURCES:
        target = root / entry
        for f in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:10]


def scenario_key(scenario_path: str) -> str:
    """Cache folder name: the scenario's stem and a hash of its content, the generator version and sources."""
    from av_pose_ros.sim.rig import find_config

    path = find_config("scenarios", scenario_path)
    text = path.read_bytes() + _music_library_key(path)
    digest = hashlib.sha1(text + f"v{GENERATOR_VERSION}-{generator_digest()}".encode()).hexdigest()[:10]
    return f"{path.stem}-{digest}"


def _music_library_key(path: Path) -> bytes:
    """Library-music scenarios: the library's digest, so samples made with another build are not reused."""
    from av_pose_ros.sim.scenario import load_scenario

    if not _uses_music_library(load_scenario(str(path))):
        return b""
    from av_pose_ros.audio.music_library import open_cached

    return f"music-library-{open_cached().digest()}".encode()


def cache_dir(scenario_path: str, split: str, seed: int, root: Path | None = None, audio: bool = True) -> Path:
    name = f"{split}-seed{int(seed)}" + ("" if audio else "-noaudio")
    return Path(root or DEFAULT_CACHE) / scenario_key(scenario_path) / name


def _stack(samples: list[dict]) -> dict:
    return {k: np.stack([s[k] for s in samples]) for k in FIELDS}


def generate(scenario_path: str, split: str, seed: int, num: int, root: Path | None = None,
             workers: int | None = None, progress: bool = True, audio: bool = True) -> dict:
    """``num`` samples (dict of stacked arrays) of ``split``/``seed``, generating and caching missing shards.

    Uses ``workers`` processes (default: all cores). Shards hold ``SHARD_SIZE`` consecutive sample indices, so a
    larger ``num`` later reuses every complete shard. ``audio=False``: vision-only samples (module docstring).
    Raises ``ScenarioError`` (naming the field) for a scenario the generator cannot serve.
    """
    from tqdm import tqdm

    from av_pose_ros.sim.scenario import load_scenario

    split_tag(split)
    check_servable(load_scenario(scenario_path))
    folder = cache_dir(scenario_path, split, seed, root, audio)
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = -(-int(num) // SHARD_SIZE)
    todo = []
    for s in range(n_shards):
        lo, hi = s * SHARD_SIZE, min((s + 1) * SHARD_SIZE, num)
        full = folder / f"shard{s:04d}.npz"
        part = folder / f"shard{s:04d}-n{hi - lo}.npz"
        if not full.exists() and not (hi - lo < SHARD_SIZE and part.exists()):
            todo.append((s, lo, hi))
    if todo:
        indices = [(split, seed, i, audio) for _, lo, hi in todo for i in range(lo, hi)]
        workers = max(1, min(workers or os.cpu_count() or 1, len(indices)))
        bar = tqdm(total=len(indices), desc=f"simulating {split} samples ({Path(str(scenario_path)).stem})",
                   unit="sample", disable=not progress)
        results: dict[int, dict] = {}
        if workers == 1:
            _worker_init(scenario_path)
            for args in indices:
                results[args[2]] = _generate_one(args)
                bar.update()
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_worker_init, initargs=(scenario_path,)) as pool:
                for args, sample in zip(indices, pool.imap(_generate_one, indices, chunksize=4)):
                    results[args[2]] = sample
                    bar.update()
        bar.close()
        for s, lo, hi in todo:
            name = f"shard{s:04d}.npz" if hi - lo == SHARD_SIZE else f"shard{s:04d}-n{hi - lo}.npz"
            tmp = folder / (name + ".tmp.npz")
            np.savez(tmp, **_stack([results[i] for i in range(lo, hi)]))
            os.replace(tmp, folder / name)
        (folder / "info.json").write_text(json.dumps({"scenario": str(scenario_path), "split": split,
                                                      "seed": int(seed), "generator": GENERATOR_VERSION,
                                                      "audio": bool(audio)}))
    parts = []
    for s in range(n_shards):
        lo, hi = s * SHARD_SIZE, min((s + 1) * SHARD_SIZE, num)
        full = folder / f"shard{s:04d}.npz"
        path = full if full.exists() else folder / f"shard{s:04d}-n{hi - lo}.npz"
        with np.load(path) as z:
            parts.append({k: z[k][: hi - lo] for k in FIELDS})
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


def sample_at(data: dict, i: int) -> dict:
    return {k: v[i] for k, v in data.items()}

