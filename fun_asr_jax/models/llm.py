"""Qwen3-style decoder: GQA, RoPE, q/k RMSNorm, SwiGLU, KV cache, optional LoRA.

Layers run under `nn.scan` (params stacked on a 'layers' axis) so compile time stays flat
from 2 to 80 layers. The KV cache is a plain pytree threaded through the scan:

    cache = {"k": [L, B, S, Hkv, hd], "v": [L, B, S, Hkv, hd], "valid": [B, S] bool}

Decoders use the unrolled layout instead (`scan_layers=False`, `unstack_layers`): one
module and one cache buffer per layer ("k", "v": tuples of L `[B, S, Hkv, hd]`).

New keys go to slots `index .. index+T-1`; a query at slot q attends to valid slots <= q.
Rows of a batch may hold prompts of different lengths (right-padded): their padded slots
stay invalid, and each row carries its own RoPE positions.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from fun_asr_jax.layers import attention
from fun_asr_jax.layers.linear import Linear, RMSNorm, out_major_is_faster, out_major_kernels
from fun_asr_jax.layers.remat import maybe_remat, scan_layers


@dataclasses.dataclass(frozen=True)
class LLMConfig:
  """Qwen3 geometry; the defaults are Qwen3-0.6B."""
  vocab_size: int = 151936
  hidden_size: int = 1024
  num_layers: int = 28
  num_heads: int = 16
  num_kv_heads: int = 8
  head_dim: int = 128
  mlp_dim: int = 3072
  rope_theta: float = 1_000_000.0
  rms_norm_eps: float = 1e-6
  tie_embeddings: bool = True
  lora_rank: int = 0
  lora_alpha: float = 32.0
  lora_dropout: float = 0.0
  lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
  dtype: str = "float32"
  remat: str = "none"
  # True: one nn.scan over the layers, weights stacked [L, ...] (training, checkpoints).
  # False: one module per layer (`layers_0` ...) and a KV cache per layer, the decoding
  # layout (`unstack_layers`): XLA copies a layer's weights out of a stacked array each time
  # it uses them, and a decoder uses every layer once per token.
  scan_layers: bool = True
  scan_unroll: int = 1  # layers per scan iteration (layers/remat.scan_layers); 0 = all
  # True: Linear weights stored `[out, in]` (`kernel_t`), an option of the decoding layout:
  # a decoder's matmuls have few rows, which some CPUs run faster that way.
  out_major: bool = False


def positions(paddings):
  """RoPE positions of right- or left-padded rows: `[B, T]` paddings -> `[B, T]` int32, 0 at
  the first real token (padding before it also 0)."""
  return jnp.maximum(jnp.cumsum(1.0 - paddings, axis=1) - 1, 0).astype(jnp.int32)


def last_index(paddings):
  """Index of each row's last real token: `[B, T]` paddings -> `[B]` int32 (0 if none).
  Not the real-token count minus one when the row has holes (masked audio slots)."""
  t = paddings.shape[1]
  return jnp.max(jnp.where(paddings < 0.5, jnp.arange(t)[None], 0), axis=1).astype(jnp.int32)


def init_cache(cfg: LLMConfig, batch: int, max_len: int, dtype=jnp.float32):
  """An empty KV cache for `batch` rows of up to `max_len` tokens."""
  valid = jnp.zeros((batch, max_len), bool)
  if not cfg.scan_layers:  # a tuple of per-layer [B, S, Hkv, hd] buffers
    shape = (batch, max_len, cfg.num_kv_heads, cfg.head_dim)
    zeros = lambda: tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers))
    return {"k": zeros(), "v": zeros(), "valid": valid}
  shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype), "valid": valid}


def unstack_layers(params, num_layers: int):
  """Qwen3 params with stacked `layers` -> per-layer `layers_0` ... (`scan_layers=False`).

  Inside a jitted decoder this slices each weight once per call instead of once per token.
  Boxed (logically partitioned) params are unboxed first: a slice has one axis fewer than
  the names the box carries.
  """
  params = nn.meta.unbox(params)
  out = {k: v for k, v in params.items() if k != "layers"}
  for i in range(num_layers):
    out[f"layers_{i}"] = jax.tree.map(lambda w, i=i: w[i], params["layers"])
  return out


def decoding_layout(cfg: LLMConfig, params, out_major: bool | None = None):
  """(cfg, params) -> the layout decoders use: layers unrolled (`scan_layers=False`), and
  weights output-major (`out_major=True`) where that is faster; a no-op on it.

  `out_major=None` measures which kernel layout this backend runs faster for a 16-row
  product of the MLP's shape (`out_major_is_faster`); True or False pins it.
  """
  if not cfg.scan_layers:
    return cfg, params
  if out_major is None:
    out_major = out_major_is_faster(16, cfg.hidden_size, cfg.mlp_dim)
  params = unstack_layers(params, cfg.num_layers)
  if out_major:
    params = out_major_kernels(params)
  return dataclasses.replace(cfg, scan_layers=False, out_major=out_major), params


class Qwen3Layer(nn.Module):
  cfg: LLMConfig

  def _linear(self, features, axes, name):
    c = self.cfg
    rank = c.lora_rank if name in c.lora_targets else 0
    return Linear(features, axes, use_bias=False, out_major=c.out_major, lora_rank=rank,
                  lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                  dtype=jnp.dtype(c.dtype), name=name)

  @nn.compact
  def __call__(self, x, layer_cache, cos, sin, mask, index, deterministic):
    # x: [B, T, D]; layer_cache: None or {"k","v": [B, S, Hkv, hd]}; mask: [B, T, S or T]
    c = self.cfg
    dtype = jnp.dtype(c.dtype)
    b, t, _ = x.shape
    h = RMSNorm(c.rms_norm_eps, dtype=dtype, name="input_layernorm")(x)
    q = self._linear(c.num_heads * c.head_dim, ("embed", "q_heads"), "q_proj")(h, deterministic)
    k = self._linear(c.num_kv_heads * c.head_dim, ("embed", "kv_heads"), "k_proj")(h, deterministic)
    v = self._linear(c.num_kv_heads * c.head_dim, ("embed", "kv_heads"), "v_proj")(h, deterministic)
    q = RMSNorm(c.rms_norm_eps, dtype=dtype, name="q_norm")(q.reshape(b, t, c.num_heads, -1))
    k = RMSNorm(c.rms_norm_eps, dtype=dtype, name="k_norm")(k.reshape(b, t, c.num_kv_heads, -1))
    v = v.reshape(b, t, c.num_kv_heads, c.head_dim)
    q = attention.apply_rope(q, cos, sin)
    k = attention.apply_rope(k, cos, sin)
    new_cache = None
    if layer_cache is not None:
      ck = jax.lax.dynamic_update_slice(layer_cache["k"], k.astype(layer_cache["k"].dtype),
                                        (0, index, 0, 0))
      cv = jax.lax.dynamic_update_slice(layer_cache["v"], v.astype(layer_cache["v"].dtype),
                                        (0, index, 0, 0))
      new_cache = {"k": ck, "v": cv}
      k, v = ck.astype(dtype), cv.astype(dtype)
    out = attention.dot_product_attention(q, k, v, mask, c.head_dim**-0.5)
    out = self._linear(c.hidden_size, ("q_heads", "embed"), "o_proj")(
        out.reshape(b, t, -1), deterministic)
    x = x + out
    x = nn.with_logical_constraint(x, ("batch", "act_length", "act_embed"))
    h = RMSNorm(c.rms_norm_eps, dtype=dtype, name="post_attention_layernorm")(x)
    gate = self._linear(c.mlp_dim, ("embed", "mlp"), "gate_proj")(h, deterministic)
    up = self._linear(c.mlp_dim, ("embed", "mlp"), "up_proj")(h, deterministic)
    x = x + self._linear(c.hidden_size, ("mlp", "embed"), "down_proj")(
        nn.silu(gate) * up, deterministic)
    x = nn.with_logical_constraint(x, ("batch", "act_length", "act_embed"))
    return x, new_cache


class Qwen3(nn.Module):
  """Decoder over token ids or ready embeddings (audio spliced in by the caller)."""
  cfg: LLMConfig

  def setup(self):
    c = self.cfg
    self.embed_tokens = nn.Embed(
        c.vocab_size, c.hidden_size,
        embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                    ("vocab", "embed")),
        name="embed_tokens")
    layer = maybe_remat(Qwen3Layer, c.remat, static_argnums=(7,))
    if c.scan_layers:
      self.layers = scan_layers(layer, c.num_layers,
                                in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast,
                                         nn.broadcast, nn.broadcast),
                                unroll=c.scan_unroll)(c, name="layers")
    else:
      self.layers = [layer(c) for _ in range(c.num_layers)]  # layers_0, layers_1, ...
    self.norm = RMSNorm(c.rms_norm_eps, dtype=jnp.dtype(c.dtype), name="norm")
    if not c.tie_embeddings:
      self.lm_head = Linear(c.vocab_size, ("embed", "vocab"), use_bias=False,
                            out_major=c.out_major, dtype=jnp.dtype(c.dtype), name="lm_head")

  def embed(self, tokens):  # [B, T] -> [B, T, D]
    return self.embed_tokens(tokens).astype(jnp.dtype(self.cfg.dtype))

  def logits(self, hidden):  # [B, T, D] -> [B, T, V] in fp32
    if self.cfg.tie_embeddings:
      table = self.embed_tokens.embedding
      return jnp.einsum("btd,vd->btv", hidden, table.astype(hidden.dtype),
                        preferred_element_type=jnp.float32)
    return self.lm_head(hidden).astype(jnp.float32)

  def __call__(self, embeds, positions, paddings, cache=None, index=0, deterministic=True,
               return_hidden=False, last=None):
    """Runs the decoder.

    Args:
      embeds: `[B, T, D]` input embeddings.
      positions: `[B, T]` RoPE positions.
      paddings: `[B, T]`, 1.0 at padded inputs (never attended to).
      cache: optional KV cache (see module doc); the T inputs fill slots index..index+T-1.
      index: int32 scalar, first cache slot written.
      last: optional `[B]` int32, an index into the T inputs (not a cache slot): logits (or
        hidden states) at that position only, `[B, 1, .]` (a prefill needs one row of a
        150k-wide head, not one per prompt token).

    Returns:
      `(logits [B, T, V] fp32, new_cache or None)`, or hidden states instead of logits.
    """
    c = self.cfg
    if self.is_initializing():  # the table must exist even when only embeddings come in
      self.embed_tokens(jnp.zeros((1, 1), jnp.int32))
    cos, sin = attention.rope_tables(positions, c.head_dim, c.rope_theta)
    if cache is None:
      mask = attention.causal_mask(paddings)
      layer_caches = None
    else:
      t = embeds.shape[1]
      valid = jax.lax.dynamic_update_slice(cache["valid"], paddings < 0.5, (0, index))
      slots = jnp.arange(valid.shape[1])
      mask = valid[:, None, :] & (slots[None, None, :] <= index + jnp.arange(t)[None, :, None])
      layer_caches = {"k": cache["k"], "v": cache["v"]}
    x = nn.with_logical_constraint(embeds, ("batch", "act_length", "act_embed"))
    if c.scan_layers:
      x, new_layer_caches = self.layers(x, layer_caches, cos, sin, mask, index, deterministic)
    else:
      new = []
      for i, layer in enumerate(self.layers):
        lc = None if cache is None else {"k": cache["k"][i], "v": cache["v"][i]}
        x, nc = layer(x, lc, cos, sin, mask, index, deterministic)
        new.append(nc)
      new_layer_caches = None if cache is None else {
          "k": tuple(n["k"] for n in new), "v": tuple(n["v"] for n in new)}
    if last is not None:
      x = jnp.take_along_axis(x, last[:, None, None], axis=1)
    x = self.norm(x)
    new_cache = None if cache is None else dict(new_layer_caches, valid=valid)
    return (x if return_hidden else self.logits(x)), new_cache
