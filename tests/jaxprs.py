"""Reading traced programs in tests: which primitives run, at what shapes."""


def _sub_jaxprs(value):
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # ClosedJaxpr
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def scope_batch_sizes(jaxpr, scope: str, out):
  """Leading (batch) sizes of every matmul traced under a module scope containing `scope`
  (e.g. "encoder/subsampling"), nested programs included; gradients count too."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general" and scope in str(eqn.source_info.name_stack):
      out.append(eqn.invars[0].aval.shape[0])
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        scope_batch_sizes(sub, scope, out)
  return out


def encoder_ops(jaxpr):
  """Rows of each matmul in the encoder's subsampling (its first layer, gradients included):
  how often, and on how many rows, the encoder runs in a program."""
  return scope_batch_sizes(jaxpr, "encoder/subsampling", [])
