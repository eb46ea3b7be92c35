"""Conformer block and convolutional subsampling for from-scratch, streamable encoders.

    x = x + 1/2 FFN(x)                 (macaron)
    x = x + MHSA(LN(x))                (rotary or clipped relative-position bias; chunk mask)
    x = x + Conv(LN(x))                (pointwise-GLU -> depthwise -> LN -> swish -> pointwise)
    x = x + 1/2 FFN(x); x = LN(x)

The convolution module normalises with LayerNorm, not BatchNorm, so outputs never depend on
batch composition or padding; with `causal=True` the depthwise kernel only looks back, so
chunked streaming sees no future frames through the convolution either.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.layers import attention
from fun_asr_jax.layers.linear import LayerNorm, Linear, matmul, param_with_axes
from fun_asr_jax.layers.remat import maybe_remat, scan_layers
from fun_asr_jax.layers.sanm import depthwise_conv1d
from fun_asr_jax.layers.transformer import FeedForward, MultiHeadAttention


class RelativePositionBias(nn.Module):
  """Learned per-head bias for clipped relative distances: `[1, H, T, T]`."""
  num_heads: int
  max_distance: int = 64

  @nn.compact
  def __call__(self, t: int):
    table = param_with_axes(self, "table", nn.initializers.zeros,
                            (2 * self.max_distance + 1, self.num_heads), ("rel_pos", "heads"),
                            jnp.float32)
    rel = np.clip(np.arange(t)[None, :] - np.arange(t)[:, None], -self.max_distance,
                  self.max_distance) + self.max_distance
    return jnp.transpose(table[rel], (2, 0, 1))[None]


class ConvModule(nn.Module):
  hidden: int
  kernel_size: int = 15
  causal: bool = False
  norm_eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, paddings, cache=None):
    """`[B, T, D]` -> `[B, T, D]`; with `cache` (the previous `[B, K-1, D]` kernel inputs,
    causal only) -> `(out, new_cache)`, so a stream of chunks gets the same outputs."""
    valid = (1.0 - paddings)[..., None].astype(x.dtype)
    h = Linear(2 * self.hidden, ("embed", "mlp"), dtype=self.dtype, name="pointwise_in")(x)
    h = nn.glu(h, axis=-1) * valid  # padded frames must not leak through the kernel
    kernel = param_with_axes(self, "depthwise_kernel", nn.initializers.lecun_normal(),
                             (self.kernel_size, self.hidden), ("conv_kernel", "embed"),
                             jnp.float32)
    left = self.kernel_size - 1 if self.causal else (self.kernel_size - 1) // 2
    if cache is None:
      h = depthwise_conv1d(h, kernel, left)
    else:
      if not self.causal:
        raise ValueError("streaming needs a causal convolution (encoder.causal_conv=True)")
      t = h.shape[1]
      h = jnp.concatenate([cache.astype(h.dtype), h], axis=1)
      cache = h[:, -(self.kernel_size - 1):] if self.kernel_size > 1 else cache
      h = depthwise_conv1d(h, kernel, left)[:, -t:]
    h = LayerNorm(self.norm_eps, dtype=self.dtype, name="norm")(h)
    h = nn.swish(h)
    out = Linear(self.hidden, ("mlp", "embed"), dtype=self.dtype, name="pointwise_out")(h)
    return out if cache is None else (out, cache)


class ConformerLayer(nn.Module):
  hidden: int
  num_heads: int
  mlp_dim: int
  conv_kernel: int = 15
  position: str = "rotary"  # rotary | relative
  rope_theta: float = 10000.0
  max_relative_distance: int = 64
  chunk_size: int = 0  # frames; 0 = full context
  left_chunks: int = -1
  causal_conv: bool = False
  norm_eps: float = 1e-5
  dropout: float = 0.0
  final_norm: bool = True  # the original block's closing LayerNorm; False = pure pre-LN
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, paddings, deterministic=True, cache=None, index=0):
    """`[B, T, D]` -> `[B, T, D]`.

    Streaming: with `cache` (`stream_cache`'s per-layer dict) the T frames are the
    stream's frames index..index+T-1 (index a multiple of chunk_size); they attend to the
    cached frames under the same chunk mask and the result is `(x, new_cache)`.
    """
    drop = lambda h: nn.Dropout(self.dropout)(h, deterministic=deterministic)
    ffn = lambda name: FeedForward(self.hidden, self.mlp_dim, "swish", self.dropout, self.dtype,
                                   name=name)
    ln = lambda name: LayerNorm(self.norm_eps, dtype=self.dtype, name=name)
    x = x + 0.5 * drop(ffn("ffn1")(ln("norm_ffn1")(x), deterministic))
    t = x.shape[1]
    if cache is None:
      mask = attention.chunk_mask(paddings, self.chunk_size, self.left_chunks)
      pos = jnp.broadcast_to(jnp.arange(t), paddings.shape)
    else:
      if self.position != "rotary" or self.chunk_size <= 0:
        raise ValueError("streaming needs a chunked (encoder.chunk_size > 0) rotary conformer")
      mask = attention.chunk_mask(paddings, self.chunk_size, self.left_chunks,
                                  slots=cache["k"].shape[1], index=index)
      pos = jnp.broadcast_to(index + jnp.arange(t), paddings.shape)
    rope = bias = None
    if self.position == "rotary":
      rope = attention.rope_tables(pos, self.hidden // self.num_heads, self.rope_theta)
    elif self.position == "relative":
      bias = RelativePositionBias(self.num_heads, self.max_relative_distance, name="rel_bias")(t)
    else:
      raise ValueError(f"conformer position={self.position!r}: expected rotary or relative")
    mha = MultiHeadAttention(self.hidden, self.num_heads, self.dtype, name="self_attn")
    conv = ConvModule(self.hidden, self.conv_kernel, self.causal_conv, self.norm_eps,
                      self.dtype, name="conv")
    if cache is None:
      x = x + drop(mha(ln("norm_mha")(x), mask, rope=rope, bias=bias))
      x = x + drop(conv(ln("norm_conv")(x), paddings))
    else:
      h, kv = mha(ln("norm_mha")(x), mask, rope=rope, cache=cache, index=index)
      x = x + drop(h)
      h, conv_cache = conv(ln("norm_conv")(x), paddings, cache=cache["conv"])
      x = x + drop(h)
      cache = dict(kv, conv=conv_cache)
    x = x + 0.5 * drop(ffn("ffn2")(ln("norm_ffn2")(x), deterministic))
    if self.final_norm:
      x = ln("norm_out")(x)
    x = x * (1.0 - paddings)[..., None].astype(x.dtype)
    x = nn.with_logical_constraint(x, ("batch", "act_length", "act_embed"))
    return x if cache is None else (x, cache)


def stream_cache(num_layers: int, batch: int, slots: int, hidden: int, num_heads: int,
                 kernel_size: int, dtype=jnp.float32) -> dict:
  """An empty streaming cache for a conformer stack: keys/values of up to `slots` frames
  `[L, B, S, H, hd]` and the last K-1 convolution inputs `[L, B, K-1, D]` per layer."""
  hd = hidden // num_heads
  kv = jnp.zeros((num_layers, batch, slots, num_heads, hd), dtype)
  return {"k": kv, "v": kv, "conv": jnp.zeros((num_layers, batch, max(kernel_size - 1, 1),
                                                hidden), dtype)}


class _Step(nn.Module):
  """One scanned conformer layer in nn.scan's `(carry, per-layer cache)` form."""
  layer_kwargs: tuple

  @nn.compact
  def __call__(self, x, cache, paddings, index, deterministic):
    out = ConformerLayer(**dict(self.layer_kwargs), name="layer")(x, paddings, deterministic,
                                                                   cache, index)
    return out if cache is not None else (out, None)


def conformer_stack(num_layers: int, remat: str = "none", name: str | None = None,
                    unroll: int = 1, **kwargs):
  """`num_layers` scanned ConformerLayers (params `<name>/layer/...`, leading 'layers' axis),
  called as `(x, paddings, deterministic=True, cache=None, index=0)`; with a cache from
  `stream_cache` it returns `(x, new_cache)`."""
  step = maybe_remat(_Step, remat, static_argnums=(5,))
  scanned = scan_layers(step, num_layers, in_axes=(0, nn.broadcast, nn.broadcast,
                                                   nn.broadcast), unroll=unroll)
  module = scanned(tuple(sorted(kwargs.items())), name=name)

  def run(x, paddings, deterministic=True, cache=None, index=0):
    x, new_cache = module(x, cache, paddings, index, deterministic)
    return x if cache is None else (x, new_cache)
  return run


def subsampled_length(lengths, factor: int):
  """Frames after `log2(factor)` stride-2, kernel-3 VALID convolutions."""
  xp = jnp if isinstance(lengths, jax.Array) else np  # host ints stay concrete
  for _ in range(int(np.log2(factor))):
    lengths = xp.maximum((lengths - 1) // 2, 0)
  return lengths


class StridedConv3x3(nn.Module):
  """A 3x3, stride-2, VALID Conv2d as one matmul over the nine gathered taps.

  The parameters are `nn.Conv(features, (3, 3), strides=2, padding="VALID")`'s (same
  names, shapes and initialisation), so checkpoints do not change. Why not nn.Conv: on CPU
  XLA ran this convolution and its two transposes at a fifth of the matmul rate, a third of
  the tiny preset's step; as a matmul the gradients are matmuls too. Only the conformer
  encoders (tiny, small) subsample this way; SAN-M (nano, full) takes LFR frames.
  """
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):  # [B, T, F, C] -> [B, (T-1)//2, (F-1)//2, features]
    b, t, f, c = x.shape
    kernel = param_with_axes(self, "kernel", nn.initializers.lecun_normal(),
                             (3, 3, c, self.features),
                             ("conv_time", "conv_freq", "conv_in", "conv_out"), jnp.float32)
    bias = param_with_axes(self, "bias", nn.initializers.zeros, (self.features,),
                           ("conv_out",), jnp.float32)
    t_out, f_out = max((t - 1) // 2, 0), max((f - 1) // 2, 0)
    taps = [x[:, i:i + max(2 * t_out - 1, 0):2, j:j + max(2 * f_out - 1, 0):2]  # [B, T', F', C]
            for i in range(3) for j in range(3)]
    patches = jnp.concatenate(taps, axis=-1)  # [B, T', F', 9C], (i, j, c) order as the kernel
    y = matmul(patches, kernel.reshape(9 * c, self.features), self.dtype)
    return y + bias.astype(self.dtype)


class ConvSubsampling(nn.Module):
  """Stacked 3x3 stride-2 Conv2d + ReLU over (time, mel), then Linear to the model width.

  Each output frame only sees valid input frames (VALID padding; lengths follow
  `subsampled_length`), and invalid frames are zeroed between convolutions.
  """
  hidden: int
  factor: int = 4  # 4 or 8
  channels: int = 0  # 0 -> hidden
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, paddings):  # [B, T, F] -> [B, T', D]
    if self.factor not in (2, 4, 8):
      raise ValueError(f"conformer subsampling factor {self.factor}: expected 2, 4 or 8")
    ch = self.channels or self.hidden
    lengths = jnp.sum(1.0 - paddings, -1).astype(jnp.int32)
    h = x[..., None].astype(self.dtype)
    for i in range(int(np.log2(self.factor))):
      h = StridedConv3x3(ch, dtype=self.dtype, name=f"conv{i}")(h)
      h = nn.relu(h)
      lengths = subsampled_length(lengths, 2)
      valid = jnp.arange(h.shape[1])[None, :] < lengths[:, None]
      h = h * valid[:, :, None, None]
    b, t, f, c = h.shape
    out = Linear(self.hidden, ("conv_flat", "embed"), dtype=self.dtype, name="out")(
        h.reshape(b, t, f * c))
    new_paddings = 1.0 - valid.astype(jnp.float32)
    return out * valid[..., None], new_paddings
