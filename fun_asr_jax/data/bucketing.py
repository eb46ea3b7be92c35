"""Length buckets: every batch is padded to one of a few fixed (audio, text) shapes.

Bucket i pairs an audio length with a text length, so the number of distinct batch shapes,
and hence of compiled programs, is at most the number of buckets. An example goes to the
smallest bucket that fits both its audio and its tokens; longer examples are dropped by
the pipeline (and counted). `GroupedBatches` batches examples of similar length together,
so most batches use a small bucket.
"""

import dataclasses

import grain
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


# -- length-grouped batching ----------------------------------------------------------------
class GroupedBatches(grain.IterDataset):
  """Batches of similar length, so a batch pads to its own bucket rather than the longest.

  Reads `window` batches' worth of examples, sorts them by `key`, cuts batches and yields
  them in a seeded random order. The iterator state is the parent's state at the window
  start plus the batches already taken, so a restored iterator re-reads that window and
  continues exactly. `window <= 1` is plain batching in arrival order.
  """

  def __init__(self, parent: grain.IterDataset, batch_size: int, window: int, key, batch_fn,
               seed: int = 0, drop_remainder: bool = True):
    super().__init__(parent)
    self.batch_size, self.window, self.key = batch_size, max(window, 1), key
    self.batch_fn, self.seed, self.drop_remainder = batch_fn, seed, drop_remainder

  def __iter__(self):
    return _GroupedBatchIterator(self._parent.__iter__(), self)


class _GroupedBatchIterator(grain.DatasetIterator):

  def __init__(self, parent, spec: GroupedBatches):
    super().__init__(parent)
    self._spec = spec
    self._start = parent.get_state()  # parent state where the buffered window began
    self._window = -1  # index of the buffered window
    self._batches, self._taken = [], 0

  def _fill(self):
    s = self._spec
    self._start = self._parent.get_state()
    self._window += 1
    items = []
    for _ in range(s.batch_size * s.window):
      try:
        items.append(next(self._parent))
      except StopIteration:
        break
    if s.window > 1:
      items.sort(key=s.key)
    batches = [items[i:i + s.batch_size] for i in range(0, len(items), s.batch_size)]
    if batches and s.drop_remainder and len(batches[-1]) < s.batch_size:
      batches.pop()
    if s.window > 1:
      order = np.random.default_rng([s.seed, self._window]).permutation(len(batches))
      batches = [batches[i] for i in order]
    self._batches, self._taken = batches, 0

  def __next__(self):
    if self._taken >= len(self._batches):
      self._fill()
      if not self._batches:
        raise StopIteration
    batch = self._batches[self._taken]
    self._taken += 1
    return self._spec.batch_fn(batch)

  def get_state(self):
    return {"parent": self._start, "window": self._window, "taken": self._taken}

  def set_state(self, state):
    self._parent.set_state(state["parent"])
    self._window = state["window"] - 1
    self._batches, self._taken = [], 0
    if state["window"] >= 0:
      self._fill()
      self._taken = state["taken"]
