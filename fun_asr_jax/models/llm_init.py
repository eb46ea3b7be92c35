"""Seeding encoder layers with text-LLM layers (the paper initialises its encoder from
Qwen3 before Best-RQ). Only tensors whose shapes match are copied; the rest keep their
random init, and the report says which."""

import jax
import jax.numpy as jnp
import numpy as np

# encoder-layer leaf (under the scanned 'layer') <- LLM-layer leaf
_CONFORMER = {
    "self_attn/linear_q/kernel": "q_proj/kernel", "self_attn/linear_k/kernel": "k_proj/kernel",
    "self_attn/linear_v/kernel": "v_proj/kernel", "self_attn/linear_out/kernel": "o_proj/kernel",
    "ffn1/w_1/kernel": "up_proj/kernel", "ffn1/w_2/kernel": "down_proj/kernel",
    "ffn2/w_1/kernel": "up_proj/kernel", "ffn2/w_2/kernel": "down_proj/kernel",
}
_SANM = {
    "self_attn/linear_out/kernel": "o_proj/kernel",
    "feed_forward/w_1/kernel": "up_proj/kernel", "feed_forward/w_2/kernel": "down_proj/kernel",
}


def _get(tree, path):
  for p in path.split("/"):
    if not isinstance(tree, dict) or p not in tree:
      return None
    tree = tree[p]
  return tree


def _set(tree, path, value):
  parts = path.split("/")
  for p in parts[:-1]:
    tree = tree[p]
  tree[parts[-1]] = value


def seed_encoder(params: dict, llm_params: dict, kind: str) -> tuple[dict, list[str], list[str]]:
  """Returns (params with copied tensors, copied paths, skipped paths)."""
  llm_layers = llm_params["layers"]
  n_llm = np.shape(llm_layers["q_proj"]["kernel"])[0]
  stacks = ["encoder/layers/layer"] if kind == "conformer" else \
      ["encoder/encoders/layer", "encoder/tp_encoders/layer"]
  mapping = dict(_CONFORMER if kind == "conformer" else _SANM)
  params = jax.tree.map(lambda x: x, params)  # a structural copy we may edit
  copied, skipped = [], []
  for stack in stacks:
    for ours, theirs in mapping.items():
      target = _get(params, f"{stack}/{ours}")
      source = _get(llm_layers, theirs)
      if target is None or source is None:
        continue
      n = target.shape[0]
      src = np.stack([np.asarray(source[i % n_llm]) for i in range(n)])
      if src.shape != tuple(target.shape):
        skipped.append(f"{stack}/{ours}: {src.shape[1:]} vs {tuple(target.shape[1:])}")
        continue
      value = jnp.asarray(src, target.dtype)
      if hasattr(target, "sharding"):
        value = jax.device_put(value, target.sharding)
      _set(params, f"{stack}/{ours}", value)
      copied.append(f"{stack}/{ours}")
    if kind == "sanm":  # fused q|k|v
      target = _get(params, f"{stack}/self_attn/linear_q_k_v/kernel")
      if target is not None:
        qkv = np.concatenate([np.asarray(llm_layers[f"{p}_proj"]["kernel"]) for p in "qkv"], -1)
        src = np.stack([qkv[i % n_llm] for i in range(target.shape[0])])
        if src.shape == tuple(target.shape):
          _set(params, f"{stack}/self_attn/linear_q_k_v/kernel",
               jax.device_put(jnp.asarray(src, target.dtype), target.sharding))
          copied.append(f"{stack}/self_attn/linear_q_k_v/kernel")
        else:
          skipped.append(f"{stack}/self_attn/linear_q_k_v/kernel")
  return params, copied, skipped
