"""Logical axis rules: the one table that maps parameter/activation axis names to the mesh.

Mesh axes are ('data', 'fsdp', 'tensor'). Parameters shard their large "embed"-side axis
over fsdp (ZeRO-3 style) and their head/MLP/vocab axis over tensor; activations shard the
batch over data x fsdp. Every parameter in the model names its axes (tests enforce it), so
changing the parallelism is editing this table, not the model.
"""

import flax.linen as nn
import jax
from jax.sharding import NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    # activations
    ("batch", ("data", "fsdp")),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    # parameters: model width
    ("embed", "fsdp"),
    ("audio_feature", None),
    ("audio_embed", "fsdp"),
    ("conv_flat", "fsdp"),
    # parameters: split for tensor parallelism
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("heads", "tensor"),
    ("qkv", "tensor"),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    # SenseVoice's CTC vocabulary (60515) divides by no tensor size; its kernel is still
    # split over fsdp through its input axis
    ("ctc_vocab", None),
    ("conv_out", "tensor"),
    # small or structural axes: replicated
    ("layers", None),
    ("norm", None),
    ("conv_kernel", None),
    ("conv_in", None),
    ("conv_time", None),
    ("conv_freq", None),
    ("rel_pos", None),
    ("lora_rank", None),
)

KNOWN_AXES = frozenset(name for name, _ in RULES)


def logical_specs(boxed_tree):
  """Boxed params (from init or eval_shape) -> tree of logical PartitionSpecs."""
  return nn.get_partition_spec(boxed_tree)


def mesh_shardings(boxed_tree, mesh: jax.sharding.Mesh, rules=RULES):
  """Boxed params -> tree of NamedShardings on `mesh` under `rules`."""
  logical = logical_specs(boxed_tree)
  physical = nn.logical_to_mesh(logical, rules)
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), physical,
                      is_leaf=lambda x: isinstance(x, PartitionSpec))


def sharding_table(boxed_tree, mesh_sizes: dict[str, int], rules=RULES) -> dict[str, dict]:
  """Per parameter: shape, logical axes, mesh PartitionSpec and per-device shard shape.

  For golden baselines (tests/parallel/golden/): a change of rules or model that moves a
  parameter shows up as a diff. Uneven splits are padded by XLA; the shard shape rounds up.
  """
  out = {}
  leaves = jax.tree_util.tree_flatten_with_path(
      boxed_tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))[0]
  for path, leaf in leaves:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    shape = tuple(leaf.unbox().shape if isinstance(leaf, nn.meta.AxisMetadata) else leaf.shape)
    logical = tuple(leaf.names) if isinstance(leaf, nn.Partitioned) else (None,) * len(shape)
    spec = nn.logical_to_mesh_axes(logical, rules)
    shard = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
      axes = (axes,) if isinstance(axes, str) else (axes or ())
      ways = 1
      for a in axes:
        ways *= mesh_sizes[a]
      shard.append(-(-dim // ways))
    out[name] = {"shape": list(shape), "logical": list(logical),
                 "spec": [list(a) if isinstance(a, tuple) else a for a in spec],
                 "shard_shape": shard}
  return out


def with_rules(fn, mesh: jax.sharding.Mesh, rules=RULES):
  """`fn` traced with `mesh` and the logical rules in force.

  The models mark activations with `nn.with_logical_constraint` (batch over data x fsdp);
  outside a rules context and a mesh those marks are no-ops and XLA infers the layout
  alone, which after repeats and decode loops (GRPO rollouts) can replicate whole
  activations on every chip. Wrap every jitted training function with this.
  """
  def traced(*args, **kwargs):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh), nn.logical_axis_rules(rules):
      return fn(*args, **kwargs)
  return traced
