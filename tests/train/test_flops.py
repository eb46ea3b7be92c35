"""Matmul FLOPs counted on the jaxpr, against XLA's own count where XLA's is complete."""

import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.train.flops import count_flops


def xla_flops(fn, *args):
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  return (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]


def attention_mlp(x, wq, wk, w1, w2):
  q, k = x @ wq, x @ wk
  a = jnp.einsum("bqd,bkd->bqk", q, k)
  return jnp.einsum("bqk,bkd->bqd", a, x) @ w1 @ w2


def test_matmul_heavy_function_matches_xla():
  rng = np.random.default_rng(0)
  args = [rng.standard_normal(s).astype(np.float32)
          for s in ((4, 64, 128), (128, 128), (128, 128), (128, 512), (512, 128))]
  ours, theirs = count_flops(attention_mlp, *args), xla_flops(attention_mlp, *args)
  assert abs(ours - theirs) / theirs < 0.01, (ours, theirs)


def test_scan_counts_every_step_like_the_unrolled_loop():
  x, w = jnp.ones((64, 128)), jnp.ones((6, 128, 128))
  scanned = lambda x, w: jax.lax.scan(lambda c, wi: (jnp.tanh(c @ wi), None), x, w)[0]

  def unrolled(x, w):
    for i in range(6):
      x = jnp.tanh(x @ w[i])
    return x
  assert count_flops(scanned, x, w) == count_flops(unrolled, x, w)
  assert abs(count_flops(scanned, x, w) - xla_flops(unrolled, x, w)) / xla_flops(unrolled, x, w) < 0.01
  assert xla_flops(scanned, x, w) < xla_flops(unrolled, x, w) / 3  # what the counter is for


def test_convolution_without_padding_matches_xla():
  img, k = jnp.ones((2, 3, 32, 32)), jnp.ones((8, 3, 3, 3))
  conv = lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "VALID")
  assert abs(count_flops(conv, img, k) - xla_flops(conv, img, k)) / xla_flops(conv, img, k) < 0.01


def test_gradient_counts_forward_and_backward_matmuls():
  x, w = jnp.ones((32, 64)), jnp.ones((64, 64))
  loss = lambda w: jnp.sum(jnp.tanh(x @ w))
  fwd = 2 * 32 * 64 * 64
  assert count_flops(jax.value_and_grad(loss), w) == 2 * fwd  # forward + weight gradient


def test_gradients_nothing_reads_are_not_counted():
  """A frozen weight's gradient, which `layers.linear.matmul`'s backward computes and JAX
  then drops, is dead code XLA removes; the count leaves it out too."""
  from fun_asr_jax.layers.linear import matmul  # pylint: disable=import-outside-toplevel
  x, w1, w2 = jnp.ones((256, 128)), jnp.ones((128, 512)), jnp.ones((512, 128))
  loss = lambda w1, w2: jnp.sum(matmul(jnp.tanh(matmul(x, jax.lax.stop_gradient(w1),
                                                       jnp.float32)), w2, jnp.float32))
  grad = jax.grad(loss, argnums=1)
  ours, theirs = count_flops(grad, w1, w2), xla_flops(grad, w1, w2)
  # x @ w1 and dW2 = h^T g only: the second product's output, dx and dW1 feed nothing
  assert ours == 2 * 2 * 256 * 128 * 512, ours
  assert abs(ours - theirs) / theirs < 0.01, (ours, theirs)
