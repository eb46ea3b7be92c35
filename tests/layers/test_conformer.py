"""The subsampling convolution written as a matmul against PyTorch's and Flax's Conv2d."""

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch

from fun_asr_jax.layers.conformer import StridedConv3x3


@pytest.mark.parametrize("shape", [(2, 17, 80, 1), (3, 12, 9, 5), (1, 4, 3, 2)])
def test_strided_conv_equals_torch_conv2d(shape):
  x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  layer = StridedConv3x3(6)
  params = nn.unbox(layer.init(jax.random.key(1), x)["params"])
  params = jax.tree.map(lambda p: p + 0.1 * np.random.default_rng(2).standard_normal(p.shape)
                        .astype(np.float32), params)  # a non-zero bias too
  got = np.asarray(layer.apply({"params": params}, x))
  weight = torch.from_numpy(np.asarray(params["kernel"]).transpose(3, 2, 0, 1).copy())  # OIHW
  want = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), weight,
                                    torch.from_numpy(np.array(params["bias"])), stride=2)
  want = want.numpy().transpose(0, 2, 3, 1)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_strided_conv_keeps_flax_conv_parameters_and_gradients():
  """Same parameter names, shapes and initial values as nn.Conv: checkpoints carry over."""
  x = np.random.default_rng(3).standard_normal((2, 15, 11, 4)).astype(np.float32)
  conv = nn.Conv(8, (3, 3), strides=(2, 2), padding="VALID")
  ours = StridedConv3x3(8)
  p_ref = conv.init(jax.random.key(5), x)["params"]
  p_ours = nn.unbox(ours.init(jax.random.key(5), x)["params"])
  assert jax.tree.structure(p_ref) == jax.tree.structure(p_ours)
  for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_ours)):
    np.testing.assert_array_equal(a, b)

  def loss(module):
    return lambda p: (module.apply({"params": p}, x) ** 2).sum()
  g_ref = jax.grad(loss(conv))(p_ref)
  g_ours = jax.grad(loss(ours))(p_ref)
  for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_ours)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)
  short = x[:, :2]  # fewer frames than the kernel: no output frame, as nn.Conv
  assert ours.apply({"params": p_ref}, short).shape == conv.apply({"params": p_ref}, short).shape
