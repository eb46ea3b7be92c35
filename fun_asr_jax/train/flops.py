"""Matmul FLOPs of a JAX function, counted on its jaxpr.

XLA's `cost_analysis()` counts the body of a loop once, so a model whose layers run under
`nn.scan` reports a fraction of its FLOPs (a 10-step scan of matmuls counts as one). MFU
needs the real number: walk the jaxpr, count `dot_general` and convolutions (2 FLOPs per
multiply-add), multiply scan bodies by their length and recurse into every sub-jaxpr
(jit, remat, custom derivatives). Elementwise work is left out, as MFU conventions do.
A `while` body (trip count unknown to the jaxpr) counts `while_trips` times (the caller
knows, e.g. a decode loop's token budget); conditionals count their costliest branch.
"""

import math

import jax
from jax._src.interpreters import partial_eval as pe
from jax.extend import core as jcore


def _sub_jaxprs(params):
  for value in params.values():
    for v in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(v, jcore.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jcore.Jaxpr):
        yield v


def _dot_flops(eqn) -> float:
  (contract_lhs, _), _ = eqn.params["dimension_numbers"]
  lhs = eqn.invars[0].aval.shape
  out = eqn.outvars[0].aval.shape
  return 2.0 * math.prod(out) * math.prod(lhs[d] for d in contract_lhs)


def _conv_flops(eqn) -> float:
  dn = eqn.params["dimension_numbers"]
  rhs = eqn.invars[1].aval.shape
  out = eqn.outvars[0].aval.shape
  # kernel: output features x (input features / groups) x spatial; each output element
  # takes one multiply-add per kernel entry of its group
  in_feat = rhs[dn.rhs_spec[1]]
  spatial = math.prod(rhs[d] for d in dn.rhs_spec[2:])
  return 2.0 * math.prod(out) * in_feat * spatial


def jaxpr_flops(jaxpr, while_trips: int = 1) -> float:
  """FLOPs of matmuls and convolutions in `jaxpr` (a Jaxpr or ClosedJaxpr)."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  count = lambda j: jaxpr_flops(j, while_trips)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * count(eqn.params["jaxpr"])
    elif name == "while":
      total += count(eqn.params["cond_jaxpr"]) + while_trips * count(eqn.params["body_jaxpr"])
    elif name == "cond":
      total += max(count(b) for b in eqn.params["branches"])
    else:
      total += sum(count(j) for j in _sub_jaxprs(eqn.params))
  return total


def count_flops(fn, *args, while_trips: int = 1, **kwargs) -> float:
  """Matmul FLOPs of one call `fn(*args, **kwargs)` (arrays or ShapeDtypeStructs).

  Dead code is removed first, as XLA does: a custom VJP's backward returns every gradient,
  including weight gradients of frozen parameters that nothing reads.
  """
  jaxpr = jax.make_jaxpr(fn)(*args, **kwargs).jaxpr
  jaxpr, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
  return jaxpr_flops(jaxpr, while_trips)
