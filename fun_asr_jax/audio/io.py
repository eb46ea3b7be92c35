"""Host-side audio: load, check, convert to mono 16 kHz float, and pad into a batch.

This is the boundary where user audio enters; every error names the item and the problem.
"""

import math
import os

import numpy as np
import soundfile as sf
from scipy import signal

TARGET_RATE = 16000


class AudioError(ValueError):
  """Audio that cannot be used as given."""


def load(path: str) -> tuple[np.ndarray, int]:
  """Reads WAV/FLAC/OGG -> (float32 `[N]` or `[N, C]` in [-1, 1], sample rate)."""
  if not os.path.exists(path):
    raise AudioError(f"{path}: no such file")
  try:
    data, rate = sf.read(path, dtype="float32", always_2d=False)
  except Exception as e:  # soundfile raises several types for corrupt files
    raise AudioError(f"{path}: unreadable audio ({e})") from e
  return data, rate


def resample(x: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
  """Polyphase resampling along axis 0 (exact rational ratio)."""
  if rate == target:
    return x
  g = math.gcd(int(rate), int(target))
  return signal.resample_poly(x, target // g, rate // g, axis=0).astype(np.float32)


def to_mono(x: np.ndarray, name: str = "audio") -> np.ndarray:
  """`[N]`, `[N, C]` -> `[N]` by averaging channels."""
  if x.ndim == 1:
    return x
  if x.ndim == 2:
    return x.mean(axis=1).astype(np.float32)
  raise AudioError(f"{name}: expected 1-D (samples) or 2-D (samples, channels) audio, "
                   f"got shape {x.shape}")


def check_waveform(x, sample_rate: int, name: str = "audio", expected_rate: int = TARGET_RATE,
                   max_seconds: float | None = None, allow_empty: bool = False) -> np.ndarray:
  """Validates a mono float waveform in [-1, 1] at `expected_rate` and returns it as float32.

  Raises:
    AudioError naming `name` and the problem (rate, channels, dtype, empty, too long).
  """
  x = np.asarray(x)
  if sample_rate != expected_rate:
    raise AudioError(f"{name}: sample rate {sample_rate} Hz, expected {expected_rate} Hz "
                     "(resample first, e.g. fun_asr_jax.audio.io.resample)")
  if x.ndim != 1:
    raise AudioError(f"{name}: expected mono audio of shape [samples], got shape {x.shape} "
                     "(mix down with fun_asr_jax.audio.io.to_mono)")
  if x.dtype == np.int16:
    x = x.astype(np.float32) / 32768.0
  elif not np.issubdtype(x.dtype, np.floating):
    raise AudioError(f"{name}: dtype {x.dtype} is not supported; pass float in [-1, 1] or int16")
  if x.size == 0 and not allow_empty:
    raise AudioError(f"{name}: empty audio (0 samples)")
  if not np.isfinite(np.sum(x, dtype=np.float64)):  # NaN or inf anywhere; no [N] temporary
    raise AudioError(f"{name}: contains NaN or infinite samples")
  if max_seconds is not None and x.size > max_seconds * expected_rate:
    raise AudioError(f"{name}: {x.size / expected_rate:.1f} s is longer than the configured "
                     f"maximum of {max_seconds:.1f} s (split it, e.g. with VAD)")
  return x.astype(np.float32, copy=False)


def pad_batch(waveforms: list[np.ndarray], multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """List of `[N_i]` -> (`[B, N]` zero-padded, lengths `[B]`), N rounded up to `multiple`."""
  lengths = np.array([w.shape[0] for w in waveforms], np.int32)
  n = max(int(lengths.max()), 1)
  n = -(-n // multiple) * multiple
  out = np.zeros((len(waveforms), n), np.float32)
  for i, w in enumerate(waveforms):
    out[i, : w.shape[0]] = w
  return out, lengths
