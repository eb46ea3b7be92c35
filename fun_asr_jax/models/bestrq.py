"""Best-RQ: self-supervised encoder pretraining with a frozen random-projection quantizer.

Targets come from the input features: stack the frames one encoder frame covers, normalise,
project with a fixed random matrix, and take the nearest of K fixed random unit vectors in
each of C codebooks. Spans of input frames are replaced by noise, and the encoder predicts
the targets of the masked frames through a linear head. The quantizer is a deterministic
function of a constant key, so it is frozen by construction and never stored.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from fun_asr_jax.layers.linear import Linear

_QUANTIZER_KEY = 20250929


@dataclasses.dataclass(frozen=True)
class BestRQConfig:
  num_codebooks: int = 4
  codebook_size: int = 256
  codebook_dim: int = 16
  mask_prob: float = 0.02  # chance that a span starts at an encoder frame
  mask_frames: int = 4  # span length in encoder frames


class BestRQHead(nn.Module):
  cfg: BestRQConfig

  @nn.compact
  def __call__(self, enc):  # [B, T, D] -> [B, T, C, K]
    c = self.cfg
    logits = Linear(c.num_codebooks * c.codebook_size, ("embed", "mlp"), dtype=jnp.float32,
                    name="head")(enc.astype(jnp.float32))
    return logits.reshape(*enc.shape[:2], c.num_codebooks, c.codebook_size)


def _normalize(x, axis=-1, eps=1e-5):
  mean = x.mean(axis, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(jnp.square(x - mean).mean(axis, keepdims=True) + eps)


def quantize(stacked, cfg: BestRQConfig):
  """`[B, T, S*F]` stacked features -> codes `[B, T, C]` (int32)."""
  k1, k2 = jax.random.split(jax.random.key(_QUANTIZER_KEY))
  dim = stacked.shape[-1]
  proj = jax.random.normal(k1, (dim, cfg.codebook_dim)) * (2.0 / (dim + cfg.codebook_dim)) ** 0.5
  books = jax.random.normal(k2, (cfg.num_codebooks, cfg.codebook_size, cfg.codebook_dim))
  books = books / jnp.linalg.norm(books, axis=-1, keepdims=True)
  z = jnp.einsum("btf,fd->btd", _normalize(stacked), proj, precision="highest")
  z = z / (jnp.linalg.norm(z, axis=-1, keepdims=True) + 1e-6)
  dist = jnp.einsum("btd,ckd->btck", z, books, precision="highest")  # cosine similarity
  return jnp.argmax(dist, axis=-1).astype(jnp.int32)


def span_mask(rng, enc_paddings, cfg: BestRQConfig):
  """`[B, T]` bool: spans of `mask_frames` encoder frames starting with prob mask_prob."""
  b, t = enc_paddings.shape
  starts = jax.random.bernoulli(rng, cfg.mask_prob, (b, t))
  covered = jnp.zeros((b, t), bool)
  for offset in range(cfg.mask_frames):
    covered = covered | jnp.pad(starts, ((0, 0), (offset, 0)))[:, :t]
  return covered & (enc_paddings < 0.5)


def stack_frames(feats, stride: int, num_out: int):
  """`[B, T, F]` -> `[B, num_out, stride*F]`: the input frames each encoder frame covers."""
  b, t, f = feats.shape
  need = num_out * stride
  x = jnp.pad(feats, ((0, 0), (0, max(0, need - t)), (0, 0)))[:, :need]
  return x.reshape(b, num_out, stride * f)


def mask_inputs(feats, mask, stride: int, rng):
  """Replaces the input frames under masked encoder frames by N(0, 0.1) noise."""
  frame_mask = jnp.repeat(mask, stride, axis=1)
  t = feats.shape[1]
  frame_mask = jnp.pad(frame_mask, ((0, 0), (0, max(0, t - frame_mask.shape[1]))))[:, :t]
  noise = 0.1 * jax.random.normal(rng, feats.shape, feats.dtype)
  return jnp.where(frame_mask[..., None], noise, feats)


def loss(logits, codes, mask):
  """Mean cross-entropy over masked frames and codebooks; also accuracy."""
  logp = jax.nn.log_softmax(logits, -1)
  nll = -jnp.take_along_axis(logp, codes[..., None], -1)[..., 0]  # [B, T, C]
  w = mask[..., None].astype(jnp.float32)
  denom = jnp.maximum(w.sum() * codes.shape[-1] / codes.shape[-1], 1.0) * codes.shape[-1]
  acc = (jnp.argmax(logits, -1) == codes).astype(jnp.float32)
  return (nll * w).sum() / denom, (acc * w).sum() / denom
