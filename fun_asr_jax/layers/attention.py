"""Attention primitives shared by every block: masks, RoPE and grouped-query attention.

Masks are boolean `[B, T_q, T_k]` (True = may attend). Padded queries still get finite
outputs (they attend uniformly), so nothing turns into NaN; callers zero them with paddings.
"""

import jax
import jax.numpy as jnp
import numpy as np

_NEG_INF = -1e30


def padding_mask(paddings):
  """Bidirectional mask from key paddings: `[B, T]` -> `[B, 1, T]` (broadcasts over queries)."""
  return (paddings < 0.5)[:, None, :]


def causal_mask(paddings):
  """Causal mask with key padding: `[B, T]` -> `[B, T, T]`."""
  t = paddings.shape[1]
  causal = jnp.tril(jnp.ones((t, t), bool))
  return causal[None] & (paddings < 0.5)[:, None, :]


def chunk_mask(paddings, chunk_size: int, left_chunks: int = -1, slots: int | None = None,
               index=0):
  """Streaming mask: frame i sees its own chunk and `left_chunks` chunks before (-1 = all).

  `[B, T]` -> `[B, T, T]`; with chunk_size <= 0 it is the full bidirectional mask. With
  `slots`, the T frames are a stream's frames index..index+T-1 attending to a cache of
  `slots` frames: `[B, T, S]`, the cached frames before `index` all valid (a stream is
  padded only at its end).
  """
  t = paddings.shape[1]
  if chunk_size <= 0:
    return jnp.broadcast_to(padding_mask(paddings), (paddings.shape[0], t, t))
  if slots is None:
    slots, valid = t, paddings < 0.5
  else:
    fresh = jax.lax.dynamic_update_slice(jnp.zeros((paddings.shape[0], slots), bool),
                                         paddings < 0.5, (0, index))
    valid = (jnp.arange(slots)[None, :] < index) | fresh  # [B, S]
  chunk_q = (index + jnp.arange(t)) // chunk_size  # [T]
  chunk_k = jnp.arange(slots) // chunk_size  # [S]
  allowed = chunk_k[None, :] <= chunk_q[:, None]
  if left_chunks >= 0:
    allowed &= chunk_k[None, :] >= chunk_q[:, None] - left_chunks
  return allowed[None] & valid[:, None, :]


def rope_tables(positions, head_dim: int, theta: float):
  """cos/sin for rotate-half RoPE: positions `[B, T]` -> two `[B, T, head_dim]` arrays."""
  inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, hd/2]
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x, cos, sin):
  """x `[B, T, H, hd]`, cos/sin `[B, T, hd]`; rotate-half convention (Llama/Qwen)."""
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  out = x.astype(jnp.float32) * cos[:, :, None] + rotated.astype(jnp.float32) * sin[:, :, None]
  return out.astype(x.dtype)


def dot_product_attention(q, k, v, mask, scale: float, bias=None):
  """Grouped-query attention with fp32 softmax.

  Args:
    q: `[B, T, H, D]`; k, v: `[B, S, Hkv, D]` with H a multiple of Hkv.
    mask: bool, broadcastable to `[B, T, S]`.
    scale: multiplier of the logits.
    bias: optional additive logits `[B or 1, H, T, S]` (relative positions).

  Returns:
    `[B, T, H, D]`.
  """
  b, t, h, d = q.shape
  hkv = k.shape[2]
  q = q.reshape(b, t, hkv, h // hkv, d)
  if t == 1 and bias is None:
    return _one_query_attention(q, k, v, mask, scale).reshape(b, t, h, d).astype(v.dtype)
  logits = jnp.einsum("btkgd,bskd->bkgts", q, k, preferred_element_type=jnp.float32) * scale
  if bias is not None:
    logits = logits + bias.reshape(bias.shape[0], hkv, h // hkv, t, -1)
  logits = jnp.where(mask[:, None, None], logits, _NEG_INF)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("bkgts,bskd->btkgd", probs, v, preferred_element_type=jnp.float32)
  return out.reshape(b, t, h, d).astype(v.dtype)


def _one_query_attention(q, k, v, mask, scale: float):
  """A decoding step's attention (`T = 1`) as multiply-and-sum over the cache as stored.

  As a batched matmul, XLA on CPU transposes the whole `[B, S, Hkv, D]` cache into the
  matmul's layout once per layer and token, for products of a handful of rows; reading
  it in place costs one pass (bench/RESULTS.md, issue 8). q: `[B, 1, Hkv, G, D]`.
  """
  q32 = q[:, 0].astype(jnp.float32)  # [B, K, G, D]
  logits = jnp.sum(q32[:, None] * k.astype(jnp.float32)[:, :, :, None], axis=-1)  # [B,S,K,G]
  keep = jnp.broadcast_to(mask, (k.shape[0], 1, k.shape[1]))[:, 0, :, None, None]
  logits = jnp.where(keep, logits * scale, _NEG_INF)
  probs = jax.nn.softmax(logits, axis=1).astype(v.dtype)
  return jnp.sum(probs[..., None].astype(jnp.float32)
                 * v.astype(jnp.float32)[:, :, :, None], axis=1)  # [B, K, G, D]
