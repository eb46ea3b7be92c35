"""GRPO: advantages and loss against NumPy, KL, the policy gradient, rollouts, a toy run."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import models
from fun_asr_jax.inference import hotwords
from fun_asr_jax.models.fun_asr import FunASR, init_params, num_audio_tokens
from fun_asr_jax.rl import grpo, rewards, units
from fun_asr_jax.text import prompts
from fun_asr_jax.text.tokenizer import Tokenizer
from fun_asr_jax.train import state as state_lib
from tests.jaxprs import encoder_ops

TOK = Tokenizer.byte_level()
B, G = 2, 3


# -- NumPy references -----------------------------------------------------------------------
def np_advantages(r, g):
  r = np.asarray(r, np.float64).reshape(-1, g)
  return ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)).ravel()


def np_loss(logp, old, ref, adv, mask, cfg):
  ratio = np.exp(logp - old)
  a = adv[:, None]
  per = np.maximum(-a * ratio, -a * np.clip(ratio, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high))
  per = per + cfg.beta * (np.exp(ref - logp) - (ref - logp) - 1)
  if cfg.aggregation == "token":
    return (per * mask).sum() / mask.sum()
  rows = mask.sum(1) > 0
  return np.mean((per * mask).sum(1)[rows] / mask.sum(1)[rows])


def test_advantages_match_numpy_and_equal_rewards_give_zero():
  r = np.random.default_rng(0).normal(size=12).astype(np.float32)
  np.testing.assert_allclose(grpo.group_advantages(jnp.asarray(r), 4), np_advantages(r, 4),
                             rtol=1e-5, atol=1e-5)
  flat = grpo.group_advantages(jnp.asarray([0.1, 0.1, 0.1, 0.7, 0.7, 0.7]), 3)
  assert np.all(np.asarray(flat) == 0.0)


@pytest.mark.parametrize("aggregation", ["sequence", "token"])
def test_policy_loss_matches_numpy(aggregation):
  rng = np.random.default_rng(1)
  shape = (6, 7)
  logp, old, ref = (rng.normal(-2, 0.5, shape).astype(np.float32) for _ in range(3))
  adv = rng.normal(size=6).astype(np.float32)
  mask = rng.random(shape) < 0.7
  mask[2] = False  # a response with no tokens
  cfg = grpo.GRPOConfig(epsilon_low=0.2, epsilon_high=0.28, beta=0.1, aggregation=aggregation)
  loss, m = grpo.policy_loss(jnp.asarray(logp), jnp.asarray(old), jnp.asarray(ref),
                             jnp.asarray(adv), jnp.asarray(mask), cfg)
  np.testing.assert_allclose(float(loss), np_loss(logp, old, ref, adv, mask, cfg), rtol=1e-5)
  assert 0 < float(m["clip_fraction"]) < 1


def test_kl_is_zero_when_policy_equals_reference():
  logp = jnp.asarray(np.random.default_rng(2).normal(-2, 1, (4, 5)), jnp.float32)
  _, m = grpo.policy_loss(logp, logp, logp, jnp.ones(4), jnp.ones((4, 5), bool),
                          grpo.GRPOConfig(beta=0.5))
  assert float(m["kl"]) == 0.0


# -- a tiny model and batch -----------------------------------------------------------------
@pytest.fixture(scope="module")
def setup():
  cfg = models.model_config("tiny", TOK.vocab_size)
  params = nn.meta.unbox(init_params(cfg, jax.random.key(0), 1, 1.0))["params"]
  rng = np.random.default_rng(0)
  texts = ["ok", "hi"]
  waves = [rng.normal(0, 0.1, 16000).astype(np.float32) for _ in texts]
  layouts = [prompts.layout(TOK, num_audio_tokens(cfg, 16000), prompts.task_prompt(), t)
             for t in texts]
  batch = prompts.collate(layouts, TOK.pad_id)
  labels = [TOK.encode(t) for t in texts]
  width = max(map(len, labels))
  batch.update(waveform=np.stack(waves), wave_lengths=np.full(2, 16000, np.int32),
               ctc_labels=np.array([l + [0] * (width - len(l)) for l in labels], np.int32),
               ctc_label_paddings=np.array([[0.0] * len(l) + [1.0] * (width - len(l))
                                            for l in labels], np.float32),
               is_noise=np.zeros(2, bool))
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  return cfg, params, batch


def test_gradient_with_equal_policies_is_the_plain_policy_gradient(setup):
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=6, beta=0.3)
  ro = jax.jit(lambda k: grpo.rollout(model, params, batch, k, gcfg, TOK.eos_id,
                                      TOK.pad_id))(jax.random.key(3))
  resp, mask = grpo.response_layout(ro, TOK.eos_id)
  adv = jnp.asarray([1.0, -0.5, -0.5, 0.2, 0.3, -0.5])
  logp0, _ = jax.jit(lambda p: grpo.response_logprobs(model, p, batch, resp, mask, G))(params)

  def grpo_loss(p):
    logp, _ = grpo.response_logprobs(model, p, batch, resp, mask, G)
    return grpo.policy_loss(logp, logp0, logp0, adv, mask, gcfg)[0]

  def plain(p):  # -E[A * log pi], sequence-mean of token means
    logp, _ = grpo.response_logprobs(model, p, batch, resp, mask, G)
    m = mask.astype(jnp.float32)
    return -jnp.mean((adv[:, None] * logp * m).sum(1) / jnp.maximum(m.sum(1), 1))

  g1, g2 = jax.jit(jax.grad(grpo_loss))(params), jax.jit(jax.grad(plain))(params)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(g1))


def test_compressed_audio_rollouts_are_what_the_teacher_forced_pass_would_pick(setup):
  """With CTC compression the prompts have holes (empty audio slots): the greedy rollout
  and the teacher-forced log-probs that train on it must read the same positions."""
  cfg, params, batch = setup
  model = FunASR(dataclasses.replace(cfg, ctc_compress=True))
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=6, temperature=0.0)
  ro = jax.jit(lambda k: grpo.rollout(model, params, batch, k, gcfg, TOK.eos_id,
                                      TOK.pad_id))(jax.random.key(3))
  resp, mask = grpo.response_layout(ro, TOK.eos_id)
  logp_all = jax.jit(lambda p: grpo.response_distributions(model, p, batch, resp, mask, G))(
      params)
  audio_pads = jax.jit(lambda p: grpo.audio_embeddings(model, p, batch)[1])(params)
  assert 0 < int(jnp.sum(audio_pads[0] > 0.5))  # some slots are holes
  picked = np.asarray(jnp.argmax(logp_all, -1))
  m = np.asarray(mask)
  assert m.any()
  np.testing.assert_array_equal(picked[m], np.asarray(resp)[m])


def test_fixed_rng_gives_identical_rollouts(setup):
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=8)
  roll = jax.jit(lambda k: grpo.rollout(model, params, batch, k, gcfg, TOK.eos_id, TOK.pad_id))
  a, b, c = roll(jax.random.key(5)), roll(jax.random.key(5)), roll(jax.random.key(6))
  np.testing.assert_array_equal(a["tokens"], b["tokens"])
  assert not np.array_equal(a["tokens"], c["tokens"])
  assert a["tokens"].shape == (B * G, 8)


def test_encoder_runs_once_per_utterance_not_per_sample(setup):
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=4, beta=0.1)
  tx = optax.apply_if_finite(optax.adam(1e-3), 10)
  state = state_lib.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(0))
  tables = units.build_tables(TOK).as_arrays()
  step = lambda s: grpo.train_step(s, params, batch, tables, model=model, cfg=gcfg, tx=tx,
                                   lr_fn=lambda _: 1e-3, eos_id=TOK.eos_id, pad_id=TOK.pad_id)
  sizes = encoder_ops(jax.make_jaxpr(step)(state).jaxpr)
  assert sizes and set(sizes) == {B}, sizes  # the encoder's matmuls see B rows


def test_frozen_encoder_runs_once_per_step_with_identical_results(setup):
  """With the encoder outside the optimizer (configs/grpo.py), one encoder pass serves the
  rollout, the reference and the policy passes: same params and metrics, fewer convs."""
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=4, beta=0.1, num_updates=2)
  trainable = jax.tree_util.tree_map_with_path(
      lambda path, _: not str(path[0].key).startswith("encoder"), params)
  # SGD: parameter differences stay proportional to gradient differences (Adam would blow
  # float noise on near-zero gradients up to full-size steps)
  tx = optax.apply_if_finite(optax.masked(optax.sgd(1e-2), trainable), 10)
  tables = units.build_tables(TOK).as_arrays()
  ref = jax.tree.map(lambda x: x * 1.01, params)  # a reference that differs off the encoder
  ref["encoder"] = params["encoder"]

  def step(shared):
    state = state_lib.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                                 rng=jax.random.key(0))
    return lambda s=state: grpo.train_step(
        s, ref, batch, tables, model=model, cfg=gcfg, tx=tx, lr_fn=lambda _: 1e-2,
        eos_id=TOK.eos_id, pad_id=TOK.pad_id, encoder_frozen=shared, trainable=trainable)

  (s_a, m_a), (s_b, m_b) = jax.jit(step(False))(), jax.jit(step(True))()
  for k in ("loss", "kl", "reward", "entropy", "grad_norm"):
    np.testing.assert_allclose(float(m_a[k]), float(m_b[k]), rtol=1e-4, atol=1e-6)
  for a, b in zip(jax.tree.leaves(s_a.params), jax.tree.leaves(s_b.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  per_pass = len(encoder_ops(jax.make_jaxpr(step(False))().jaxpr))
  shared = len(encoder_ops(jax.make_jaxpr(step(True))().jaxpr))
  assert 0 < shared < per_pass / 2, (shared, per_pass)  # rollout + old + ref + update -> once


def test_guided_step_trains_and_reports_the_policy_samples_only(setup):
  cfg, params, batch = setup
  tx = optax.apply_if_finite(optax.sgd(1e-2), 10)
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=48, beta=0.0, guide=1.0)
  state = state_lib.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(0))
  _, m = jax.jit(lambda s: grpo.train_step(
      s, None, batch, units.build_tables(TOK).as_arrays(), model=FunASR(cfg), cfg=gcfg,
      tx=tx, lr_fn=lambda _: 1e-2, eos_id=TOK.eos_id, pad_id=TOK.pad_id))(state)
  assert abs(float(m["guided"]) - 1 / G) < 1e-6 and np.isfinite(float(m["loss"]))
  # the guided answers are exact (reward accuracy 1); the random policy's are not
  assert float(m["reward_accuracy"]) < 0.5


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="rl.group_size"):
    grpo.GRPOConfig(group_size=1).validate()
  with pytest.raises(ValueError, match="rl.reward.accuracy"):
    grpo.GRPOConfig(reward=rewards.RewardConfig(accuracy=-1)).validate()
  with pytest.raises(ValueError, match="rl.aggregation"):
    grpo.GRPOConfig(aggregation="mean").validate()
  with pytest.raises(ValueError, match="rl.guide"):
    grpo.GRPOConfig(guide=1.5).validate()


def test_guided_groups_get_the_reference_and_an_advantage():
  """Groups whose samples all hallucinate on noise: equal rewards, zero advantage; with the
  reference (the empty answer) in place of the last sample, the group has an advantage."""
  g, n, pad, eos = 3, 6, 0, 9
  ro = {"tokens": jnp.asarray(np.tile([[5, 6, 7, 0, 0, 0]], (3 * g, 1)), jnp.int32),
        "lengths": jnp.full((3 * g,), 3, jnp.int32), "done": jnp.ones((3 * g,), bool)}
  batch = {"ctc_labels": jnp.asarray([[0, 0, 0, 0, 0, 0, 0, 0], [4, 2, 0, 0, 0, 0, 0, 0],
                                      [1, 2, 3, 4, 5, 6, 7, 8]], jnp.int32),
           "ctc_label_paddings": jnp.asarray([[1] * 8, [0, 0] + [1] * 6, [0] * 8], jnp.float32)}
  cfg = grpo.GRPOConfig(group_size=g, max_new_tokens=n, guide=1.0)
  out, guided = grpo.guide_with_reference(ro, batch, jax.random.key(0), cfg, pad)
  # noise: empty answer; speech: its labels then padding; too long for n: left as sampled
  np.testing.assert_array_equal(guided, [0, 0, 1, 0, 0, 1, 0, 0, 0])
  np.testing.assert_array_equal(out["tokens"][2], [pad] * n)
  np.testing.assert_array_equal(out["tokens"][5], [4, 2] + [pad] * (n - 2))
  np.testing.assert_array_equal(out["lengths"], [3, 3, 0, 3, 3, 2, 3, 3, 3])
  assert bool(out["done"].all())
  np.testing.assert_array_equal(out["tokens"][6:], ro["tokens"][6:])
  tokens, mask = grpo.response_layout(out, eos)
  assert list(np.asarray(tokens[2][:1])) == [eos] and int(mask[2].sum()) == 1
  # the noise group: all samples hallucinate -> zero advantage; guided -> the reference wins
  silent = jnp.asarray([0.0, 0.0, 1.0])  # reward: 1 for saying nothing on noise
  assert np.all(np.asarray(grpo.group_advantages(jnp.zeros(3), g)) == 0)
  adv = np.asarray(grpo.group_advantages(silent, g))
  assert adv[2] > 0 > adv[0] == adv[1]
  none = grpo.guide_with_reference(ro, batch, jax.random.key(0),
                                   dataclasses.replace(cfg, guide=0.0), pad)[1]
  assert not np.asarray(none).any()


def adam_run(model, params, batch, gcfg, lr):
  """A jitted GRPO step on a fixed batch (no reference policy) and its Adam start state."""
  tx = optax.apply_if_finite(optax.adam(lr), 10)
  state = state_lib.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(0))
  tables = units.build_tables(TOK).as_arrays()
  step = jax.jit(lambda s: grpo.train_step(s, None, batch, tables, model=model, cfg=gcfg,
                                           tx=tx, lr_fn=lambda _: lr, eos_id=TOK.eos_id,
                                           pad_id=TOK.pad_id))
  return step, state


def test_short_grpo_run_raises_the_reward_of_a_toy_task(setup):
  """Reward = 1 - WER against the reference ("ok" / "hi"); optimum 1. A random tiny model
  starts far below it; a few dozen GRPO steps must move the mean reward up."""
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = grpo.GRPOConfig(group_size=8, max_new_tokens=6, beta=0.0, reward=rewards.RewardConfig(
      accuracy=1.0, keywords=0.0, hallucination=0.0, language=0.0))
  step, state = adam_run(model, params, batch, gcfg, 3e-3)
  history = []
  for _ in range(40):
    state, m = step(state)
    history.append(float(m["reward"]))
  first, last = np.mean(history[:8]), np.mean(history[-8:])
  assert last > first + 0.15, history  # measured: -0.27 -> -0.05


def test_hinted_samples_write_the_prompt_hotword_and_leave_the_others_alone(setup):
  """With `hotword_bonus` the second half of each group whose prompt lists a hotword is
  sampled with the decoder's biasing: a bonus no logit can match makes those samples start
  with the hotword; every other sample is exactly what the plain rollout draws."""
  cfg, params, batch = setup
  model = FunASR(cfg)
  table = hotwords.bias_table(TOK, [["Calloway"], []], 16, entries=8)
  hb = dict(batch, prompt_hotword_ids=jnp.asarray(table))
  plain = grpo.GRPOConfig(group_size=4, max_new_tokens=10)
  roll = lambda c: jax.jit(lambda: grpo.rollout(model, params, hb, jax.random.key(1), c,
                                                TOK.eos_id, TOK.pad_id))()
  a, b = roll(plain), roll(dataclasses.replace(plain, hotword_bonus=1e4))
  hinted = np.array([0, 0, 1, 1, 0, 0, 0, 0], bool)  # row 1's prompt lists nothing
  np.testing.assert_array_equal(b["hinted"], hinted)
  assert not np.asarray(a["hinted"]).any()
  np.testing.assert_array_equal(np.asarray(a["tokens"])[~hinted], np.asarray(b["tokens"])[~hinted])
  for row in np.flatnonzero(hinted):
    assert TOK.decode(np.asarray(b["tokens"][row])).startswith("Calloway")
  # in a step, the hinted samples are counted apart from the policy's own
  tx = optax.apply_if_finite(optax.sgd(1e-2), 10)
  state = state_lib.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(0))
  gcfg = dataclasses.replace(plain, hotword_bonus=1e4, beta=0.0)
  _, m = jax.jit(lambda s: grpo.train_step(
      s, None, hb, units.build_tables(TOK).as_arrays(), model=model, cfg=gcfg, tx=tx,
      lr_fn=lambda _: 1e-2, eos_id=TOK.eos_id, pad_id=TOK.pad_id))(state)
  assert float(m["hinted"]) == 0.25 and np.isfinite(float(m["loss"]))
  with pytest.raises(ValueError, match="rl.hotword_bonus"):
    grpo.GRPOConfig(hotword_bonus=-1.0).validate()


@pytest.mark.parametrize("bonus", [0.0, 1e4])
def test_hinted_rollouts_teach_a_word_plain_sampling_never_finds(setup, bonus):
  """Reward = keyword recall of "ok" (listed in the prompt). A random byte-level policy
  writes "ok" in two tokens about once in 70,000 samples, so plain GRPO sees no reward and
  learns nothing; with hinted rollouts half of each group writes it, and the policy's own
  (unhinted) samples learn to."""
  cfg, params, _ = setup
  model = FunASR(cfg)
  layouts = [prompts.layout(TOK, num_audio_tokens(cfg, 16000),
                            prompts.task_prompt(hotwords=["ok"]), "ok")] * 2
  batch = prompts.collate(layouts, TOK.pad_id)
  label = TOK.encode("ok")
  waves = np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32)
  batch.update(waveform=waves, wave_lengths=np.full(2, 16000, np.int32),
               ctc_labels=np.array([label] * 2, np.int32),
               ctc_label_paddings=np.zeros((2, len(label)), np.float32),
               is_noise=np.zeros(2, bool),
               hotword_tokens=np.array([[label]] * 2, np.int32),
               hotword_lengths=np.full((2, 1), len(label), np.int32),
               prompt_hotword_ids=hotwords.bias_table(TOK, [["ok"]] * 2, 4, entries=8))
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  gcfg = grpo.GRPOConfig(group_size=8, max_new_tokens=2, beta=0.0, hotword_bonus=bonus,
                         reward=rewards.RewardConfig(accuracy=0.0, keywords=1.0,
                                                     hallucination=0.0, language=0.0))
  step, state = adam_run(model, params, batch, gcfg, 1e-2)
  # R2 = (recall + precision) / 2: 1 where a sample writes "ok", 0.5 (recall 0, precision
  # vacuously 1) where it does not; so 2 R2 - 1 is the share of samples that write it
  own = []  # ... among the policy's own samples
  for _ in range(30):
    state, m = step(state)
    own.append(2 * float(m["reward_keywords"]) - 1)
  if bonus:
    assert float(m["hinted_keyword_hits"]) == 8  # every hinted sample (2 x 4) writes "ok"
    assert np.mean(own[-5:]) > 0.5, own  # measured: 0 for 9 steps, then 0.9-1 from step 20
  else:
    assert max(own) == 0.0, own


def test_speech_anchor_scores_speech_references_only():
  """Noise clips, empty references and references too long to finish are not anchored."""
  n, pad, eos = 5, 0, 9
  batch = {"ctc_labels": jnp.asarray([[0, 0, 0, 0, 0], [4, 2, 0, 0, 0], [1, 2, 3, 4, 5],
                                      [3, 0, 0, 0, 0]], jnp.int32),
           "ctc_label_paddings": jnp.asarray([[1] * 5, [0, 0, 1, 1, 1], [0] * 5,
                                              [0, 1, 1, 1, 1]], jnp.float32),
           "is_noise": jnp.asarray([True, False, False, True])}
  tokens, mask, use = grpo.speech_anchor(batch, n, eos, pad)
  np.testing.assert_array_equal(tokens[1], [4, 2, eos, pad, pad])
  np.testing.assert_array_equal(mask[1], [1, 1, 1, 0, 0])
  np.testing.assert_array_equal(use, [False, True, False, False])
  logp = np.random.default_rng(4).normal(-2, 1, (4, n)).astype(np.float32)
  want = -logp[1, :3].mean()
  got = grpo.anchor_nll(jnp.asarray(logp) * mask, mask, use)
  np.testing.assert_allclose(float(got), want, rtol=1e-6)
  assert float(grpo.anchor_nll(jnp.asarray(logp), mask, jnp.zeros(4, bool))) == 0.0


def test_sft_weight_pulls_the_policy_toward_the_speech_references(setup):
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = grpo.GRPOConfig(group_size=G, max_new_tokens=6, beta=0.0, sft_weight=1.0)
  step, state = adam_run(model, params, batch, gcfg, 3e-3)
  nll = []
  for _ in range(8):
    state, m = step(state)
    nll.append(float(m["anchor_nll"]))
  # teacher-forced NLL of "ok"/"hi" + end token under a random policy: about log(vocab)
  assert nll[0] > 3.0 and nll[-1] < nll[0] - 1.5, nll  # measured: 5.6 -> 3.6
  with pytest.raises(ValueError, match="rl.sft_weight"):
    grpo.GRPOConfig(sft_weight=-1.0).validate()


def test_empty_unlikelihood_matches_numpy_and_skips_unused_utterances():
  lp = np.log(np.asarray([0.5, 0.01, 0.9, 0.2], np.float32))
  use = np.asarray([True, True, False, True])
  want = np.mean(-np.log(1.0 - np.exp(lp[use])))
  got = grpo.empty_unlikelihood(jnp.asarray(lp), jnp.asarray(use))
  np.testing.assert_allclose(float(got), want, rtol=1e-6)
  assert float(grpo.empty_unlikelihood(jnp.asarray(lp), jnp.zeros(4, bool))) == 0.0
  assert np.isfinite(float(grpo.empty_unlikelihood(jnp.zeros(4), jnp.asarray(use))))
  with pytest.raises(ValueError, match="rl.empty_unlikelihood"):
    grpo.GRPOConfig(empty_unlikelihood=-1.0).validate()


@pytest.mark.slow  # three GRPO step compilations; the NumPy test above runs by default
def test_empty_unlikelihood_stops_speech_from_coming_out_empty(setup):
  """First teach stopping at once (noise clips, guided to the empty answer), as GRPO's
  hallucination reward does; then on speech with no reward to tell samples apart, only the
  unlikelihood term moves P(empty answer), and down."""
  cfg, params, batch = setup
  model = FunASR(cfg)
  gcfg = lambda halluc, w: grpo.GRPOConfig(
      group_size=8, max_new_tokens=4, beta=0.0, guide=1.0, empty_unlikelihood=w,
      reward=rewards.RewardConfig(accuracy=0.0, keywords=0.0, hallucination=halluc,
                                  language=0.0))
  noise = dict(batch, is_noise=jnp.ones(2, bool),
               ctc_label_paddings=jnp.ones_like(batch["ctc_label_paddings"]))
  step, state = adam_run(model, params, noise, gcfg(1.0, 1.0), 1e-2)
  for _ in range(12):
    state, m = step(state)
  assert float(m["empty_prob_silent"]) > 0.3, m  # measured: 0.80
  assert float(m["empty_prob_speech"]) == 0.0  # no speech in this batch
  for w in (0.0, 1.0):
    step, s = adam_run(model, state.params, batch, gcfg(0.0, w), 1e-2)  # a fresh optimizer
    probs = []
    for _ in range(8):
      s, m = step(s)
      probs.append(float(m["empty_prob_speech"]))
    if w:  # measured: 0.86 -> 0.0002
      assert probs[-1] < 0.5 * probs[0] and float(m["empty_unlikelihood"]) > 0, probs
    else:  # equal rewards, zero advantages, no KL: nothing moves
      assert probs[0] > 0.3 and probs[-1] == pytest.approx(probs[0], abs=1e-4), probs
