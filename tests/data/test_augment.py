"""Augmentation: SNR, RIR alignment, speed, truncation prefixes."""

import os

import numpy as np
import pytest

from fun_asr_jax.data import augment as aug


def test_noise_mixed_at_requested_snr_within_1db():
  rng = np.random.default_rng(0)
  t = np.arange(32000) / 16000
  speech = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
  for snr in (0.0, 5.0, 10.0, 20.0):
    noise = rng.standard_normal(32000).astype(np.float32) * rng.uniform(0.01, 2)
    mixed = aug.add_noise(speech, noise, snr)
    measured = 10 * np.log10(aug.power(speech) / aug.power(mixed - speech))
    assert abs(measured - snr) < 1.0


def test_real_noise_bank_snr(shared_data):
  bank = aug.NoiseBank(os.path.join(shared_data, "noise", "manifest.jsonl"))
  assert bank.noises and bank.rirs
  rng = np.random.default_rng(1)
  speech = (0.2 * rng.standard_normal(16000)).astype(np.float32)
  noise = bank.noise_segment(rng, 16000)
  mixed = aug.add_noise(speech, noise, 7.0)
  assert abs(10 * np.log10(aug.power(speech) / aug.power(mixed - speech)) - 7.0) < 1.0


def _band_energy(x, lo, hi):
  spec = np.abs(np.fft.rfft(x)) ** 2
  freqs = np.fft.rfftfreq(len(x), 1 / 16000)
  return spec[(freqs >= lo) & (freqs < hi)].sum()


def test_noise_for_8khz_recordings_stays_in_their_band():
  rng = np.random.default_rng(2)
  white = rng.standard_normal(16000).astype(np.float32)
  limited = aug.band_limit(white, 8000)
  assert len(limited) == len(white)
  # what an 8 kHz recording cannot carry is gone, what it can carry is kept
  assert _band_energy(limited, 4400, 8000) < 1e-3 * _band_energy(white, 4400, 8000)
  assert abs(_band_energy(limited, 100, 3800) / _band_energy(white, 100, 3800) - 1) < 0.05
  np.testing.assert_array_equal(aug.band_limit(white, 16000), white)

  class Bank:  # one white-noise clip, no RIRs
    noises, rirs = [white], []

    def noise_segment(self, rng, n):
      return white[:n]

  speech = aug.band_limit(rng.standard_normal(16000).astype(np.float32), 8000)
  cfg = aug.AugmentConfig(noise_prob=1.0, snr_db=(0.0, 0.0), speed_prob=0.0, gain_prob=0.0)
  for rate, leak in ((8000, False), (16000, True)):
    x, _, _ = aug.augment(speech, "one", np.random.default_rng(0), cfg, Bank(), rate)
    high = _band_energy(x, 4200, 8000) / _band_energy(x, 100, 8000)
    assert (high > 0.1) == leak, (rate, high)


def test_rir_keeps_length_and_alignment():
  x = np.zeros(1000, np.float32)
  x[100] = 1.0
  rir = np.zeros(300, np.float32)
  rir[20], rir[60] = 1.0, 0.5
  y = aug.apply_rir(x, rir)
  assert y.shape == x.shape and np.argmax(np.abs(y)) == 100 and abs(y[140] - 0.5) < 1e-6


def test_speed_perturb_changes_duration():
  x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
  assert abs(len(aug.speed_perturb(x, 1.1)) - 16000 / 1.1) <= 2
  assert abs(len(aug.speed_perturb(x, 0.9)) - 16000 / 0.9) <= 2


@pytest.mark.parametrize("text,fraction,want", [
    ("one two three four", 0.6, "one"),
    ("one two three four", 0.8, "one two"),
    ("我们在北京开会", 0.5, "我们在"),
    ("我们有一个 meeting 今天", 0.85, "我们有一个 meeting"),
    ("我们有一个 meeting 今天", 1.0, "我们有一个 meeting 今天"),
    ("hello", 0.3, ""),
])
def test_truncation_keeps_a_conservative_prefix(text, fraction, want):
  x = np.ones(10000, np.float32)
  y, prefix = aug.truncate(x, text, fraction)
  assert len(y) == int(10000 * fraction) and prefix == want
