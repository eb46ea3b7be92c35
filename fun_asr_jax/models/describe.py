"""Parameter counts and logical axes of a model config, from shapes alone (no allocation)."""

import flax.linen as nn
import jax
import numpy as np

from fun_asr_jax.models.fun_asr import ModelConfig, param_shapes


def flat_boxed(boxed) -> dict[str, object]:
  """{'a/b/c': leaf}, keeping `nn.Partitioned` boxes as leaves."""
  flat = {}
  leaves = jax.tree_util.tree_flatten_with_path(
      boxed, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))[0]
  for path, leaf in leaves:
    flat["/".join(str(getattr(k, "key", k)) for k in path)] = leaf
  return flat


def logical_axes(cfg: ModelConfig) -> dict[str, tuple | None]:
  """Logical axis names per parameter path (None where a parameter has none)."""
  return {k: (tuple(v.names) if isinstance(v, nn.Partitioned) else None)
          for k, v in flat_boxed(param_shapes(cfg)).items()}


def _size(leaf) -> int:
  value = leaf.unbox() if isinstance(leaf, nn.meta.AxisMetadata) else leaf
  return int(np.prod(value.shape))


def component_of(path: str) -> str:
  top = path.split("/")[0]
  if top == "llm":
    if "/lora_" in path:
      return "llm_lora"
    return "llm_embed" if path.startswith("llm/embed_tokens") or "lm_head" in path else "llm"
  return top


def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
  """Parameters per component: encoder, adaptor, ctc, llm (+ llm_embed, llm_lora), total."""
  counts: dict[str, int] = {}
  for path, leaf in flat_boxed(param_shapes(cfg)).items():
    comp = component_of(path)
    counts[comp] = counts.get(comp, 0) + _size(leaf)
  counts["llm_total"] = counts.get("llm", 0) + counts.get("llm_embed", 0)
  counts["total"] = sum(v for k, v in counts.items() if k != "llm_total")
  counts["total_without_ctc"] = counts["total"] - counts.get("ctc", 0)
  return counts
