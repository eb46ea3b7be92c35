"""Hugging Face Qwen3 (config.json + safetensors) -> our `Qwen3` params.

HF Linear weights are `[out, in]`; ours are `[in, out]` kernels stacked over layers.
"""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.convert import tensors as T
from fun_asr_jax.models.llm import LLMConfig, Qwen3

# (our name under layers/, HF name under model.layers.{i}., transpose)
_LAYER_MAP = (
    ("q_proj/kernel", "self_attn.q_proj.weight", True),
    ("k_proj/kernel", "self_attn.k_proj.weight", True),
    ("v_proj/kernel", "self_attn.v_proj.weight", True),
    ("o_proj/kernel", "self_attn.o_proj.weight", True),
    ("q_norm/scale", "self_attn.q_norm.weight", False),
    ("k_norm/scale", "self_attn.k_norm.weight", False),
    ("gate_proj/kernel", "mlp.gate_proj.weight", True),
    ("up_proj/kernel", "mlp.up_proj.weight", True),
    ("down_proj/kernel", "mlp.down_proj.weight", True),
    ("input_layernorm/scale", "input_layernorm.weight", False),
    ("post_attention_layernorm/scale", "post_attention_layernorm.weight", False),
)


def config_from_hf(hf: dict, **overrides) -> LLMConfig:
  """Our LLMConfig from a Qwen3 config.json dict."""
  if hf.get("attention_bias"):
    raise T.CheckpointMismatchError("Qwen3 config has attention_bias=true; not supported")
  rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
  theta = hf.get("rope_theta", rope.get("rope_theta", 1_000_000.0))
  if rope.get("rope_type", "default") not in ("default", None):
    raise T.CheckpointMismatchError(f"rope_type {rope.get('rope_type')!r} is not supported")
  heads = hf["num_attention_heads"]
  return LLMConfig(
      vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
      num_layers=hf["num_hidden_layers"], num_heads=heads,
      num_kv_heads=hf.get("num_key_value_heads", heads),
      head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
      mlp_dim=hf["intermediate_size"], rope_theta=float(theta),
      rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
      tie_embeddings=bool(hf.get("tie_word_embeddings", False)), **overrides)


def convert_tensors(tensors: dict[str, np.ndarray], cfg: LLMConfig, prefix: str = "model.",
                    lm_head: str = "lm_head.weight") -> dict[str, np.ndarray]:
  """Pops the Qwen3 tensors out of `tensors` and returns them under our flat names."""
  flat = {"embed_tokens/embedding": tensors.pop(prefix + "embed_tokens.weight", None),
          "norm/scale": tensors.pop(prefix + "norm.weight", None)}
  for ours, theirs, transpose in _LAYER_MAP:
    flat["layers/" + ours] = T.stack_layers(tensors, prefix + "layers.{}." + theirs,
                                            cfg.num_layers, transpose)
  head = tensors.pop(lm_head, None)
  if cfg.tie_embeddings:
    emb = flat["embed_tokens/embedding"]
    if head is not None and emb is not None and not np.array_equal(head, emb):
      raise T.CheckpointMismatchError(
          f"tie_word_embeddings=true but {lm_head} differs from the embedding table")
  elif head is not None:
    flat["lm_head/kernel"] = head.T
  return {k: v for k, v in flat.items() if v is not None}


def expected_shapes(cfg: LLMConfig):
  """Shapes of the params `Qwen3(cfg)` creates, without allocating them."""
  model = Qwen3(cfg)
  def init(rng):
    return model.init(rng, jnp.zeros((1, 1, cfg.hidden_size)), jnp.zeros((1, 1), jnp.int32),
                      jnp.zeros((1, 1)))
  return nn.meta.unbox(jax.eval_shape(init, jax.random.key(0))["params"])


def load(folder: str, **overrides) -> tuple[LLMConfig, dict]:
  """Loads a Hugging Face Qwen3 folder -> (LLMConfig, params)."""
  cfg_path = os.path.join(folder, "config.json")
  if not os.path.exists(cfg_path):
    raise FileNotFoundError(f"{folder}: no config.json (expected a Hugging Face Qwen3 folder)")
  with open(cfg_path) as f:
    hf = json.load(f)
  hf = hf.get("text_config", hf)
  cfg = config_from_hf(hf, **overrides)
  tensors = T.read_safetensors_folder(folder)
  flat = convert_tensors(tensors, cfg)
  tensors = {k: v for k, v in tensors.items() if "rotary_emb" not in k}
  if tensors:
    raise T.CheckpointMismatchError(
        f"{folder}: unexpected tensors {sorted(tensors)[:20]} (not part of a Qwen3 LLM)")
  return cfg, T.fit(expected_shapes(cfg), flat, folder)
