"""Audio adaptor: frames of the encoder -> embeddings in the LLM's space.

Fun-ASR-Nano's adaptor (FunASR `Transformer`): concatenate `downsample` consecutive frames,
Linear -> ReLU -> Linear to the LLM width, then a few pre-norm transformer layers with
a narrow FFN and full attention under the length mask. The same module with the encoder's
width as output is the CTC branch's decoder.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from fun_asr_jax.layers.linear import Linear
from fun_asr_jax.layers.remat import stack
from fun_asr_jax.layers.transformer import TransformerLayer


@dataclasses.dataclass(frozen=True)
class AdaptorConfig:
  """Defaults are Fun-ASR-Nano's adaptor."""
  downsample: int = 1
  proj_hidden: int = 2048
  hidden: int = 1024  # = LLM width for the adaptor
  num_layers: int = 2
  num_heads: int = 8
  mlp_dim: int = 256
  norm_eps: float = 1e-12
  dropout: float = 0.0
  remat: str = "none"
  scan_unroll: int = 1  # layers per scan iteration (layers/remat.scan_layers); 0 = all
  dtype: str = "float32"


def output_length(cfg: AdaptorConfig, lengths):
  return (lengths - 1) // cfg.downsample + 1 if cfg.downsample > 1 else lengths


class Adaptor(nn.Module):
  cfg: AdaptorConfig
  out_axis: str = "embed"

  @nn.compact
  def __call__(self, x, paddings, deterministic=True):  # [B, T, E] -> [B, T/k, D]
    c = self.cfg
    dtype = jnp.dtype(c.dtype)
    k = c.downsample
    b, t, e = x.shape
    if k > 1:
      chunks = -(-t // k)
      x = jnp.pad(x, ((0, 0), (0, chunks * k - t), (0, 0))).reshape(b, chunks, k * e)
      lengths = jnp.sum(1.0 - paddings, -1).astype(jnp.int32)
      valid = jnp.arange(chunks)[None, :] < output_length(c, lengths)[:, None]
      paddings = 1.0 - valid.astype(jnp.float32)
    h = Linear(c.proj_hidden, ("audio_embed", "mlp"), dtype=dtype, name="linear1")(x)
    h = Linear(c.hidden, ("mlp", self.out_axis), dtype=dtype, name="linear2")(nn.relu(h))
    if c.num_layers > 0:
      h = stack(TransformerLayer, c.num_layers, c.remat, name="blocks", unroll=c.scan_unroll,
                hidden=c.hidden,
                num_heads=c.num_heads, mlp_dim=c.mlp_dim, norm_eps=c.norm_eps,
                dropout=c.dropout, dtype=dtype)(h, paddings, deterministic)
    h = h * (1.0 - paddings)[..., None].astype(h.dtype)
    return h, paddings
