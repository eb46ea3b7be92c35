"""Robustness augmentation on host waveforms (float32, 16 kHz), driven by a numpy Generator.

Additive noise at a sampled SNR, room impulse responses, speed perturbation, gain,
noise-only examples with empty targets, and truncation with the matching target prefix
(for streaming training). Each function is pure given its rng, so grain's per-example
seeding makes augmentation reproducible and resumable.
"""

import dataclasses
import json
import os
import re

import numpy as np
from scipy import signal

from fun_asr_jax.audio import io as audio_io


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  noise_prob: float = 0.0
  snr_db: tuple[float, float] = (0.0, 20.0)  # uniform; mean 10 dB as in the paper
  rir_prob: float = 0.0
  speed_prob: float = 0.0
  speeds: tuple[float, ...] = (0.9, 1.1)
  gain_prob: float = 0.0
  gain_db: tuple[float, float] = (-6.0, 6.0)
  noise_only_prob: float = 0.0  # replace the example by noise with an empty target
  truncate_prob: float = 0.0  # streaming: cut audio and keep the target prefix

  @property
  def enabled(self) -> bool:
    return any((self.noise_prob, self.rir_prob, self.speed_prob, self.gain_prob,
                self.noise_only_prob, self.truncate_prob))


class NoiseBank:
  """Noise and RIR clips of a noise manifest, loaded once at 16 kHz."""

  def __init__(self, manifest: str | None):
    self.noises: list[np.ndarray] = []
    self.rirs: list[np.ndarray] = []
    if not manifest:
      return
    if not os.path.exists(manifest):
      raise FileNotFoundError(f"config.data.noise={manifest}: no such manifest")
    folder = os.path.dirname(os.path.abspath(manifest))
    with open(manifest) as f:
      for i, line in enumerate(f):
        if not line.strip():
          continue
        row = json.loads(line)
        x, rate = audio_io.load(os.path.join(folder, row["audio"]))
        x = audio_io.resample(audio_io.to_mono(x), rate).astype(np.float32)
        if row.get("kind", "noise") == "rir":
          self.rirs.append(x / (np.sqrt(np.sum(x ** 2)) + 1e-9))
        else:
          self.noises.append(x)
    if not self.noises and not self.rirs:
      raise ValueError(f"{manifest}: no usable noise or rir clips")

  def noise_segment(self, rng: np.random.Generator, n: int) -> np.ndarray:
    noise = self.noises[rng.integers(len(self.noises))]
    if len(noise) < n:
      noise = np.tile(noise, n // len(noise) + 1)
    start = rng.integers(0, len(noise) - n + 1)
    return noise[start: start + n]


def power(x: np.ndarray) -> float:
  return float(np.mean(np.square(x, dtype=np.float64)))


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
  """x + noise scaled so that 10·log10(P(x) / P(noise)) = snr_db."""
  ps, pn = power(x), power(noise)
  if ps == 0 or pn == 0:
    return x
  scale = np.sqrt(ps / (pn * 10 ** (snr_db / 10)))
  return (x + scale * noise).astype(np.float32)


def apply_rir(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
  """Reverberate, aligned on the direct path, same length, same peak level."""
  wet = signal.fftconvolve(x, rir)[int(np.argmax(np.abs(rir))):][: len(x)]
  peak = np.abs(wet).max()
  return (wet * (np.abs(x).max() / peak) if peak > 0 else wet).astype(np.float32)


def band_limit(x: np.ndarray, rate: int) -> np.ndarray:
  """The 16 kHz signal as a `rate` recording would carry it (down and back up).

  Noise mixed into an 8 kHz recording must pass through the same channel: wideband noise
  over band-limited speech fills mel bins that clean test audio of that corpus leaves empty.
  """
  if rate >= audio_io.TARGET_RATE:
    return x
  return audio_io.resample(audio_io.resample(x, audio_io.TARGET_RATE, rate), rate)[: len(x)]


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
  """Plays `factor` times faster (tempo and pitch, like sox 'speed')."""
  up, down = int(round(1000 / factor)), 1000
  g = np.gcd(up, down)
  return signal.resample_poly(x, up // g, down // g).astype(np.float32)


_UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def truncate(x: np.ndarray, text: str, fraction: float) -> tuple[np.ndarray, str]:
  """Keeps the first `fraction` of the audio and the units (CJK chars, words) spoken in it.

  Without alignments the prefix is proportional and conservative: a unit is kept only if
  it ends before `fraction` of the text, so the target never claims unheard speech.
  """
  units = list(_UNIT.finditer(text))
  keep = len(units) if fraction >= 1.0 else int(np.floor(fraction * len(units) - 0.5))
  prefix = text[: units[keep - 1].end()] if keep > 0 else ""
  return x[: max(1, int(len(x) * fraction))], prefix


def augment(x: np.ndarray, text: str, rng: np.random.Generator, cfg: AugmentConfig,
            bank: NoiseBank | None, rate: int = audio_io.TARGET_RATE
            ) -> tuple[np.ndarray, str, str]:
  """-> (audio, target text, kind); kind becomes 'noise' for noise-only replacements.

  `x` is at 16 kHz; `rate` is the recording's own rate, which bounds the added noise's band.
  """
  kind = "speech" if text else "noise"
  if bank is not None and bank.noises and rng.random() < cfg.noise_only_prob:
    n = len(x)
    return (band_limit(bank.noise_segment(rng, n), rate) * np.float32(10 ** rng.uniform(-1.5, 0.0))
            ).astype(np.float32), "", "noise"
  if rng.random() < cfg.truncate_prob and len(x) > 1600:
    x, text = truncate(x, text, rng.uniform(0.3, 0.9))
  if rng.random() < cfg.speed_prob:
    x = speed_perturb(x, float(rng.choice(cfg.speeds)))
  if bank is not None and bank.rirs and rng.random() < cfg.rir_prob:
    x = apply_rir(x, bank.rirs[rng.integers(len(bank.rirs))])
  if bank is not None and bank.noises and rng.random() < cfg.noise_prob:
    x = add_noise(x, band_limit(bank.noise_segment(rng, len(x)), rate),
                  rng.uniform(*cfg.snr_db))
  if rng.random() < cfg.gain_prob:
    x = x * np.float32(10 ** (rng.uniform(*cfg.gain_db) / 20))
  peak = np.abs(x).max() if len(x) else 0.0
  if peak > 1.0:
    x = x / peak
  return x.astype(np.float32), text, kind
