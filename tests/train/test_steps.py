"""The SFT step only differentiates what the stage trains."""

import flax
import jax
import numpy as np
import optax
import pytest

from configs import models, sft
from fun_asr_jax.models.fun_asr import dummy_batch, init_params
from fun_asr_jax.train import state as state_lib
from fun_asr_jax.train import steps
from tests.jaxprs import encoder_ops


@pytest.fixture(scope="module")
def setup():
  cfg = models.model_config("tiny")
  params = flax.linen.meta.unbox(init_params(cfg, jax.random.key(0), 2)["params"])
  batch = dummy_batch(cfg, 2)
  rng = np.random.default_rng(0)
  batch["waveform"] = rng.normal(0, 0.1, batch["waveform"].shape).astype(np.float32)
  batch["tokens"] = rng.integers(3, 200, batch["tokens"].shape).astype(np.int32)
  batch["target_mask"] = ~batch["audio_mask"]
  batch["target_mask"][:, :2] = False
  batch["ctc_labels"] = rng.integers(3, 200, (2, 5)).astype(np.int32)
  batch["ctc_label_paddings"] = np.zeros((2, 5), np.float32)
  return cfg, params, batch


def test_frozen_parts_get_zero_gradients_and_no_backward_pass(setup):
  cfg, params, batch = setup
  model = steps.training_model(cfg, 0.0)
  lc = steps.LossConfig(objective="sft", ctc_weight=0.3)
  mask = state_lib.trainable_mask(params, sft.TRAINABLE["s1"])  # adaptor only
  grad = lambda m: jax.grad(lambda p: steps.sft_loss(state_lib.freeze(p, m), batch,
                                                     jax.random.key(1), model, lc)[0])(params)
  full, frozen = grad(None), grad(mask)
  for (path, g_full), g_frozen, m in zip(jax.tree_util.tree_leaves_with_path(full),
                                         jax.tree.leaves(frozen), jax.tree.leaves(mask)):
    if m:  # trainable leaves: the same gradient as differentiating everything
      np.testing.assert_allclose(np.asarray(g_frozen), np.asarray(g_full), rtol=1e-5,
                                 atol=1e-7, err_msg=jax.tree_util.keystr(path))
    else:
      assert not np.any(np.asarray(g_frozen)), jax.tree_util.keystr(path)

  c = sft.get_config("s1,tiny")
  tx = state_lib.make_optimizer(c, mask)
  state = state_lib.TrainState(step=np.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(0))
  program = lambda m: jax.make_jaxpr(lambda s: steps.train_step(
      s, batch, model=model, lc=lc, tx=tx, lr_fn=lambda _: 1e-3, trainable=m))(state).jaxpr
  # the encoder's matmuls run forward only: no gradient matmuls
  n_all, n_s1 = len(encoder_ops(program(None))), len(encoder_ops(program(mask)))
  n_forward = len(encoder_ops(jax.make_jaxpr(
      lambda p: steps.sft_loss(p, batch, jax.random.key(1), model, lc)[0])(params).jaxpr))
  assert 0 < n_s1 == n_forward < n_all, (n_s1, n_forward, n_all)


def test_parameter_ema_follows_the_numpy_recurrence(setup):
  """Three SGD steps with ema_decay 0.9: ema_t = d_t·ema + (1 - d_t)·params_t with the
  warmup d_t = min(0.9, (1 + t) / (10 + t)); frozen leaves equal their params exactly."""
  cfg, params, batch = setup
  sft_cfg = sft.get_config("s1,tiny")
  mask = state_lib.trainable_mask(params, tuple(sft_cfg.trainable))
  tx = optax.apply_if_finite(optax.sgd(0.1), max_consecutive_errors=5)
  state = state_lib.TrainState(step=np.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(1), ema=jax.tree.map(np.copy, params))
  step = jax.jit(lambda s: steps.train_step(
      s, batch, model=steps.training_model(cfg, 0.0), lc=steps.LossConfig(ctc_weight=0.5),
      tx=tx, lr_fn=lambda _: 0.1, trainable=mask, ema_decay=0.9))
  expected = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
  for t in range(3):
    state, _ = step(state)
    d = min(0.9, (1 + t) / (10 + t))
    expected = jax.tree.map(lambda e, p: d * e + (1 - d) * np.asarray(p, np.float64),
                            expected, state.params)
  for (path, got), want, m, p in zip(jax.tree_util.tree_flatten_with_path(state.ema)[0],
                                     jax.tree.leaves(expected), jax.tree.leaves(mask),
                                     jax.tree.leaves(state.params)):
    if m:
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(path))
    else:
      np.testing.assert_array_equal(got, p)
  adaptor_moved = [np.abs(np.asarray(e) - np.asarray(p)).max() for e, p in
                   zip(jax.tree.leaves(state.ema["adaptor"]), jax.tree.leaves(state.params["adaptor"]))]
  assert max(adaptor_moved) > 0  # the average lags the trained weights


@pytest.mark.parametrize("k", [12, 3])  # 12: every target fits; 3: the full-head fallback
def test_target_position_logits_give_the_numpy_loss_and_the_same_gradients(setup, k):
  """loss.target_tokens projects only target positions onto the vocabulary; the loss is
  the NumPy CE of the full logits, and the gradients are those of the plain loss."""
  cfg, params, batch = setup
  batch = dict(batch, target_mask=np.zeros_like(batch["target_mask"]))
  batch["target_mask"][0, 4:] = True  # rows of different target counts (11 and 5)
  batch["target_mask"][1, 10:] = True
  model = steps.training_model(cfg, 0.0)
  plain = steps.LossConfig(objective="sft")
  sparse = steps.LossConfig(objective="sft", target_tokens=k)
  assert int(batch["target_mask"][:, 1:].sum(1).max()) > 3  # k=3 must take the fallback
  logits = np.asarray(model.apply({"params": params}, batch)["logits"], np.float64)
  logp = logits - np.logaddexp.reduce(logits, -1, keepdims=True)
  w = batch["target_mask"][:, 1:]
  nll = -np.take_along_axis(logp[:, :-1], batch["tokens"][:, 1:, None], -1)[..., 0]
  want = (nll * w).sum() / w.sum()
  loss = lambda lc: jax.value_and_grad(
      lambda p: steps.sft_loss(p, batch, jax.random.key(1), model, lc)[0])(params)
  (got, g_sparse), (ref, g_plain) = jax.jit(loss, static_argnums=0)(sparse), loss(plain)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  np.testing.assert_allclose(float(got), float(ref), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_sparse), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
