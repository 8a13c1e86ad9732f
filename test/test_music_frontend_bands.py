"""The band split the music front end consumes (``KernelConfig.frontend_bands``): lossless, and the plain kernel
unchanged."""

import numpy as np

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.deconvolution import band_analytic, envelope, split_band_windows
from av_pose_ros.acoustics.emission import MusicEmission
from av_pose_ros.acoustics.kernel import KernelConfig, PoseKernelExtractor
from av_pose_ros.acoustics.kernel_types import BAND_FEATURES

FS, WINDOW, C = 48000, 4800, 343.0
DIRECT_M = np.array([0.06, 0.07])
PAIRS = np.array([[0, 0], [1, 1]])


def test_band_windows_sum_to_one_and_are_log_spaced():
    freqs = np.fft.rfftfreq(4800, 1 / FS)
    w = split_band_windows(freqs, (1000.0, 20000.0), 8)
    assert w.shape == (8, freqs.size)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
    assert np.all(w >= -1e-12)
    peaks = freqs[np.argmax(w, axis=1)]
    assert np.all(np.diff(peaks) > 0)
    assert peaks[-1] / peaks[-2] > 1.2 and peaks[2] / peaks[1] > 1.2


def test_band_analytic_adds_up_to_the_envelope():
    rng = np.random.default_rng(0)
    n, taps = 4800, 1200
    spectra = np.fft.rfft(rng.standard_normal((3, n)), n)
    w = split_band_windows(np.fft.rfftfreq(n, 1 / FS), (1000.0, 20000.0), 6)
    a = band_analytic(spectra, n, taps, w)
    assert a.shape == (3, 6, taps)
    full = envelope(np.fft.irfft(spectra, n)[:, :taps])
    np.testing.assert_allclose(np.abs(a.sum(axis=1)), full, rtol=1e-9, atol=1e-9)


def _rooms(person: bool) -> np.ndarray:
    taps = 1200
    rng = np.random.default_rng(1)
    h = rng.standard_normal((2, 2, taps)) * 0.02 * np.exp(-np.arange(taps) / 250.0)
    freqs = np.fft.rfftfreq(taps)
    for s in range(2):
        for m in range(2):
            d = (DIRECT_M[s] if s == m else 0.3) / C * FS
            h[s, m] += np.fft.irfft(np.exp(-2j * np.pi * freqs * d), taps)
            if person:
                h[s, m] += 0.01 * np.fft.irfft(np.exp(-2j * np.pi * freqs * (1.6 + 0.1 * s) / C * FS), taps)
    return h


def _capture(emission, k: int, h: np.ndarray) -> np.ndarray:
    taps = h.shape[-1]
    x = emission.signal(k * WINDOW - taps, taps + WINDOW)
    n = 1 << int(np.ceil(np.log2(2 * taps + WINDOW)))
    y = np.fft.irfft(np.einsum("smf,sf->mf", np.fft.rfft(h, n), np.fft.rfft(x, n)), n)[:, taps: taps + WINDOW]
    return (0.3 * y / np.abs(y).max() + np.random.default_rng(k).normal(0, 1e-6, y.shape)).astype(np.float32)


def _run(bands: int):
    emission = MusicEmission(probes.synthetic_music(0.4, seed=3), 2, WINDOW)
    cfg = KernelConfig(probe_mode="continuous", taps=480, max_range_m=1.5, room_taps=1300, music_capture_frames=6,
                       room_fit_iterations=40, max_room_residual_db=-10.0, frontend_bands=bands)
    ex = PoseKernelExtractor(PAIRS, DIRECT_M, 2, C, cfg)
    room, person = _rooms(False), _rooms(True)
    frames = []
    for k in range(12):
        if k == 1:
            ex.empty_room.request_capture(6)
        h = person if k >= 9 else room
        frames.append(ex.process(_capture(emission, k, h), emission.window(k), FS, True if k >= 9 else None))
    return frames


def test_extractor_band_output_is_extra_and_lossless():
    plain, split = _run(0), _run(8)
    with_kernels = [i for i, f in enumerate(plain) if f.kernels is not None]
    assert with_kernels, "the scripted stream should give kernels after the capture"
    for a, b in zip(plain, split):
        assert a.bands is None
        if a.kernels is None:
            assert b.kernels is None and b.bands is None
            continue
        np.testing.assert_array_equal(a.kernels, b.kernels)       # the plain kernel is untouched
        assert b.bands.analytic.shape == (2, 8, 480)
        assert b.bands.features.shape == (2, 8, len(BAND_FEATURES))
        assert np.all(np.isfinite(b.bands.features))
        np.testing.assert_allclose(np.abs(b.bands.analytic.sum(axis=1)), b.kernels, rtol=1e-3,
                                   atol=1e-4 * b.kernels.max())


def test_kernel_stage_publishes_the_front_end_kernel_in_music_mode(tmp_path):
    from types import SimpleNamespace

    import torch

    from av_pose_ros.lifting import music_frontend as mf
    from av_pose_ros.pipeline.kernel import PARAMS, KernelHandler

    model = mf.MusicFrontend(mf.FrontendConfig(bands=6, use_cpe=False))
    torch.nn.init.normal_(model.attention.score[-1].weight, std=1.0)       # non-uniform band weights
    path = mf.save(tmp_path / "fe.pt", model)
    positions = {"speaker_0": (0, 0, 0), "mic_0": (0.06, 0, 0), "speaker_1": (0, 0.5, 0), "mic_1": (0.07, 0.5, 0)}

    def lookup(frame, name, stamp):
        t = np.eye(4)
        t[:3, 3] = positions[name]
        return t

    def run(frontend: str):
        p = SimpleNamespace(**{spec.name: spec.default for spec in PARAMS})
        for k, v in dict(taps=480, max_range_m=1.5, room_taps=1300, music_capture_frames=6,
                         max_room_residual_db=-10.0, music_frontend=frontend).items():
            setattr(p, k, v)
        handler = KernelHandler(p, lookup)
        emission = MusicEmission(probes.synthetic_music(0.4, seed=3), 2, WINDOW)
        outs = []
        for k in range(12):
            h = _rooms(k >= 9)
            audio = SimpleNamespace(audio=_capture(emission, k, h), probe=emission.window(k), sample_rate=FS,
                                    sequence=k, frame_id="camera_link", speaker_frames=["speaker_0", "speaker_1"],
                                    mic_frames=["mic_0", "mic_1"], stamp_ns=k * 100_000_000, probe_type="music")
            outs.append(handler.on_audio(audio, now_s=k * 0.1))
        return outs

    plain, learned = run(""), run(str(path))
    published = [(a, b) for a, b in zip(plain, learned) if a.kernels is not None]
    assert published and all(b.kernels is not None for _, b in published)
    for a, b in published:
        assert b.kernels.shape == a.kernels.shape
        assert not np.allclose(a.kernels, b.kernels)                       # the front end changed the kernel
        assert np.isclose(b.kernels.max(), a.kernels.max(), rtol=1e-4)     # at the plain kernel's level
        assert b.report.values["music_frontend"] == "on" and a.report.values["music_frontend"] == "off"
    broken = run(str(tmp_path / "missing.pt"))
    assert "music_frontend" in broken[-1].report.problems
    np.testing.assert_array_equal(broken[-1].kernels, plain[-1].kernels)
