"""The guarded parameter update against optax.apply_if_finite, the rule it follows."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fun_asr_jax.train import state as state_lib


def test_guarded_update_follows_apply_if_finite_step_by_step():
  """Same params, moments and counters through finite, NaN and inf gradients, including a
  run of rejections longer than the limit (then the update goes through, as in optax)."""
  inner = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.1, weight_decay=0.01))
  ours, ref = state_lib.finite_guard(inner, 2), optax.apply_if_finite(inner, 2)
  params = {"a": jnp.arange(6.0).reshape(2, 3), "b": {"c": jnp.ones((4,))}}
  r = np.random.default_rng(0)
  grads = []
  for bad in (None, np.nan, None, np.inf, np.nan, np.nan, None, None):
    g = {"a": r.standard_normal((2, 3)), "b": {"c": r.standard_normal(4)}}
    if bad is not None:
      g["b"]["c"][1] = bad
    grads.append(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g))
  p1, s1 = params, ours.init(params)
  p2, s2 = params, ref.init(params)
  step = jax.jit(lambda p, s, g: state_lib.apply_update(ours, g, s, p))
  for i, g in enumerate(grads):
    p1, s1 = step(p1, s1, g)
    u2, s2 = ref.update(g, s2, p2)
    p2 = optax.apply_updates(p2, u2)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)  # checkpoints carry over
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=str(i)),
                 (p1, s1), (p2, s2))
    if i == 1:  # the first rejected step leaves the parameters bit-identical
      np.testing.assert_array_equal(p1["a"], prev["a"])
    prev = p1
  assert int(s1.total_notfinite) == 4 and int(s1.notfinite_count) == 0
  # the sixth gradient was the third non-finite one in a row: over the limit, applied
  assert not np.all(np.isfinite(np.asarray(p1["b"]["c"])))
  # a plain transformation goes through the same function unguarded
  sgd = optax.sgd(0.5)
  p3, _ = state_lib.apply_update(sgd, grads[0], sgd.init(params), params)
  np.testing.assert_allclose(p3["a"], params["a"] - 0.5 * grads[0]["a"], rtol=1e-6)
