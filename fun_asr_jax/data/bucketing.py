"""Length buckets: every batch is padded to one of a few fixed (audio, text) shapes.

Bucket i pairs an audio length with a text length, so the number of distinct batch shapes,
and hence of compiled programs, is at most the number of buckets. An example goes to the
smallest bucket that fits both its audio and its tokens; longer examples are dropped by
the pipeline (and counted).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Buckets:
  seconds: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0, 30.0)
  tokens: tuple[int, ...] = (64, 96, 160, 288, 512)
  sample_rate: int = 16000
  sample_multiple: int = 1600  # keep sample counts round (100 ms)

  def __post_init__(self):
    if len(self.seconds) != len(self.tokens):
      raise ValueError(f"data.buckets: {len(self.seconds)} audio lengths but "
                       f"{len(self.tokens)} text lengths; they pair up one to one")
    if list(self.seconds) != sorted(self.seconds) or list(self.tokens) != sorted(self.tokens):
      raise ValueError("data.buckets: lengths must be increasing")

  @property
  def samples(self) -> tuple[int, ...]:
    m = self.sample_multiple
    return tuple(int(-(-int(s * self.sample_rate) // m) * m) for s in self.seconds)

  def index(self, num_samples: int, num_tokens: int) -> int:
    """Smallest bucket fitting both, or -1 when none does."""
    for i, (s, t) in enumerate(zip(self.samples, self.tokens)):
      if num_samples <= s and num_tokens <= t:
        return i
    return -1


def pad_to(arrays: list[np.ndarray], length: int, value=0, dtype=None) -> np.ndarray:
  out = np.full((len(arrays), length), value, dtype or arrays[0].dtype)
  for i, a in enumerate(arrays):
    out[i, : len(a)] = a
  return out
