"""Reading traced programs in tests: which primitives run, at what shapes."""


def _sub_jaxprs(value):
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # ClosedJaxpr
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def scope_batch_sizes(jaxpr, scope: str, out, outer: str = ""):
  """Leading (batch) sizes of every matmul traced under a module scope containing `scope`
  (e.g. "encoder/subsampling"), nested programs included (their names are relative to the
  equation holding them, e.g. a custom VJP's); input gradients count too. Weight gradients,
  which contract the rows away (`[N, I] x [N, O] -> [I, O]`), are left out: they have no
  batch dimension to report."""
  for eqn in jaxpr.eqns:
    name = f"{outer}/{eqn.source_info.name_stack}"
    if eqn.primitive.name == "dot_general" and scope in name:
      (lhs_contract, _), _ = eqn.params["dimension_numbers"]
      if 0 not in lhs_contract:
        out.append(eqn.invars[0].aval.shape[0])
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        scope_batch_sizes(sub, scope, out, name)
  return out


def encoder_ops(jaxpr):
  """Rows of each matmul in the encoder's subsampling (its first layer, gradients included):
  how often, and on how many rows, the encoder runs in a program."""
  return scope_batch_sizes(jaxpr, "encoder/subsampling", [])
