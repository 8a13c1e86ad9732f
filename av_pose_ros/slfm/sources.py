"""Mono source signals at 16 kHz: speech (espeak-ng), music-like harmonic tones, and noise.

Speech is synthesised once by the ``espeak-ng`` program (Debian package ``espeak-ng``) with many voices, variants,
speeds and pitches reading procedurally composed sentences, and cached as one ``.npz`` per corpus under the cache
directory; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy import signal as sps
from scipy.io import wavfile

from .constants import SAMPLE_RATE

_SUBJECTS = ["the robot", "my neighbour", "a tall woman", "the old man", "our teacher", "the little girl", "a doctor",
             "the engineer", "his brother", "the waiter", "somebody", "the new student", "a friendly dog",
             "the pilot", "her cousin", "the gardener", "everyone here", "the manager", "a young boy", "the nurse"]
_VERBS = ["carried", "painted", "found", "opened", "repaired", "counted", "dropped", "washed", "described", "ordered",
          "borrowed", "noticed", "cleaned", "measured", "delivered", "forgot", "lifted", "explained", "sold", "hid"]
_OBJECTS = ["a heavy box", "the blue chair", "seven apples", "the kitchen window", "an old radio", "the red bicycle",
            "a glass of water", "the broken clock", "three yellow pencils", "the garden gate", "a warm blanket",
            "the morning paper", "a silver spoon", "the wooden table", "two small keys", "the long letter",
            "a bag of rice", "the green lamp", "a pair of shoes", "the big map"]
_PLACES = ["in the hallway", "near the door", "before lunch", "after the meeting", "on the top shelf", "at the station",
           "under the stairs", "in the afternoon", "behind the sofa", "by the window", "during the storm",
           "at the corner shop", "next to the sink", "on Monday morning", "in the back room", "outside the office"]
_QUESTIONS = ["could you hand me", "did you see", "where did you put", "would you like", "have you checked",
              "can we move", "who left", "why is there"]
_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
            "twenty", "fifty", "a hundred"]

_VOICES = ["en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "de", "fr", "es", "it", "nl",
           "pt", "pl", "sv", "fi", "cs"]
_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
             "croak", "Andy", "Annie", "adam", "anika", "aunty", "boris", "david", "edward", "grandma", "grandpa",
             "linda", "max", "michel", "norbert", "paul", "rob", "robert", "steph", "travis", "victor", "zac"]


def compose_sentence(rng: np.random.Generator) -> str:
    """One random sentence from small word lists (statements, questions and number strings)."""
    kind = rng.integers(0, 4)
    pick = lambda seq: seq[int(rng.integers(0, len(seq)))]  # noqa: E731
    if kind == 0:
        return f"{pick(_SUBJECTS).capitalize()} {pick(_VERBS)} {pick(_OBJECTS)} {pick(_PLACES)}."
    if kind == 1:
        return f"{pick(_QUESTIONS).capitalize()} {pick(_OBJECTS)} {pick(_PLACES)}?"
    if kind == 2:
        nums = " ".join(pick(_NUMBERS) for _ in range(int(rng.integers(3, 7))))
        return f"The numbers are {nums}, and {pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)}."
    return (f"{pick(_SUBJECTS).capitalize()} {pick(_VERBS)} {pick(_OBJECTS)}, then {pick(_SUBJECTS)} "
            f"{pick(_VERBS)} {pick(_OBJECTS)} {pick(_PLACES)}.")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize_speech(text: str, voice: str, speed: int, pitch: int, fs: int = SAMPLE_RATE) -> np.ndarray:
    """Run espeak-ng once and return float32 mono at ``fs``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian package 'espeak-ng')")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.wav")
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, text],
                       check=True, capture_output=True, timeout=60)
        rate, data = wavfile.read(path)
    x = data.astype(np.float32) / 32768.0
    if rate != fs:
        g = np.gcd(int(rate), int(fs))
        x = sps.resample_poly(x, fs // g, rate // g).astype(np.float32)
    return x


def speech_corpus(cache_dir: str | os.PathLike, count: int = 240, seed: int = 0, split: str = "train") -> list:
    """``count`` speech utterances (float32 arrays at 16 kHz), synthesised on first use and cached.

    The ``train`` and ``eval`` splits use disjoint voice variants and different sentence seeds."""
    variants = _VARIANTS[: -8] if split == "train" else _VARIANTS[-8:]
    key = hashlib.sha1(f"{count}-{seed}-{split}-{variants}-{_VOICES}".encode()).hexdigest()[:10]
    path = Path(cache_dir) / f"speech_{split}_{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return [z[f"u{i}"] for i in range(int(z["count"]))]
    rng = np.random.default_rng(seed + (0 if split == "train" else 7919))
    utts = []
    for _ in range(count):
        voice = f"{_VOICES[int(rng.integers(0, len(_VOICES)))]}+{variants[int(rng.integers(0, len(variants)))]}"
        text = " ".join(compose_sentence(rng) for _ in range(2))
        x = synthesize_speech(text, voice, int(rng.integers(120, 200)), int(rng.integers(20, 80)))
        x = _trim_silence(x)
        if x.size > SAMPLE_RATE // 2:
            utts.append(x / (np.max(np.abs(x)) + 1e-9) * 0.9)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, count=len(utts), **{f"u{i}": u.astype(np.float32) for i, u in enumerate(utts)})
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return utts


def _trim_silence(x: np.ndarray, thresh: float = 1e-3) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > thresh)
    return x[idx[0]: idx[-1] + 1] if idx.size else x[:0]


def music_like(n: int, rng: np.random.Generator, fs: int = SAMPLE_RATE) -> np.ndarray:
    """Synthetic music: notes from a random scale, each a harmonic tone with decaying partials, ADSR envelope and
    vibrato, sometimes chords, plus occasional percussive noise hits."""
    out = np.zeros(n)
    t_all = np.arange(n) / fs
    root = 110.0 * 2 ** (rng.uniform(0, 24) / 12)
    scales = ([0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 7, 9])
    scale = np.array(scales[int(rng.integers(0, len(scales)))])
    pos = 0
    while pos < n:
        dur = int(fs * rng.uniform(0.08, 0.5))
        end = min(pos + dur + int(0.1 * fs), n)
        t = t_all[: end - pos]
        n_voices = int(rng.integers(1, 4))
        for _ in range(n_voices):
            step = scale[int(rng.integers(0, scale.size))] + 12 * int(rng.integers(0, 3))
            f0 = root * 2 ** (step / 12)
            vib = 1.0 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
            phase = 2 * np.pi * f0 * np.cumsum(vib) / fs
            n_harm = int(min(12, (fs / 2 - 200) // f0))
            decay = rng.uniform(0.5, 1.5)
            tone = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**decay for k in range(1, n_harm + 1))
            att = min(max(int(rng.uniform(0.005, 0.04) * fs), 1), t.size)
            env = np.exp(-t / rng.uniform(0.15, 0.8))
            env[:att] *= np.linspace(0, 1, att)
            out[pos:end] += tone * env / n_voices
        if rng.random() < 0.3:
            hit = min(int(0.05 * fs), end - pos)
            out[pos:pos + hit] += rng.standard_normal(hit) * np.exp(-np.arange(hit) / (0.01 * fs)) * 0.5
        pos += dur
    return (out / (np.max(np.abs(out)) + 1e-9) * 0.9).astype(np.float32)


def noise_like(n: int, rng: np.random.Generator, fs: int = SAMPLE_RATE) -> np.ndarray:
    """White, pink or brown noise, sometimes band-limited to a wide band (at least 3 kHz, so that the interaural
    time difference stays unambiguous), sometimes amplitude-modulated."""
    x = rng.standard_normal(n)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    slope = rng.choice([0.0, 0.5, 1.0])
    spec = spec / np.maximum(f, 20.0) ** slope
    if rng.random() < 0.4:
        lo = rng.uniform(50, 1500)
        hi = rng.uniform(lo + 3000, 8000)
        spec = spec * ((f > lo) & (f < hi))
    x = np.fft.irfft(spec, n)
    if rng.random() < 0.5:
        x = x * (1.0 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.5, 6) * np.arange(n) / fs + rng.uniform(0, 6.3)))
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.9).astype(np.float32)


class SourceBank:
    """Draws mono source signals of a requested length: speech segments from a cached corpus, music or noise."""

    def __init__(self, speech: list | None, probs=(0.5, 0.3, 0.2)):
        self.speech = [u for u in (speech or []) if u.size > 0]
        p = np.asarray(probs, dtype=float)
        if not self.speech:
            p[0] = 0.0
        self.probs = p / p.sum()

    def draw(self, n: int, rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, str]:
        if kind is None:
            kind = ["speech", "music", "noise"][int(rng.choice(3, p=self.probs))]
        if kind == "speech":
            return self._speech(n, rng), kind
        if kind == "music":
            return music_like(n, rng), kind
        return noise_like(n, rng), kind

    def _speech(self, n: int, rng: np.random.Generator) -> np.ndarray:
        parts = []
        total = 0
        while total < n:
            u = self.speech[int(rng.integers(0, len(self.speech)))]
            start = int(rng.integers(0, max(u.size - SAMPLE_RATE // 4, 1)))
            seg = u[start:]
            parts.append(seg)
            total += seg.size
            gap = int(rng.uniform(0.0, 0.15) * SAMPLE_RATE)
            parts.append(np.zeros(gap, np.float32))
            total += gap
        return np.concatenate(parts)[:n].astype(np.float32)
