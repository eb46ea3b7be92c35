"""The projection's hand-written gradients against NumPy's closed forms and JAX's own rule."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import print_saved_residuals

from fun_asr_jax.layers import linear, remat


@pytest.mark.parametrize("out_major", [False, True])
def test_gradients_match_numpy(out_major):
  r = np.random.default_rng(0)
  x = r.standard_normal((3, 5, 6))  # [B, T, I]
  w = r.standard_normal((6, 4))  # [I, O]
  c = r.standard_normal((3, 5, 4))  # loss = sum(c * y), so dL/dy = c
  stored = w.T if out_major else w
  loss = lambda x, w: jnp.sum(jnp.asarray(c, jnp.float32) *
                              linear.matmul(x, w, jnp.float32, out_major))
  dx, dw = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x, jnp.float32),
                                          jnp.asarray(stored, jnp.float32))
  np.testing.assert_allclose(np.asarray(dx), c @ w.T, rtol=1e-5, atol=1e-5)
  want_dw = np.einsum("bti,bto->io", x, c)
  np.testing.assert_allclose(np.asarray(dw), want_dw.T if out_major else want_dw,
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_with_lora_matches_jax_autodiff_of_the_plain_einsum(dtype):
  """Every parameter's gradient, bf16 compute included, equals JAX's rule for the einsum."""
  module = linear.Linear(8, ("embed", "mlp"), lora_rank=2, dtype=dtype)
  x = jax.random.normal(jax.random.key(0), (2, 3, 5))
  params = nn.meta.unbox(module.init(jax.random.key(1), x)["params"])
  params = jax.tree.map(lambda p: p + 0.1, params)  # lora_b starts at zero: move it off

  def reference(p, x):  # the layer written with jnp.einsum, differentiated by JAX
    mm = lambda a, b: jnp.einsum("...i,io->...o", a.astype(dtype), b.astype(dtype),
                                 preferred_element_type=jnp.float32).astype(dtype)
    y = mm(x, p["kernel"]) + mm(mm(x, p["lora_a"]), p["lora_b"]) * (1.0 / 2)
    return y + p["bias"].astype(dtype)

  c = jax.random.normal(jax.random.key(2), (2, 3, 8))
  ours = jax.grad(lambda p, x: jnp.sum(c * module.apply({"params": p}, x)), (0, 1))(params, x)
  want = jax.grad(lambda p, x: jnp.sum(c * reference(p, x)), (0, 1))(params, x)
  tol = 1e-6 if dtype == jnp.float32 else 1e-2
  for got, ref in zip(jax.tree.leaves(ours), jax.tree.leaves(want)):
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=tol, atol=tol)


@pytest.mark.parametrize("policy,saved", [("dots", 1), ("dots_saveable", 1), ("full", 0)])
def test_remat_dot_policies_still_save_the_projections(policy, saved, capsys):
  """The custom VJP hides the dot from JAX's dot policies; the 'linear' name keeps it saved."""

  class Two(nn.Module):
    @nn.compact
    def __call__(self, x):
      return linear.Linear(4, ("embed", "mlp"))(jnp.tanh(linear.Linear(6, ("embed", "mlp"))(x)))

  layer = remat.maybe_remat(Two, policy)
  x = jnp.ones((3, 5))
  params = layer().init(jax.random.key(0), x)
  print_saved_residuals(lambda p: jnp.sum(layer().apply(p, x)), params)
  assert capsys.readouterr().out.count("named 'linear'") == saved
