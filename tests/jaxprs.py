"""Reading traced programs in tests: which primitives run, at what shapes."""


def _sub_jaxprs(value):
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # ClosedJaxpr
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def conv_batch_sizes(jaxpr, out):
  """Batch sizes of every convolution in a program, nested programs included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      out.append(eqn.invars[0].aval.shape[0])
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        conv_batch_sizes(sub, out)
  return out
