"""Training and evaluation groups for the learned music front end (BGM mode, after BGM2Pose), cached on disk.

A *group* is one room, one music track and one person, rendered as the kernel pipeline sees them:

* the empty-room capture of the continuous probe (``music_capture_frames`` windows: one room fit per group, the
  expensive part, done once), then ``POSITIVES`` successive windows with the person holding pose A: the same body
  under different music (the contrastive positives);
* at ``NEGATIVE_AT`` of those windows the extractor's state is branched (``copy.deepcopy``) and the *same* window,
  same music samples, is rendered with the person in pose B instead: the hard negatives (same music, other pose);
* both poses rendered with the chirp probe in the same room (four empty windows, then the person): the target the
  front end regresses to (what the shipped lifter was trained on) and the chirp baseline on the same scenes;
* per pose, what the lifter needs (detections, camera, pair positions, ground truth), detections drawn from their
  own stream so that music and chirp frames of a pose share them.

Every window carries ``BandKernels`` (``KernelConfig.frontend_bands`` bands) besides the plain continuous kernel.
Tracks are split by track, never by excerpt: the music library's ``tracks(split)`` when it is installed and built,
else deterministic synthetic tracks with disjoint seeds per split. Each group plays an 8 s excerpt on a loop (the
room fit hears the whole loop; music the model never heard is the empty-room model's problem, not this one's). The
music level is drawn per group (``LEVEL_DB``, SNR of the room echoes over the noise floor) so that accuracy can be
reported against loudness. Group ``i`` of ``split``/``seed`` uses ``np.random.default_rng([tag(split), seed, i,
16])``; groups are cached one file each under ``data_cache/music_frontend/<key>/``, the key hashing the scenario,
the lifter generator's sources, this file and the track list.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.emission import MusicEmission
from av_pose_ros.sim.render import Simulator

from .dataset import DEFAULT_CACHE, generator_digest, split_tag, taps_for

GROUP_VERSION = 3
N_BANDS = 8
POSITIVES = 6                 # windows of pose A per group
NEGATIVE_AT = (1, 3, 5)       # of those, where pose B is branched in (same window, same music)
LEVEL_DB = (16.0, 40.0)       # music level per group: room-echo SNR over the noise floor (below ~20 dB
#                               the pipeline refuses most windows: residual above max_room_residual_db)
EXCERPT_S = 8.0
CHIRP_EMPTY = 4
SYNTHETIC_SEEDS = {"train": range(1000, 1032), "val": range(2000, 2010), "test": range(3000, 3010)}
POSE_FIELDS = ("keypoints", "K", "world_from_camera", "speakers", "mics", "joints", "fs", "c", "stature",
               "distance")


@dataclass(frozen=True)
class Track:
    """One track of a split: a name and how to get its samples at a sample rate."""

    name: str
    source: str      # "library" or "synthetic"
    path: str = ""   # library tracks: the WAV file

    def load(self, fs: int) -> np.ndarray:
        if self.source == "synthetic":
            return probes.synthetic_music(EXCERPT_S, fs, int(self.name.rsplit("-", 1)[1]))
        return probes.load_wav(self.path, fs)


@lru_cache(maxsize=8)
def split_tracks(split: str, synthetic: bool = False) -> tuple[Track, ...]:
    """The tracks of ``split``: the music library's when it exists and is built (split by track), else synthetic
    tracks with disjoint seeds."""
    split_tag(split)
    if not synthetic:
        try:
            from av_pose_ros.audio.music_library import MusicLibrary

            names = list(MusicLibrary.open().tracks(split))
            if names:
                return tuple(Track(str(t.name), "library", str(t.path)) for t in names)
        except (ImportError, OSError, ValueError, RuntimeError, LookupError, AttributeError):
            pass
    return tuple(Track(f"synthetic-{s}", "synthetic") for s in SYNTHETIC_SEEDS[split])


class TrackSimulator(Simulator):
    """The simulator with the music probe replaced by a given excerpt (looped): one track per group."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.track: np.ndarray | None = None

    def emission(self, scene):
        if scene.audio.probe != "music" or self.track is None:
            return super().emission(scene)
        window = int(round(scene.audio.window_s * scene.audio.fs))
        key = (id(self.track), window, len(scene.rig.speakers))
        if getattr(self, "_music_key", None) != key:
            self._music = MusicEmission(self.track, len(scene.rig.speakers), window)
            self._music_key = key
        return self._music


def excerpt(track: np.ndarray, fs: int, rng: np.random.Generator) -> np.ndarray:
    n = int(round(EXCERPT_S * fs))
    if track.size <= n:
        return np.resize(track, n).astype(np.float32)
    start = int(rng.integers(0, track.size - n))
    return track[start: start + n].astype(np.float32)


def _held(scene, t: float, k: int):
    """``scene`` with its person's clock set so that window ``k`` shows the body at scene time ``t``."""
    return replace(scene, person=replace(scene.person, time_s=t - k * scene.audio.window_s))


def _extractor(scene, c: float, probe_mode: str, bands: int):
    from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor

    rig, audio = scene.rig, scene.audio
    return PoseKernelExtractor(rig.pairs, rig.direct_path_m(), len(rig.mics), c,
                               KernelConfig(fs=audio.fs, taps=taps_for(audio.fs), band_hz=audio.band_hz,
                                            probe_mode=probe_mode, frontend_bands=bands))


def _process(extractor, cap, present: bool | None):
    from av_pose_ros.acoustics.kernel import AudioInputError

    try:
        return extractor.process(cap.recording, cap.emissions, cap.fs, person_present=present)
    except AudioInputError:
        return None


def _chirp_kernels(sim, scene, poses: list, rng) -> list[np.ndarray | None]:
    """Chirp kernels of the same room for each (scene, time) in ``poses``: one empty-room capture, branched."""
    chirp = replace(scene, audio=replace(scene.audio, probe="chirp"))
    extractor = None
    for k in range(CHIRP_EMPTY):
        cap = sim.render_capture(chirp, k, person=False, rng=rng)
        if extractor is None:
            extractor = _extractor(chirp, cap.speed_of_sound, "auto", 0)
            extractor.empty_room.request_capture(CHIRP_EMPTY)
        _process(extractor, cap, None)
    out = []
    for pose_scene, t in poses:
        held = _held(replace(pose_scene, audio=chirp.audio), t, CHIRP_EMPTY)
        frame = _process(copy.deepcopy(extractor), sim.render_capture(held, CHIRP_EMPTY, rng=rng), True)
        out.append(None if frame is None else frame.kernels)
    return out


def _other_pose(scenario, scene, rng):
    """Pose B: the same person at the same place in another pose (and another moment of its motion)."""
    choices = [p for p in scenario.poses if p != scene.person.pose] or list(scenario.poses)
    person = replace(scene.person, pose=str(rng.choice(choices)), jitter_seed=int(rng.integers(2 ** 31)),
                     time_s=float(rng.uniform(0, 8.0)))
    return replace(scene, person=person)


def _pose_fields(sim, scene, t: float, rng) -> dict:
    from av_pose_ros.acoustics.physics import speed_of_sound
    from av_pose_ros.vision.simulated import DetectionNoise, simulate_detections

    rig = scene.rig
    speakers, mics = rig.pair_positions("base_link")
    joints = sim.joints_at(scene, t)
    camera = rig.intrinsics.camera_model()
    keypoints = simulate_detections(joints, camera, sim.true_geometry(scene)[2],
                                    DetectionNoise.from_scenario(scene.camera), rng)
    cam_xy = rig.base_from_optical[:2, 3]
    mid_hip = 0.5 * (joints[11] + joints[12])
    return dict(keypoints=keypoints.astype(np.float32), K=camera.K.astype(np.float32),
                world_from_camera=rig.base_from_optical.astype(np.float32), speakers=speakers.astype(np.float32),
                mics=mics.astype(np.float32), joints=joints.astype(np.float32), fs=np.float32(scene.audio.fs),
                c=np.float32(speed_of_sound(scene.audio.temperature_c)), stature=np.float32(scene.person.stature_m),
                distance=np.float32(np.linalg.norm(mid_hip[:2] - cam_xy)))


def simulate_group(scenario, sim: TrackSimulator, split: str, seed: int, index: int, bands: int = N_BANDS,
                   synthetic: bool = False) -> dict:
    """One group as a dict of arrays (module docstring). Frames: ``POSITIVES`` of pose A, then one of pose B per
    ``NEGATIVE_AT``; a frame the pipeline refused has ``ok`` false and zero kernels."""
    from av_pose_ros.acoustics.kernel import KernelConfig

    rng = np.random.default_rng([split_tag(split), int(seed), int(index), 16])
    scene = scenario.sample(rng)
    if scene.audio.probe != "music":
        scene = replace(scene, audio=replace(scene.audio, probe="music"))
    level = float(rng.uniform(*LEVEL_DB))
    scene = replace(scene, audio=replace(scene.audio, snr_db=level))
    pose_b = _other_pose(scenario, scene, rng)
    tracks = split_tracks(split, synthetic)
    track = tracks[int(rng.integers(len(tracks)))]
    sim.track = excerpt(track.load(scene.audio.fs), scene.audio.fs, rng)
    frames = KernelConfig().music_capture_frames
    extractor = None
    for k in range(frames):
        cap = sim.render_capture(scene, k, person=False, rng=rng)
        if extractor is None:
            extractor = _extractor(scene, cap.speed_of_sound, "continuous", bands)
            extractor.empty_room.request_capture(frames)
        _process(extractor, cap, None)
    t_a = scene.person.time_s + frames * scene.audio.window_s
    t_b = pose_b.person.time_s
    outputs, pose_id, windows = [], [], []
    negatives = []
    for j in range(POSITIVES):
        k = frames + j
        if j in NEGATIVE_AT:
            branch = copy.deepcopy(extractor)
            negatives.append((k, _process(branch, sim.render_capture(_held(pose_b, t_b, k), k, rng=rng), True)))
        outputs.append(_process(extractor, sim.render_capture(_held(scene, t_a, k), k, rng=rng), True))
        pose_id.append(0)
        windows.append(k)
    for k, out in negatives:
        outputs.append(out)
        pose_id.append(1)
        windows.append(k)
    taps, n_pairs = taps_for(scene.audio.fs), len(scene.rig.pairs)
    ok = np.array([o is not None and o.kernels is not None and o.bands is not None for o in outputs])
    kernels = np.zeros((len(outputs), n_pairs, taps), np.float32)
    analytic = np.zeros((len(outputs), n_pairs, bands, taps), np.complex64)
    features = np.zeros((len(outputs), n_pairs, bands, 4), np.float32)
    for i, o in enumerate(outputs):
        if ok[i]:
            kernels[i], analytic[i], features[i] = o.kernels, o.bands.analytic, o.bands.features
    chirp = _chirp_kernels(sim, scene, [(scene, t_a), (pose_b, t_b)], rng)
    chirp_ok = np.array([c is not None for c in chirp])
    chirp = np.stack([c if c is not None else np.zeros((n_pairs, taps), np.float32) for c in chirp])
    detection_rng = np.random.default_rng([split_tag(split), int(seed), int(index), 17])
    poses = [_pose_fields(sim, scene, t_a, detection_rng), _pose_fields(sim, pose_b, t_b, detection_rng)]
    out = {f"pose_{k}": np.stack([p[k] for p in poses]) for k in POSE_FIELDS}
    out.update(kernels=kernels, analytic=analytic, features=features, ok=ok, pose_id=np.array(pose_id, np.int8),
               window=np.array(windows, np.int32), chirp=chirp.astype(np.float32), chirp_ok=chirp_ok,
               level_db=np.float32(level), track=np.array(track.name), index=np.int32(index),
               generator=np.array(generator_digest()))
    return out


# -- cache ------------------------------------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(scenario_path: str, bands: int, synthetic: bool, threads: int = 1):
    import torch

    from av_pose_ros.sim.scenario import load_scenario

    torch.set_num_threads(threads)
    _WORKER.update(scenario=load_scenario(scenario_path), sim=TrackSimulator(), bands=bands, synthetic=synthetic)


def _generate_one(args) -> tuple[int, dict]:
    split, seed, index = args
    return index, simulate_group(_WORKER["scenario"], _WORKER["sim"], split, seed, index, _WORKER["bands"],
                                 _WORKER["synthetic"])


def cache_key(scenario_path: str, bands: int, synthetic: bool) -> str:
    """Folder name: scenario stem + hash of its content, ``GROUP_VERSION``, the band count and the track list.

    Unlike the lifter's cache it does not hash the simulator's sources (a group costs ~10 s and the simulator
    changes under several people at once); each group stores the ``generator_digest`` it was made with instead, and
    ``generate`` reports groups made by another generator."""
    from av_pose_ros.sim.rig import find_config

    path = find_config("scenarios", scenario_path)
    h = hashlib.sha1(path.read_bytes())
    h.update(f"v{GROUP_VERSION}".encode())
    h.update(repr((bands, [t.name for s in ("train", "val", "test") for t in split_tracks(s, synthetic)])).encode())
    return f"{path.stem}-{h.hexdigest()[:10]}"


def generate(scenario_path: str, split: str, seed: int, num: int, root: Path | None = None, workers: int = 1,
             bands: int = N_BANDS, synthetic: bool = False, progress: bool = True) -> list[dict]:
    """``num`` groups of ``split``/``seed`` (list of dicts), generating and caching the missing ones with
    ``workers`` processes (threads 1 each)."""
    from tqdm import tqdm

    split_tag(split)
    folder = Path(root or DEFAULT_CACHE) / "music_frontend" / cache_key(scenario_path, bands, synthetic) / \
        f"{split}-seed{int(seed)}"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(split, int(seed), i) for i in range(int(num)) if not (folder / f"group{i:05d}.npz").exists()]
    if todo:
        bar = tqdm(total=len(todo), desc=f"music groups ({split})", unit="group", disable=not progress)

        def save(index: int, group: dict) -> None:
            tmp = folder / f"group{index:05d}.tmp.npz"
            np.savez_compressed(tmp, **group)
            os.replace(tmp, folder / f"group{index:05d}.npz")
            bar.update()

        if workers <= 1:
            _worker_init(scenario_path, bands, synthetic)
            for args in todo:
                save(*_generate_one(args))
        else:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers, initializer=_worker_init,
                                              initargs=(scenario_path, bands, synthetic)) as pool:
                for index, group in pool.imap_unordered(_generate_one, todo):
                    save(index, group)
        bar.close()
    groups = []
    for i in range(int(num)):
        with np.load(folder / f"group{i:05d}.npz") as z:
            groups.append({k: z[k] for k in z.files})
    stale = sum(str(g["generator"]) != generator_digest() for g in groups)
    if stale and progress:
        print(f"note: {stale} of {len(groups)} {split} groups were made by another simulator version "
              f"(cache {folder}); delete the folder to regenerate")
    return groups


def load_groups(folder: str | Path, num: int | None = None) -> list[dict]:
    """The cached groups in ``folder`` (``group*.npz``, by index; at most ``num``): to train or evaluate on a set
    made earlier, e.g. while the music library's track list changed under its cache key."""
    files = sorted(Path(folder).glob("group[0-9]*.npz"))
    files = [f for f in files if not f.name.endswith(".tmp.npz")][: num if num else None]
    if not files:
        raise FileNotFoundError(f"no music groups in {folder}")
    out = []
    for f in files:
        with np.load(f) as z:
            out.append({k: z[k] for k in z.files})
    return out


# -- lifter samples -----------------------------------------------------------------------------------------------
def group_samples(g: dict, source: str = "music") -> dict:
    """One group as lifter samples (``dataset.FIELDS``, stacked): to fine-tune or evaluate the lifter on it.

    ``source="music"``: one sample per music frame (``POSITIVES`` + ``len(NEGATIVE_AT)``) with the plain continuous
    kernel; ``"chirp"``: one per pose with the chirp kernel of the same scene. The coarse fields come from
    ``features.coarse_locate`` as in ``dataset.simulate_sample``; a frame the pipeline refused, or the locator could
    not place, has ``coarse_ok`` false (the trainer skips it, as it skips the lifter's own refused frames). Groups
    store no pose name or image size: ``pose`` is -1 and ``image_size`` (2 cx, 2 cy), the rays' own default."""
    from .features import LiftingInputError, coarse_locate

    if source == "music":
        poses, kernels, ok = g["pose_id"].astype(int), g["kernels"], g["ok"].astype(bool)
    elif source == "chirp":
        poses, kernels, ok = np.arange(len(g["chirp"])), g["chirp"], g["chirp_ok"].astype(bool)
    else:
        raise ValueError(f"source must be 'music' or 'chirp', got {source!r}")
    rows = []
    for pose, kernel, good in zip(poses, kernels, ok):
        p = {k: g[f"pose_{k}"][pose] for k in POSE_FIELDS}
        K = p["K"].astype(np.float32)
        row = dict(keypoints=p["keypoints"], K=K, world_from_camera=p["world_from_camera"],
                   kernels=kernel.astype(np.float32), speakers=p["speakers"], mics=p["mics"], joints=p["joints"],
                   fs=p["fs"], c=p["c"], stature=p["stature"], distance=p["distance"], pose=np.int16(-1),
                   image_size=np.array([2 * K[0, 2], 2 * K[1, 2]], np.float32),
                   coarse_centre=np.zeros(3, np.float32), coarse_rotation=np.eye(3, dtype=np.float32),
                   coarse_ok=np.bool_(False))
        try:
            if not good or not np.any(kernel):
                raise LiftingInputError("no kernel")
            coarse = coarse_locate(p["keypoints"].astype(float), K.astype(float),
                                   p["world_from_camera"].astype(float), kernel, p["speakers"].astype(float),
                                   p["mics"].astype(float), float(p["fs"]), float(p["c"]))
            row.update(coarse_centre=coarse.centre.astype(np.float32),
                       coarse_rotation=coarse.rotation.astype(np.float32), coarse_ok=np.bool_(True))
        except LiftingInputError:
            pass
        rows.append(row)
    from .dataset import FIELDS

    return {k: np.stack([r[k] for r in rows]) for k in FIELDS}


def groups_samples(groups: list[dict], source: str = "music") -> dict:
    """``group_samples`` of every group, concatenated."""
    parts = [group_samples(g, source) for g in groups]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
