"""Room and body physics of the simulator, each against an oracle computed here from geometry or an independent
model: pyroomacoustics for the enumerated room paths, mirrored geometry for body-wall ghost echoes and for the
path the body shadows, the rough-surface (Kirchhoff) coherent loss, the clothing curve."""

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt

from av_pose_ros.sim.body import body_joints, place_in_world
from av_pose_ros.sim.render import BodyAcoustics, body_response, render_derivative_echoes
from av_pose_ros.sim.room import Room, shoebox_rirs
from av_pose_ros.sim.room_paths import image_paths, mirror_in_walls, shadow_response
from av_pose_ros.sim.surface import body_capsules, sample_surface

FS, C = 48000, 343.0
BAND = butter(4, [1000, 20000], "bandpass", fs=FS, output="sos")


def ball(centre, radius, spacing=0.004):
    """Surface of one sphere (a zero-length capsule): a point-like reflector."""
    caps = np.array([np.r_[centre, centre, radius]])
    return sample_surface(caps, spacing)


def envelope(x):
    return np.abs(hilbert(sosfiltfilt(BAND, x)))


def test_enumerated_image_paths_reproduce_pyroomacoustics():
    room = Room((4.3, 5.1, 2.7), 0.35, 10)
    spk, mic = np.array([[0.4, 2.5, 1.45]]), np.array([[0.4, 2.44, 1.45]])
    rir = shoebox_rirs(room, spk, mic, FS, C)[0, 0]
    paths = image_paths(room, spk, mic, 12.0)
    n = int(11.0 / C * FS)
    k = np.arange(n)[:, None] - paths.length_m[None] / C * FS
    mine = (paths.amplitude[None] * np.sinc(k) * (np.abs(k) < 40) * (0.5 + 0.5 * np.cos(np.pi * k / 40))).sum(1)
    ref = rir[:n]
    a, b = sosfiltfilt(BAND, mine)[200:], sosfiltfilt(BAND, ref)[200:]
    assert np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)) < 0.05
    # the folded polylines have the unfolded length and stay in the room
    seg = np.linalg.norm(paths.seg_b - paths.seg_a, axis=-1).sum(axis=1)
    np.testing.assert_allclose(seg, paths.length_m, atol=1e-9)
    assert paths.seg_a.min() >= -1e-9 and np.all(paths.seg_a.max(axis=(0, 1)) <= np.array(room.size_m) + 1e-9)


def test_wall_behind_a_point_reflector_gives_the_ghost_echo_at_the_mirrored_delay():
    room = Room((5.0, 4.0, 2.6), 0.3, 10)
    base = np.array([0.4, 2.0, 0.0])                  # the rig 0.4 m in front of the wall x = 0
    spk, mic = np.array([[0.0, 0.03, 1.2]]), np.array([[0.0, -0.03, 1.2]])
    target, radius = np.array([2.0, 0.0, 1.2]), 0.06
    surf = ball(target, radius)
    flat = body_response(surf, spk, mic, FS, C, BodyAcoustics(reflectance=1.0))[0, 0]
    walls = body_response(surf, spk, mic, FS, C, BodyAcoustics(reflectance=1.0, wall_paths=True), room, base)[0, 0]
    n = len(walls)
    flat = np.pad(flat, (0, n - len(flat)))
    ghost = walls - flat
    # oracle: speaker -> ball -> wall x=0 -> mic is speaker -> ball -> mirrored mic (and the reciprocal path)
    mic_image = mirror_in_walls(mic + base, room.size_m)[0, 0] - base
    near = target - radius * (target - spk[0]) / np.linalg.norm(target - spk[0])
    direct_path = np.linalg.norm(near - spk[0]) + np.linalg.norm(near - mic[0])
    ghost_path = (np.linalg.norm(target - spk[0]) + np.linalg.norm(target - mic_image) - 2 * radius)
    env = envelope(ghost)
    peak = np.argmax(env)
    assert peak == pytest.approx(ghost_path / C * FS, abs=3)
    assert np.argmax(envelope(flat[:n])) == pytest.approx(direct_path / C * FS, abs=3)
    # amplitude: sqrt(1 - absorption) and the longer legs (a sphere's echo ~ 1 / (r1 r2)) against the direct echo
    r_direct = np.linalg.norm(target - spk[0]) * np.linalg.norm(target - mic[0])
    r_ghost = np.linalg.norm(target - spk[0]) * np.linalg.norm(target - mic_image)
    expected = 2 * np.sqrt(1 - room.absorption) * r_direct / r_ghost      # two reciprocal paths, same delay
    ratio = env.max() / envelope(flat[:n]).max()
    assert ratio == pytest.approx(expected, rel=0.3)
    # floor and ceiling ghosts are there too, each at its mirrored delay
    spk_floor = mirror_in_walls(spk + base, room.size_m)[4, 0] - base
    floor_path = np.linalg.norm(target - spk_floor) + np.linalg.norm(target - mic[0]) - 2 * radius
    i = int(round(floor_path / C * FS))
    assert env[i - 4: i + 5].max() > 0.2 * env.max()
    # nothing before the first echo
    assert env[: int(direct_path / C * FS) - 20].max() < 0.02 * env.max()


@pytest.fixture(scope="module")
def shadow_setup():
    room = Room((6.0, 4.0, 2.6), 0.3, 3)
    base = np.array([0.4, 2.0, 0.0])
    spk = np.array([[0.0, 0.03, 1.2]]) + base
    mic = np.array([[0.0, -0.03, 1.2]]) + base
    joints = place_in_world(body_joints(1.75, "standing"), (2.5, 0.0), np.pi)
    caps = body_capsules(joints, 1.75)
    caps[:, :3] += base
    caps[:, 3:6] += base
    paths = image_paths(room, spk, mic, 15.0)
    length = int(15.0 / C * FS) + 64
    return room, spk, mic, caps, paths, shadow_response(paths, caps, 1, FS, C, length)[0]


def test_body_shadows_the_far_wall_echo_more_at_high_frequencies(shadow_setup):
    room, spk, mic, caps, paths, shadow = shadow_setup
    # oracle: the far wall's (x = Lx) first-order path crosses the torso twice; its delay from the mirror
    far = mirror_in_walls(spk, room.size_m)[1, 0]
    far_path = np.linalg.norm(far - mic[0])
    amplitude = np.sqrt(1 - room.absorption) / (4 * np.pi * far_path)
    centre = int(round(far_path / C * FS))
    start = centre - 20                                         # the next blocked path is 36 taps later
    spectrum = np.fft.rfft(shadow[start: start + 40], 4096)
    f = np.fft.rfftfreq(4096, 1 / FS)
    delay = far_path / C * FS - start                           # samples into the segment
    transmission = 1 + spectrum / (amplitude * np.exp(-2j * np.pi * f / FS * delay))
    low = np.abs(transmission[(f > 1000) & (f < 3000)]).mean()
    high = np.abs(transmission[(f > 12000) & (f < 18000)]).mean()
    print(f"|T| 1-3 kHz {low:.2f}, 12-18 kHz {high:.2f}")
    assert low > high + 0.15 and high < 0.5                   # low frequencies bend round the torso, high ones don't
    # the side wall's first-order path (y = 0) passes beside the person: no residual at its delay
    side = mirror_in_walls(spk, room.size_m)[2, 0]
    i = int(round(np.linalg.norm(side - mic[0]) / C * FS))
    ear = np.abs(shadow[i - 8: i + 9]).max()
    assert ear < 0.05 * np.abs(shadow[centre - 8: centre + 9]).max()


def test_shadow_only_where_the_body_is(shadow_setup):
    room, spk, mic, caps, paths, shadow = shadow_setup
    far_caps = caps.copy()
    far_caps[:, [0, 3]] += 10.0                               # the person moved out of the room
    assert shadow_response(paths, far_caps, 1, FS, C, len(shadow)) is None
    # nothing arrives before the shortest blocked path (direct path to the person and back)
    first = 2 * (2.5 - 0.2) / C * FS
    assert np.abs(shadow[: int(first) - 30]).max() < 1e-3 * np.abs(shadow).max()


def test_fast_echo_renderer_matches_per_echo_fractional_delays():
    from av_pose_ros.sim.render import _fractional_derivative_taps

    rng = np.random.default_rng(0)
    delays, amps = rng.uniform(100, 900, 500), rng.normal(size=500)
    spectrum, n_fft = render_derivative_echoes(delays, amps, np.zeros(500, int), 1, 1000)
    fast = np.fft.irfft(spectrum, n_fft)[0, :1000]
    pos, taps = _fractional_derivative_taps(delays)
    slow = np.bincount(pos.ravel(), weights=(amps[:, None] * taps).ravel(), minlength=1000)[:1000]
    a, b = sosfiltfilt(BAND, fast), sosfiltfilt(BAND, slow)
    assert np.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2)) < 0.01


def echo_spectrum(response, f_probe):
    spec = np.fft.rfft(response, 4096)
    f = np.fft.rfftfreq(4096, 1 / FS)
    return np.array([spec[np.argmin(abs(f - fp))] for fp in f_probe])


def test_clothing_absorbs_high_frequencies_skin_does_not():
    spk, mic = np.array([[0.0, 0.03, 1.2]]), np.array([[0.0, -0.03, 1.2]])
    surf = ball(np.array([1.5, 0.0, 1.2]), 0.1)
    freqs = np.array([1500.0, 6000.0, 16000.0])
    bare = echo_spectrum(body_response(surf, spk, mic, FS, C, BodyAcoustics(reflectance=0.8))[0, 0], freqs)
    cloth = BodyAcoustics(reflectance=0.8, clothing_absorption=0.5, clothing_corner_hz=5000.0)
    clothed = echo_spectrum(body_response(surf, spk, mic, FS, C, cloth)[0, 0], freqs)
    x = (freqs / 5000.0) ** 2
    np.testing.assert_allclose(np.abs(clothed / bare), 1 - 0.5 * x / (1 + x), rtol=0.02)
    surf.owner = np.full(len(surf.points), 18)                 # the same ball as a head (bare skin)
    skin = echo_spectrum(body_response(surf, spk, mic, FS, C, cloth)[0, 0], freqs)
    np.testing.assert_allclose(np.abs(skin / bare), 1.0, rtol=0.02)


def test_rough_clothing_loses_the_coherent_echo_as_exp_minus_2_k2_sigma2():
    spk, mic = np.array([[0.0, 0.01, 1.2]]), np.array([[0.0, -0.01, 1.2]])
    surf = ball(np.array([1.5, 0.0, 1.2]), 0.15, spacing=0.006)
    freqs = np.array([2000.0, 6000.0, 10000.0])
    smooth = echo_spectrum(body_response(surf, spk, mic, FS, C, BodyAcoustics(reflectance=1.0))[0, 0], freqs)
    sigma = 0.003
    rough = BodyAcoustics(reflectance=1.0, roughness_m=sigma)
    mean = np.mean([echo_spectrum(body_response(surf, spk, mic, FS, C, rough, rng=np.random.default_rng(i))[0, 0],
                                  freqs) for i in range(48)], axis=0)
    k = 2 * np.pi * freqs / C
    expected = np.exp(-2 * (k * sigma) ** 2)                   # monostatic, normal incidence at the specular point
    print(np.abs(mean / smooth), expected)
    np.testing.assert_allclose(np.abs(mean / smooth), expected, atol=0.06)


# -- sensor truths the robot gets wrong -------------------------------------------------------------------------
def test_calibration_errors_render_the_true_world_and_report_the_nominal_one():
    import dataclasses

    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import SensorTruth, load_scenario

    scene = load_scenario("default").sample(np.random.default_rng(7))
    rig = scene.rig
    rng = np.random.default_rng(1)
    truth = SensorTruth(temperature_error_c=2.0, speaker_offsets_m=rng.uniform(-0.006, 0.006, rig.speakers.shape),
                        mic_offsets_m=rng.uniform(-0.006, 0.006, rig.mics.shape))
    wrong = dataclasses.replace(scene, truth=truth)
    # oracle: the same world described correctly (true rig, true temperature, no errors)
    true_rig = dataclasses.replace(rig, speakers=rig.speakers + truth.speaker_offsets_m,
                                   mics=rig.mics + truth.mic_offsets_m)
    right = dataclasses.replace(scene, rig=true_rig,
                                audio=dataclasses.replace(scene.audio, temperature_c=scene.audio.temperature_c + 2.0))
    sim = Simulator()
    a = sim.render_capture(wrong, 0, rng=np.random.default_rng(3))
    b = sim.render_capture(right, 0, rng=np.random.default_rng(3))
    np.testing.assert_allclose(a.recording, b.recording, atol=1e-6)
    # what the pipeline is told: the nominal rig and the thermometer's temperature
    np.testing.assert_allclose(a.speakers, rig.speakers_base())
    from av_pose_ros.acoustics.physics import speed_of_sound
    assert a.speed_of_sound == pytest.approx(speed_of_sound(scene.audio.temperature_c))
    assert a.true_speed_of_sound == pytest.approx(b.speed_of_sound)


def test_camera_extrinsic_error_moves_the_detections_by_the_expected_pixels():
    import dataclasses

    from av_pose_ros.primitives.geometry import apply_transform, invert_transform
    from av_pose_ros.sim.render import Simulator
    from av_pose_ros.sim.scenario import SensorTruth, load_scenario

    scene = load_scenario("default").sample(np.random.default_rng(8))
    angle = np.radians(0.5)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])  # yaw
    wrong = dataclasses.replace(scene, truth=SensorTruth(camera_rotation=rot, camera_offset_m=np.zeros(3)))
    true_optical = Simulator.true_geometry(wrong)[2]
    point = np.array([[3.0, 0.0, 1.2]])                    # on the optical axis, 3 m ahead
    k = scene.rig.intrinsics.K
    u_nominal = apply_transform(invert_transform(scene.rig.base_from_optical), point)
    u_true = apply_transform(invert_transform(true_optical), point)
    px = [k[0, 0] * p[0, 0] / p[0, 2] + k[0, 2] for p in (u_nominal, u_true)]
    # oracle: a camera yawed by 0.5 deg sees an on-axis point f tan(0.5 deg) pixels off centre
    assert abs(px[1] - px[0]) == pytest.approx(k[0, 0] * np.tan(angle), rel=0.01)


# -- noise that is not white ------------------------------------------------------------------------------------
MICS = np.array([[0.0, 0.35, 1.45], [0.0, 0.29, 1.45], [0.0, -0.35, 0.95], [0.0, -0.29, 0.95]])


@pytest.mark.parametrize("mix", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.3, 0.4, 0.3)])
def test_room_noise_has_the_requested_power(mix):
    from av_pose_ros.sim.noise import room_noise

    x = room_noise(48000, MICS, FS, C, 0.01, mix, 0.0, np.random.default_rng(0), 5)
    assert np.sqrt(np.mean(x ** 2)) == pytest.approx(0.01, rel=0.02)


def test_hvac_noise_is_pink_and_coherent_at_low_frequencies_only():
    from scipy.signal import coherence, welch

    from av_pose_ros.sim.noise import room_noise

    x = room_noise(4 * FS, MICS[:2], FS, C, 1.0, (0, 1, 0), 0.0, np.random.default_rng(1), 3)
    f, p = welch(x[0], FS, nperseg=4096)
    band = (f > 200) & (f < 12000)
    slope = np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0]
    assert -1.5 < slope < -0.6                               # 1/f^a, a in 0.8-1.3 (white would be 0)
    f, coh = coherence(x[0], x[1], FS, nperseg=4096)
    # oracle: diffuse-field coherence sinc(2 f d / c) of the mics' spacing (6 cm): near 1 at 300 Hz, ~0 at 8 kHz
    assert coh[np.argmin(abs(f - 300))] > 0.8 and coh[(f > 6000) & (f < 12000)].mean() < 0.2


def test_babble_is_speech_like_and_impulses_are_impulsive():
    from scipy.signal import welch

    from av_pose_ros.sim.noise import room_noise

    rng = np.random.default_rng(2)
    babble = room_noise(3 * FS, MICS, FS, C, 1.0, (0, 0, 1), 0.0, rng, 4)[0]
    white = rng.normal(size=3 * FS)
    f, p = welch(babble, FS, nperseg=2048)
    centroid = (f * p).sum() / p.sum()
    assert 200 < centroid < 2500                             # speech energy sits below ~3 kHz; white: 12 kHz
    env = [np.abs(hilbert(sosfiltfilt(butter(4, [300, 3000], "bandpass", fs=FS, output="sos"), s)))
           for s in (babble, white)]
    smooth = [np.convolve(e, np.ones(FS // 20) / (FS // 20), "valid")[:: FS // 100] for e in env]   # 50 ms
    mod = [np.std(e) / np.mean(e) for e in smooth]
    print("syllabic modulation babble / white", mod)
    assert mod[0] > 3 * mod[1]                               # syllables and pauses modulate the envelope
    clicks = room_noise(FS, MICS, FS, C, 0.01, (1, 0, 0), 5.0, np.random.default_rng(3), 4)[0]
    kurtosis = np.mean(clicks ** 4) / np.mean(clicks ** 2) ** 2
    assert kurtosis > 10                                     # Gaussian: 3
