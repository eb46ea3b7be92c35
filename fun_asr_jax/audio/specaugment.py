"""SpecAugment on padded feature batches, in-graph.

Frequency masks zero `[f0, f0+w)` bins with w ~ U[0, max_freq_width]; time masks zero
`[t0, t0+w)` frames with w ~ U[0, max_time_ratio * length], placed inside each row's valid
length, so padding never decides where masks go and padded frames stay zero.
"""

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SpecAugmentConfig:
  num_freq_masks: int = 2
  max_freq_width: int = 27
  num_time_masks: int = 2
  max_time_ratio: float = 0.05


def _band_mask(rng, n_masks, max_width, extent, axis_len):
  """`[B, axis_len]` bool, True inside any of `n_masks` random bands within `extent [B]`."""
  b = extent.shape[0]
  k1, k2 = jax.random.split(rng)
  width = jnp.floor(jax.random.uniform(k1, (b, n_masks)) * (max_width[:, None] + 1))
  start = jnp.floor(jax.random.uniform(k2, (b, n_masks)) *
                    jnp.maximum(extent[:, None] - width, 0.0) + 0.0)
  pos = jnp.arange(axis_len)[None, None, :]
  inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
  return jnp.any(inside, axis=1)


def spec_augment(feats, paddings, rng, cfg: SpecAugmentConfig = SpecAugmentConfig()):
  """feats `[B, T, F]`, paddings `[B, T]` -> masked feats (same shape)."""
  b, t, f = feats.shape
  kf, kt = jax.random.split(rng)
  lengths = jnp.sum(1.0 - paddings, axis=-1)
  keep = jnp.ones((b, t, f), bool)
  if cfg.num_freq_masks:
    fmask = _band_mask(kf, cfg.num_freq_masks, jnp.full((b,), float(cfg.max_freq_width)),
                       jnp.full((b,), float(f)), f)
    keep &= ~fmask[:, None, :]
  if cfg.num_time_masks:
    tmask = _band_mask(kt, cfg.num_time_masks, jnp.floor(cfg.max_time_ratio * lengths),
                       lengths, t)
    keep &= ~tmask[:, :, None]
  return jnp.where(keep, feats, 0.0)
