"""Audio encoders: SAN-M (SenseVoiceEncoderSmall, loads Fun-ASR-Nano) and Conformer.

Both map `(features [B, T, F], paddings [B, T])` to `(hidden [B, T', D], paddings [B, T'])`
with zeros at padded frames, and give the same outputs at valid frames however much
padding follows them.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.layers.conformer import ConvSubsampling, conformer_stack, subsampled_length
from fun_asr_jax.layers import conformer as conformer_lib
from fun_asr_jax.layers.linear import LayerNorm
from fun_asr_jax.layers.remat import stack
from fun_asr_jax.layers.sanm import SANMLayer


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Both encoders' geometry; defaults are Fun-ASR-Nano's SAN-M encoder."""
  kind: str = "sanm"  # sanm | conformer
  input_dim: int = 560  # 80 mel x LFR 7 for sanm; 80 for conformer
  hidden: int = 512
  num_heads: int = 4
  mlp_dim: int = 2048
  num_blocks: int = 50  # sanm: encoders0 + (num_blocks - 1) encoders; conformer: layers
  tp_blocks: int = 20  # sanm only
  kernel_size: int = 11  # sanm FSMN kernel; conformer depthwise conv kernel
  sanm_shift: int = 0
  norm_eps: float = 1e-5
  dropout: float = 0.0
  # conformer
  subsampling: int = 4
  subsampling_channels: int = 0  # conv channels; 0 = hidden (narrower is much cheaper)
  position: str = "rotary"
  chunk_size: int = 0  # frames after subsampling; 0 = offline
  left_chunks: int = -1
  causal_conv: bool = False
  block_final_norm: bool = True  # conformer: LayerNorm closing each block (post-LN-like)
  remat: str = "none"
  scan_unroll: int = 1  # layers per scan iteration (layers/remat.scan_layers); 0 = all
  dtype: str = "float32"


def sinusoidal_positions(length: int, depth: int) -> np.ndarray:
  """FunASR's SinusoidalPositionEncoder: positions 1..length, [sin | cos] halves."""
  pos = np.arange(1, length + 1, dtype=np.float32)[:, None]
  inv = np.exp(np.arange(depth // 2, dtype=np.float32) * -(np.log(10000.0) / (depth / 2 - 1)))
  scaled = pos * inv[None]
  return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1)


def output_length(cfg: EncoderConfig, lengths):
  """Encoder frames for `lengths` input frames (host or device)."""
  return lengths if cfg.kind == "sanm" else subsampled_length(lengths, cfg.subsampling)


class SANMEncoder(nn.Module):
  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x, paddings, deterministic=True):  # [B, T, 560] -> [B, T, D]
    c = self.cfg
    dtype = jnp.dtype(c.dtype)
    if x.shape[-1] != c.input_dim:
      raise ValueError(f"SAN-M encoder expects {c.input_dim}-dim features, got {x.shape[-1]}")
    x = x.astype(jnp.float32) * (c.hidden ** 0.5) + sinusoidal_positions(x.shape[1], x.shape[-1])
    x = x.astype(dtype)
    kw = dict(hidden=c.hidden, num_heads=c.num_heads, mlp_dim=c.mlp_dim,
              kernel_size=c.kernel_size, sanm_shift=c.sanm_shift, norm_eps=c.norm_eps,
              dropout=c.dropout, dtype=dtype)
    x = SANMLayer(first=True, name="encoders0", **kw)(x, paddings, deterministic)
    if c.num_blocks > 1:
      x = stack(SANMLayer, c.num_blocks - 1, c.remat, name="encoders", unroll=c.scan_unroll,
                **kw)(x, paddings, deterministic)
    x = LayerNorm(c.norm_eps, dtype=dtype, name="after_norm")(x)
    if c.tp_blocks > 0:
      x = stack(SANMLayer, c.tp_blocks, c.remat, name="tp_encoders", unroll=c.scan_unroll,
                **kw)(x, paddings, deterministic)
      x = LayerNorm(c.norm_eps, dtype=dtype, name="tp_norm")(x)
    return x * (1.0 - paddings)[..., None].astype(x.dtype), paddings


class ConformerEncoder(nn.Module):
  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x, paddings, deterministic=True, cache=None, index=0):
    """`[B, T, F]` -> (`[B, T/s, D]`, paddings).

    Streaming (`cache` from `stream_cache`): x is the feature window of the encoder frames
    index..index+C-1 (`stream_window`), the result `(hidden, paddings, new_cache)`.
    """
    c = self.cfg
    dtype = jnp.dtype(c.dtype)
    x, paddings = ConvSubsampling(c.hidden, c.subsampling, c.subsampling_channels, dtype=dtype,
                                  name="subsampling")(
        x, paddings)
    x = nn.Dropout(c.dropout)(x, deterministic=deterministic)
    x = conformer_stack(c.num_blocks, c.remat, name="layers", unroll=c.scan_unroll,
                        hidden=c.hidden,
                        num_heads=c.num_heads, mlp_dim=c.mlp_dim, conv_kernel=c.kernel_size,
                        position=c.position, chunk_size=c.chunk_size,
                        left_chunks=c.left_chunks, causal_conv=c.causal_conv,
                        norm_eps=c.norm_eps, dropout=c.dropout, final_norm=c.block_final_norm,
                        dtype=dtype)(x, paddings, deterministic, cache, index)
    if cache is not None:
      x, cache = x
    if not c.block_final_norm:  # pre-LN: one LayerNorm on the stack's output
      x = LayerNorm(c.norm_eps, dtype=dtype, name="after_norm")(x)
      x = x * (1.0 - paddings)[..., None].astype(x.dtype)
    return (x, paddings) if cache is None else (x, paddings, cache)


def streamable(cfg: EncoderConfig) -> bool:
  """Whether chunks can be encoded one at a time with caches, exactly as offline."""
  return (cfg.kind == "conformer" and cfg.chunk_size > 0 and cfg.causal_conv
          and cfg.position == "rotary")


def stream_window(cfg: EncoderConfig, index: int, frames: int) -> tuple[int, int]:
  """Feature frames [a, b) that encoder frames index..index+frames-1 are computed from.

  Each stride-2, kernel-3 convolution doubles the span and adds 1 (VALID): an output frame
  of a factor-s stack reads s * j .. s * j + 2 (s - 1) input frames.
  """
  s = cfg.subsampling
  return s * index, s * (index + frames) + s - 1


def stream_cache(cfg: EncoderConfig, batch: int, slots: int) -> dict:
  return conformer_lib.stream_cache(cfg.num_blocks, batch, slots, cfg.hidden, cfg.num_heads,
                                    cfg.kernel_size, jnp.dtype(cfg.dtype))


def build_encoder(cfg: EncoderConfig, name: str = "encoder") -> nn.Module:
  if cfg.kind == "sanm":
    return SANMEncoder(cfg, name=name)
  if cfg.kind == "conformer":
    return ConformerEncoder(cfg, name=name)
  raise ValueError(f"encoder kind {cfg.kind!r}: expected 'sanm' or 'conformer'")
