"""SpecAugment respects lengths and padding."""

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.audio.specaugment import SpecAugmentConfig, spec_augment


def test_masks_stay_inside_valid_frames_and_bounds():
  feats = jnp.ones((4, 100, 80))
  pads = np.zeros((4, 100), np.float32)
  pads[1, 40:] = 1
  pads[3, 10:] = 1
  feats = feats * (1 - pads[..., None])
  cfg = SpecAugmentConfig(num_freq_masks=2, max_freq_width=10, num_time_masks=3,
                          max_time_ratio=0.1)
  out = np.asarray(spec_augment(feats, jnp.asarray(pads), jax.random.key(0), cfg))
  assert not out[pads > 0.5].any()
  for i in range(4):
    n = int((pads[i] < 0.5).sum())
    zero_frames = np.all(out[i, :n] == 0, axis=1).sum()
    zero_bins = np.all(out[i, :n] == 0, axis=0).sum()
    assert zero_frames <= 3 * int(0.1 * n)
    assert zero_bins <= 2 * 10
  assert (out == 0).any() and (out == 1).any()


def test_deterministic_per_key_and_differs_across_keys():
  feats = jnp.ones((2, 50, 20))
  pads = jnp.zeros((2, 50))
  a = spec_augment(feats, pads, jax.random.key(1))
  b = spec_augment(feats, pads, jax.random.key(1))
  c = spec_augment(feats, pads, jax.random.key(2))
  assert jnp.array_equal(a, b) and not jnp.array_equal(a, c)
