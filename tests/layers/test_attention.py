"""Grouped-query attention against a NumPy reference, for prompts and single decoding steps."""

import jax.numpy as jnp
import numpy as np
import pytest

from fun_asr_jax.layers import attention


def numpy_attention(q, k, v, mask, scale):
  """q `[B, T, H, D]`, k/v `[B, S, K, D]`, mask `[B, T, S]`: head h reads kv head h // (H/K)."""
  b, t, h, d = q.shape
  group = h // k.shape[2]
  out = np.zeros((b, t, h, d))
  for i in range(b):
    for j in range(h):
      logits = q[i, :, j] @ k[i, :, j // group].T * scale  # [T, S]
      logits = np.where(mask[i], logits, -1e30)
      p = np.exp(logits - logits.max(-1, keepdims=True))
      p /= p.sum(-1, keepdims=True)
      out[i, :, j] = p @ v[i, :, j // group]
  return out


@pytest.mark.parametrize("t", [1, 5])  # one query (a decoding step) and a prompt
def test_grouped_query_attention_matches_numpy(t):
  r = np.random.default_rng(0)
  b, s, h, kv, d = 3, 7, 4, 2, 8
  q, k, v = (r.standard_normal(shape) for shape in
             ((b, t, h, d), (b, s, kv, d), (b, s, kv, d)))
  mask = r.random((b, t, s)) < 0.7
  mask[:, :, 0] = True  # every query sees at least one slot
  got = attention.dot_product_attention(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32),
                                        jnp.asarray(v, jnp.float32), jnp.asarray(mask), 0.3)
  np.testing.assert_allclose(np.asarray(got), numpy_attention(q, k, v, mask, 0.3),
                             atol=1e-5, rtol=1e-5)
  if t == 1:  # a mask that broadcasts over rows, as `[1, 1, S]`
    shared = mask[:1]
    got = attention.dot_product_attention(
        jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32), jnp.asarray(v, jnp.float32),
        jnp.asarray(shared), 0.3)
    np.testing.assert_allclose(np.asarray(got),
                               numpy_attention(q, k, v, np.repeat(shared, b, 0), 0.3),
                               atol=1e-5, rtol=1e-5)
