"""Pre-norm transformer layer with separate q/k/v projections (adaptor and CTC branch).

This is the block of FunASR's `Transformer` adaptor: LayerNorm -> MHA -> residual,
LayerNorm -> Linear-ReLU-Linear -> residual; names follow its state dict so conversion is
a rename. Keys at padded frames are masked; padded query rows are left to the caller.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from fun_asr_jax.layers import attention
from fun_asr_jax.layers.linear import LayerNorm, Linear


class MultiHeadAttention(nn.Module):
  """Bidirectional (or masked) multi-head attention with biases, q/k/v/out projections."""
  hidden: int
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, rope=None, bias=None, cache=None, index=0):
    """x `[B, T, D]`, mask `[B, T|1, T]` -> `[B, T, D]`.

    With `cache` ({"k", "v": [B, S, H, hd]}, keys after RoPE) the T inputs' keys and values
    are written at slots index..index+T-1, the mask is `[B, T|1, S]` over all slots, and
    the result is `(out, new_cache)`: streaming encoders attend to frames they saw before.
    """
    b, t, _ = x.shape
    hd = self.hidden // self.num_heads
    proj = lambda name: Linear(self.hidden, ("embed", "heads"), dtype=self.dtype, name=name)
    q = proj("linear_q")(x).reshape(b, t, self.num_heads, hd)
    k = proj("linear_k")(x).reshape(b, t, self.num_heads, hd)
    v = proj("linear_v")(x).reshape(b, t, self.num_heads, hd)
    if rope is not None:
      q, k = attention.apply_rope(q, *rope), attention.apply_rope(k, *rope)
    if cache is not None:
      write = lambda buf, new: jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype),
                                                            (0, index, 0, 0))
      cache = {"k": write(cache["k"], k), "v": write(cache["v"], v)}
      k, v = cache["k"], cache["v"]
    out = attention.dot_product_attention(q, k, v, mask, hd**-0.5, bias=bias)
    out = Linear(self.hidden, ("heads", "embed"), dtype=self.dtype, name="linear_out")(
        out.reshape(b, t, self.hidden))
    return out if cache is None else (out, cache)


class FeedForward(nn.Module):
  """Linear -> activation -> Linear (`w_1`, `w_2`)."""
  hidden: int
  mlp_dim: int
  activation: str = "relu"
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic=True):
    h = Linear(self.mlp_dim, ("embed", "mlp"), dtype=self.dtype, name="w_1")(x)
    h = getattr(nn, self.activation)(h)
    h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    return Linear(self.hidden, ("mlp", "embed"), dtype=self.dtype, name="w_2")(h)


class TransformerLayer(nn.Module):
  """x += MHA(LN(x)); x += FFN(LN(x)). Output at padded frames is zeroed."""
  hidden: int
  num_heads: int
  mlp_dim: int
  norm_eps: float = 1e-12
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, paddings, deterministic=True):  # [B, T, D], [B, T]
    mask = attention.padding_mask(paddings)
    h = LayerNorm(self.norm_eps, dtype=self.dtype, name="norm1")(x)
    h = MultiHeadAttention(self.hidden, self.num_heads, self.dtype, name="self_attn")(h, mask)
    x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
    h = LayerNorm(self.norm_eps, dtype=self.dtype, name="norm2")(x)
    h = FeedForward(self.hidden, self.mlp_dim, dropout=self.dropout, dtype=self.dtype,
                    name="feed_forward")(h, deterministic)
    x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
    x = x * (1.0 - paddings)[..., None].astype(x.dtype)
    return nn.with_logical_constraint(x, ("batch", "act_length", "act_embed"))
