"""A measured head and the head calibration learned from turns.

* MeasuredHead (MIT KEMAR from Debian's libmysofa1): REP-103 sides, interaural delays of a real head, the head's yaw;
* HeadCalibration: the spherical curve, its file, refusal of a bad file;
* fit_head_calibration: from delays at known turns only (no directions), it recovers a bigger head's curve and
  a front/back-asymmetric head's back curve, and keeps one curve for a symmetric head;
* the estimator and the tracker read through it; slfm_node reports a bad calibration file and keeps running."""

import math

import numpy as np
import pytest

from av_pose_ros.slfm.binaural import azimuth_from_itd, woodworth_itd
from av_pose_ros.slfm.head_calibration import HeadCalibration, fit_head_calibration
from av_pose_ros.slfm.heads import KEMAR_SOFA, MeasuredHead, SphericalHead
from av_pose_ros.slfm.tracking import SourceTracker

from ros_harness import REPO, NodeProcess, Probe

needs_kemar = pytest.mark.skipif(not KEMAR_SOFA.exists(), reason="no MIT KEMAR set (apt-get install libmysofa1)")


def _delay(rir: np.ndarray, fs: int = 16000) -> float:
    """Right-ear arrival minus left-ear arrival (s) by cross-correlation, sub-sample by upsampling."""
    from scipy.signal import resample

    up = resample(rir, rir.shape[1] * 8, axis=1)
    cc = np.correlate(up[1], up[0], "full")
    return (int(np.argmax(cc)) - (up.shape[1] - 1)) / (fs * 8)


@pytest.fixture(scope="module")
def kemar():
    return MeasuredHead.from_sofa(KEMAR_SOFA)


def _free_field(head, azimuth_deg: float, yaw_deg: float = 0.0) -> np.ndarray:
    a = math.radians(azimuth_deg)
    return head.rir(np.array([[2.0 * math.cos(a), 2.0 * math.sin(a), 0.0]]), np.ones(1), np.zeros(3),
                    math.radians(yaw_deg), 800)


@needs_kemar
def test_measured_head_hears_sides_and_delays_like_a_real_head(kemar):
    assert kemar.hrirs.shape[:2] == (710, 2) and kemar.fs == 16000 and kemar.radius == pytest.approx(0.09)
    assert np.allclose(np.linalg.norm(kemar.directions, axis=1), 1.0)
    left = _free_field(kemar, 90.0)
    assert np.sum(left[0] ** 2) > 3.0 * np.sum(left[1] ** 2)          # + azimuth is the left ear (REP-103)
    assert 550e-6 < _delay(left) < 800e-6                               # a human-sized head's largest delay
    assert abs(_delay(_free_field(kemar, 0.0))) < 40e-6
    assert _delay(_free_field(kemar, -45.0)) < -250e-6
    # the head's yaw: turned 30 deg left, a source at 30 deg is straight ahead
    assert np.allclose(_free_field(kemar, 30.0, yaw_deg=30.0), _free_field(kemar, 0.0), atol=1e-9)
    # a real head is not front/back symmetric: 30 deg behind the left ear is not heard like 30 deg in front
    front, back = _free_field(kemar, 60.0), _free_field(kemar, 120.0)
    assert np.max(np.abs(front - back)) > 0.1 * np.max(np.abs(front))


def test_spherical_head_delays_exceed_the_woodworth_curve():
    # the far ear's shadow filter delays its low frequencies: the broadband delay is longer than Woodworth's
    # high-frequency one, which is why even the training head needs its curve learned
    excess = _delay(_free_field(SphericalHead(), 60.0)) - float(woodworth_itd(math.radians(60.0)))
    assert 10e-6 < excess < 60e-6


def test_spherical_calibration_file_and_bad_files(tmp_path):
    cal = HeadCalibration.woodworth()
    d = woodworth_itd(np.deg2rad([5.0, 40.0, 80.0]))
    assert np.allclose(cal.lateral(d), azimuth_from_itd(d), atol=math.radians(0.8))
    assert np.allclose(cal.lateral(-d), -cal.lateral(d))
    assert np.allclose(cal.apparent_lateral(np.deg2rad([150.0, -20.0])), np.deg2rad([30.0, -20.0]))
    cal.save(tmp_path / "c.json")
    assert HeadCalibration.load(tmp_path / "c.json") == cal
    (tmp_path / "bad.json").write_text('{"laterals_rad": [0, 0.5, 1.0], "delays_s": [0, 1e-4, 5e-5]}')
    with pytest.raises(ValueError, match="increasing"):
        HeadCalibration.load(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text('{"laterals_rad": [0, 0.5, 1.0], "delays_s": [0, NaN, 5e-4]}')
    with pytest.raises(ValueError, match="increasing"):
        HeadCalibration.load(tmp_path / "nan.json")
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(ValueError, match="calibrate-head"):
        HeadCalibration.load(tmp_path / "junk.json")


def _asin_fold(a):
    return np.arcsin(np.clip(np.sin(a), -1.0, 1.0))


def _recordings(front_scale: float, back_scale: float, n: int = 400, seed: int = 0):
    """Delays of a head whose delay is ``front_scale`` x Woodworth in front and ``back_scale`` x that behind, at
    four turns; 20 us noise, 10 % gross errors. The directions are returned for checking only."""
    rng = np.random.default_rng(seed)
    psi = rng.uniform(-math.pi, math.pi, n)
    turns = np.concatenate([np.zeros((n, 1)), rng.uniform(-0.52, 0.52, (n, 3))], axis=1)
    view = np.angle(np.exp(1j * (psi[:, None] - turns)))
    scale = np.where(np.abs(view) > math.pi / 2, front_scale * back_scale, front_scale)
    delays = scale * woodworth_itd(_asin_fold(view)) + rng.normal(0, 20e-6, view.shape)
    gross = rng.random(view.shape) < 0.1
    delays[gross] = rng.uniform(-7e-4, 7e-4, gross.sum())
    return delays, turns


def test_calibration_learns_a_bigger_head_from_turns_alone():
    delays, turns = _recordings(front_scale=1.12, back_scale=1.0)
    cal = fit_head_calibration(delays, turns, symmetric=True)
    lateral = np.deg2rad(np.arange(5.0, 80.0, 5.0))
    true_delay = 1.12 * woodworth_itd(lateral)
    learned = np.degrees(np.abs(cal.lateral(true_delay) - lateral))
    plain = np.degrees(np.abs(HeadCalibration.woodworth().lateral(true_delay) - lateral))
    assert np.median(learned) < 1.5 and np.median(plain) > 3.0, (learned, plain)
    assert cal.back_delays_s == ()      # a head known to be symmetric keeps one curve
    both = fit_head_calibration(delays, turns)   # a back curve of its own, close to the front one here
    assert np.degrees(np.max(np.abs(both.apparent_lateral(np.pi - lateral) - lateral))) < 3.0
    assert cal.recordings == 400 and cal.residual_us < 30.0


def test_calibration_learns_the_back_of_an_asymmetric_head():
    delays, turns = _recordings(front_scale=1.0, back_scale=0.85)
    cal = fit_head_calibration(delays, turns)
    assert cal.back_delays_s
    behind = np.deg2rad(np.arange(110.0, 170.0, 10.0))          # where a source behind is read in front
    read = HeadCalibration.woodworth().lateral(0.85 * woodworth_itd(_asin_fold(behind)))
    assert np.degrees(np.max(np.abs(cal.apparent_lateral(behind) - read))) < 2.0
    with pytest.raises(ValueError, match="at least 20"):
        fit_head_calibration(delays[:10], turns[:10])


def test_tracker_reads_a_source_behind_through_the_back_curve():
    delays, turns = _recordings(front_scale=1.0, back_scale=0.85, seed=1)
    cal = fit_head_calibration(delays, turns)
    truth = math.radians(150.0)
    yaws = np.deg2rad(np.linspace(0.0, 20.0, 8))
    read = cal.lateral(0.85 * woodworth_itd(_asin_fold(truth - yaws)))  # what the calibrated estimator reads
    front_only = HeadCalibration(cal.laterals_rad, cal.delays_s)
    errors = {}
    for name, head_calibration in (("calibrated", cal), ("symmetric", front_only)):
        tracker = SourceTracker("gcc_phat", head_calibration=head_calibration)
        for lateral, yaw in zip(read, yaws):
            az = tracker.update_lateral(float(lateral), float(yaw))
        errors[name] = abs(math.degrees(np.angle(np.exp(1j * (az - (truth - yaws[-1]))))))
    assert errors["calibrated"] < 3.5 and errors["calibrated"] < 0.6 * errors["symmetric"], errors


def test_estimator_reads_its_delay_through_the_calibration():
    from av_pose_ros.slfm.estimators import AzimuthEstimator
    from av_pose_ros.slfm.rooms import render_view, sample_room
    from av_pose_ros.slfm.sources import music_like

    path = REPO / "models" / "slfm_azimuth.pt"
    if not path.exists():
        pytest.skip("no shipped azimuth model")
    rng = np.random.default_rng(3)
    room = sample_room(rng, rt60_range=(0.2, 0.3))
    clip = render_view(room, room.base_yaw, music_like(16000 * 2, rng), rng)
    plain = AzimuthEstimator.load(path, calibration=None)
    bigger = HeadCalibration(tuple(1.3 * np.array(HeadCalibration.woodworth().delays_s)),
                             HeadCalibration.woodworth().laterals_rad)
    calibrated = AzimuthEstimator.load(path, calibration=bigger)
    delay = plain.delay_batch([clip])[0]
    assert calibrated.estimate(clip) == pytest.approx(float(bigger.lateral(delay)))
    assert abs(plain.estimate(clip)) > abs(calibrated.estimate(clip)) + math.radians(1.0)


def test_slfm_node_reports_a_bad_head_calibration_and_keeps_running(ros_context, tmp_path):
    bad = tmp_path / "head.json"
    bad.write_text("{}")
    probe = Probe(ros_context)
    with NodeProcess("slfm_node", {"mode": "audio", "head_calibration_path": str(bad)}) as node:
        try:
            assert probe.spin_until(lambda: "not a head calibration file" in probe.diagnostic_message("slfm_node"),
                                    30.0), node.stop()
            assert node.alive()
        finally:
            probe.close()


def test_the_shipped_model_loads_with_its_own_calibration_only(tmp_path):
    import dataclasses
    import shutil

    from av_pose_ros.slfm.estimators import AzimuthEstimator

    path = REPO / "models" / "slfm_azimuth.pt"
    shipped = REPO / "models" / "slfm_head_calibration.json"
    if not (path.exists() and shipped.exists()):
        pytest.skip("no shipped azimuth model and calibration")
    assert AzimuthEstimator.load(path).calibration == HeadCalibration.load(shipped)
    assert AzimuthEstimator.load(path, calibration=None).calibration is None
    shutil.copy(path, tmp_path / "slfm_azimuth.pt")      # a calibration beside it, fitted on another model
    other = dataclasses.replace(HeadCalibration.load(shipped), azimuth_model="0" * 16)
    other.save(tmp_path / "slfm_head_calibration.json")
    assert AzimuthEstimator.load(tmp_path / "slfm_azimuth.pt").calibration is None
