"""LoRA: zero-initialised B leaves the function unchanged; the update is W + A B alpha/r."""

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.layers.linear import Linear


def test_lora_starts_as_identity_and_matches_numpy():
  x = np.random.RandomState(0).randn(3, 5, 8).astype(np.float32)
  base = Linear(6, ("embed", "mlp"))
  lora = Linear(6, ("embed", "mlp"), lora_rank=2, lora_alpha=4.0)
  p_lora = jax.tree.map(lambda a: a, lora.init(jax.random.key(0), x))
  p_base = {"params": {k: v for k, v in p_lora["params"].items() if not k.startswith("lora")}}
  np.testing.assert_allclose(np.asarray(lora.apply(p_lora, x)),
                             np.asarray(base.apply(p_base, x)), atol=1e-6)
  unboxed = jax.tree.map(np.asarray, __import__("flax").linen.meta.unbox(p_lora))["params"]
  unboxed["lora_b"] = np.random.RandomState(1).randn(2, 6).astype(np.float32)
  w = unboxed["kernel"] + unboxed["lora_a"] @ unboxed["lora_b"] * (4.0 / 2)
  want = x @ w + unboxed["bias"]
  np.testing.assert_allclose(np.asarray(lora.apply({"params": unboxed}, x)), want, atol=1e-5)


def test_lora_gradient_reaches_adapters_only_through_b():
  x = jnp.ones((2, 4))
  lora = Linear(3, ("embed", "mlp"), lora_rank=2, use_bias=False)
  params = __import__("flax").linen.meta.unbox(lora.init(jax.random.key(0), x))
  g = jax.grad(lambda p: lora.apply(p, x).sum())(params)["params"]
  assert float(jnp.abs(g["lora_b"]).sum()) > 0  # B gets a gradient at init
  assert float(jnp.abs(g["lora_a"]).sum()) == 0  # A's gradient is zero while B == 0
