"""The empty-room model's decay prior (empirical Bayes: a room response only decays after its direct path, so taps
whose energy the capture did not show are shrunk) against the plain least-squares fit, on music the capture never
contained. Oracle: direct convolution, as in test_acoustics_room_model.py."""

import numpy as np
import pytest

from av_pose_ros.acoustics import probes
from av_pose_ros.acoustics.room_model import RoomModel

S, M, L = 2, 2, 400
NOISE = 3e-3           # recorded noise, about -40 dB re the recording


def mix(x, h):
    return np.stack([sum(np.convolve(x[s], h[s, m])[: x.shape[1]] for s in range(h.shape[0]))
                     for m in range(h.shape[1])])


def room(rng):
    """A direct path, then a reverberant tail losing 80 dB over the response (as a real room's)."""
    h = rng.standard_normal((S, M, L)) * 0.05 * 10 ** (-4 * np.arange(L) / L)
    for i in range(S):
        for j in range(M):
            h[i, j, 4 + 7 * abs(i - j)] += 1.0 if i == j else 0.4
    return h


def residual_db(model, x, y):
    n = x.shape[1] - (L - 1)
    err = y[:, -n:] - model.predict(x, n)
    return float(10 * np.log10(np.sum(err ** 2) / np.sum(y[:, -n:] ** 2)))


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(4)
    h = room(rng)
    track = probes.synthetic_music(3.0).astype(float)
    heard = np.stack([track[:2500], track[48000:50500]])              # a short capture: 2500 samples, 800 unknowns
    new = np.stack([track[96000:99000], track[120000:123000]])        # later bars: chords the capture never had
    y = mix(heard, h) + NOISE * rng.standard_normal((M, heard.shape[1]))
    y_new = mix(new, h) + NOISE * rng.standard_normal((M, new.shape[1]))
    models = {}
    for prior in ("none", "decay"):
        models[prior] = RoomModel(S, M, L, prior=prior)
        models[prior].fit(heard, y, 0, iterations=300)
    return h, heard, y, new, y_new, models


def test_decay_prior_predicts_unheard_music_better(case):
    h, heard, y, new, y_new, models = case
    got = {name: residual_db(m, new, y_new) for name, m in models.items()}
    err = {name: float(np.sum((m.h - h) ** 2) / np.sum(h ** 2)) for name, m in models.items()}
    print({k: round(v, 1) for k, v in got.items()}, err)
    assert got["decay"] < got["none"] - 1.0
    assert err["decay"] < 0.3 * err["none"]                         # much closer to the true responses
    variance = models["decay"].tap_variance
    assert variance.shape == h.shape and np.all(np.diff(variance, axis=-1) <= 0)   # a room only decays
    assert models["none"].tap_variance is None


def test_decay_prior_keeps_what_the_capture_heard(case):
    """On the capture itself the prior costs little: it only matters where the music left the fit uncertain."""
    h, heard, y, new, y_new, models = case
    heard_db = {name: residual_db(m, heard, y) for name, m in models.items()}
    print(heard_db)
    assert heard_db["decay"] < heard_db["none"] + 3.0


def test_unknown_prior_is_refused():
    with pytest.raises(ValueError, match="prior"):
        RoomModel(2, 2, 100, prior="smooth")
