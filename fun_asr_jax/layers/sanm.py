"""SAN-M block (SenseVoiceEncoderSmall): self-attention plus an FSMN memory on the values.

    y = LN1(x); q, k, v = split(Linear(y) -> 3d)
    memory = mask * (v_m + DepthwiseConv_k(v_m)),  v_m = mask * v     (kernel 11, zero pad 5/5)
    a = Linear_out(MHA(q, k, v)) + memory
    x = x + a  (no residual in the first block, whose input is the 560-dim LFR feature)
    x = x + FFN(LN2(x))
"""

import flax.linen as nn
import jax.numpy as jnp

from fun_asr_jax.layers import attention
from fun_asr_jax.layers.linear import LayerNorm, Linear, param_with_axes
from fun_asr_jax.layers.transformer import FeedForward


def depthwise_conv1d(x, kernel, left: int):
  """Per-channel 1-D convolution with zero padding, as shifted sums.

  x: `[B, T, D]`; kernel: `[K, D]`; output[t] = sum_j kernel[j] * x[t + j - left].
  """
  k = kernel.shape[0]
  t = x.shape[1]
  xp = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
  out = jnp.zeros_like(x)
  for j in range(k):
    out = out + xp[:, j: j + t] * kernel[j].astype(x.dtype)
  return out


class SANMAttention(nn.Module):
  hidden: int
  num_heads: int
  kernel_size: int = 11
  sanm_shift: int = 0
  in_axis: str = "embed"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, paddings):  # [B, T, Din], [B, T] -> [B, T, D]
    b, t, _ = x.shape
    hd = self.hidden // self.num_heads
    qkv = Linear(3 * self.hidden, (self.in_axis, "qkv"), dtype=self.dtype,
                 name="linear_q_k_v")(x)
    q, k, v = jnp.split(qkv, 3, axis=-1)
    valid = (1.0 - paddings)[..., None].astype(x.dtype)
    kernel = param_with_axes(self, "fsmn_kernel", nn.initializers.lecun_normal(),
                             (self.kernel_size, self.hidden), ("conv_kernel", "embed"),
                             jnp.float32)
    v_m = v * valid
    left = (self.kernel_size - 1) // 2 + self.sanm_shift
    memory = (depthwise_conv1d(v_m, kernel, left) + v_m) * valid
    out = attention.dot_product_attention(
        q.reshape(b, t, self.num_heads, hd), k.reshape(b, t, self.num_heads, hd),
        v.reshape(b, t, self.num_heads, hd), attention.padding_mask(paddings), hd**-0.5)
    out = Linear(self.hidden, ("heads", "embed"), dtype=self.dtype, name="linear_out")(
        out.reshape(b, t, self.hidden))
    return out + memory


class SANMLayer(nn.Module):
  hidden: int
  num_heads: int
  mlp_dim: int
  kernel_size: int = 11
  sanm_shift: int = 0
  norm_eps: float = 1e-5
  dropout: float = 0.0
  first: bool = False  # input is the LFR feature: no attention residual
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, paddings, deterministic=True):
    in_axis = "audio_feature" if self.first else "embed"
    h = LayerNorm(self.norm_eps, axis_name="audio_feature" if self.first else "norm",
                  dtype=self.dtype, name="norm1")(x)
    h = SANMAttention(self.hidden, self.num_heads, self.kernel_size, self.sanm_shift, in_axis,
                      self.dtype, name="self_attn")(h, paddings)
    h = nn.Dropout(self.dropout)(h, deterministic=deterministic)
    x = h if self.first else x + h
    h = LayerNorm(self.norm_eps, dtype=self.dtype, name="norm2")(x)
    h = FeedForward(self.hidden, self.mlp_dim, dropout=self.dropout, dtype=self.dtype,
                    name="feed_forward")(h, deterministic)
    x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "act_length", "act_embed"))
