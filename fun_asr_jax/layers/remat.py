"""Layer-stack helpers: `nn.remat` policies by name and `nn.scan` over identical layers."""

import flax.linen as nn
import jax

_cp = jax.checkpoint_policies
# `layers.linear.matmul` runs its dot inside a custom VJP, which the dot policies cannot see;
# it names its output "linear" so that they still save it.
REMAT_POLICIES = {
    "none": None,
    "full": _cp.nothing_saveable,
    "dots": _cp.save_from_both_policies(_cp.dots_with_no_batch_dims_saveable,
                                        _cp.save_only_these_names("linear")),
    "dots_saveable": _cp.save_from_both_policies(_cp.dots_saveable,
                                                 _cp.save_only_these_names("linear")),
}


def maybe_remat(layer_cls, policy: str, static_argnums=()):
  """Wraps a layer class in `nn.remat` with a named policy ('none' leaves it alone)."""
  if policy not in REMAT_POLICIES:
    raise ValueError(f"remat policy {policy!r}: expected one of {sorted(REMAT_POLICIES)}")
  if policy == "none":
    return layer_cls
  return nn.remat(layer_cls, policy=REMAT_POLICIES[policy], prevent_cse=False,
                  static_argnums=static_argnums)


def scan_layers(layer_cls, num_layers: int, in_axes, unroll: int = 1):
  """`nn.scan` over `num_layers` copies; params stacked on a leading 'layers' axis.

  The carry is the hidden state; `in_axes` gives, per extra argument, 0 (scanned per layer,
  e.g. a KV cache slice) or `nn.broadcast` (shared, e.g. masks). `unroll` layers run per
  loop iteration (0 = the whole stack as straight-line code). The parameter layout is the
  same either way; unrolled, the backward pass reads each layer's saved activations
  directly instead of stacking them into loop buffers and slicing them back (~10 % of the
  small preset's CPU step), at the price of longer compiles (a rolled loop's compile time
  does not grow with depth).
  """
  if unroll < 0:
    raise ValueError(f"scan unroll {unroll}: expected >= 0 (0 = fully unrolled)")
  return nn.scan(
      layer_cls,
      variable_axes={"params": 0},
      split_rngs={"params": True, "dropout": True},
      in_axes=in_axes,
      length=num_layers,
      unroll=unroll or max(num_layers, 1),
      metadata_params={nn.PARTITION_NAME: "layers"},
  )


class _Step(nn.Module):
  """Adapts a `(x, paddings, deterministic) -> x` layer to nn.scan's `(carry, y)` form."""
  layer_cls: type
  layer_kwargs: tuple

  @nn.compact
  def __call__(self, x, paddings, deterministic):
    return self.layer_cls(**dict(self.layer_kwargs), name="layer")(x, paddings, deterministic), None


def stack(layer_cls, num_layers: int, remat: str = "none", name: str | None = None,
          unroll: int = 1, **kwargs):
  """`num_layers` scanned copies of a `(x, paddings, deterministic) -> x` layer.

  Params live under `<name>/layer/...` with a leading 'layers' axis of size num_layers.
  """
  step = maybe_remat(_Step, remat, static_argnums=(3,))
  scanned = scan_layers(step, num_layers, in_axes=(nn.broadcast, nn.broadcast), unroll=unroll)
  module = scanned(layer_cls, tuple(sorted(kwargs.items())), name=name)
  return lambda x, paddings, deterministic=True: module(x, paddings, deterministic)[0]
