"""GRPO as a training stage: init_from an SFT run, exact resume, frozen encoder, metrics."""

import json
import os

import jax
import numpy as np

from configs import grpo as grpo_config
from fun_asr_jax.train import checkpoint, loop
from tests.train.helpers import tiny_config


def grpo_run_config(corpus, init_from, steps, **overrides):
  c = grpo_config.get_config("tiny")
  base = tiny_config(corpus, steps=steps)
  c.data.update(train=base.data.train, tokenizer="byte", batch_size=2, bucket_seconds=(8.0,),
                bucket_tokens=(256,), num_threads=1)
  c.data.augment.noise_only_prob = 0.3
  c.train.update(num_steps=steps, log_every=1, save_every=2, async_checkpoint=False)
  c.rl.update(group_size=3, max_new_tokens=8)
  c.optim.update(lr=1e-3, warmup_steps=1)
  c.init_from = init_from
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def test_grpo_stage_resumes_exactly_and_keeps_the_encoder(corpus, tmp_path):
  """(With hinted rollouts: the prompt's hotword table comes through the pipeline too.)"""
  sft = str(tmp_path / "sft")
  loop.train(tiny_config(corpus, steps=2), sft)
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  hint = {"rl.hotword_bonus": 5.0, "data.hotword_prompt_prob": 1.0,
          "data.distractor_prompt_prob": 1.0, "data.bucket_tokens": (384,)}  # room for lists
  loop.train(grpo_run_config(corpus, sft, 4, **hint), straight)
  first = loop.train(grpo_run_config(corpus, sft, 4, **hint, **{"train.stop_after_steps": 2}),
                     resumed)
  assert first["step"] == 2
  loop.train(grpo_run_config(corpus, sft, 4, **hint), resumed)
  a, _ = checkpoint.restore_params(straight)
  b, _ = checkpoint.restore_params(resumed)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  start, _ = checkpoint.restore_params(sft)
  for x, y in zip(jax.tree.leaves(start["encoder"]), jax.tree.leaves(a["encoder"])):
    np.testing.assert_array_equal(x, y)  # frozen by the stage's default
  assert any(not np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(start["llm"]), jax.tree.leaves(a["llm"])))
  rows = [json.loads(l) for l in open(os.path.join(straight, "metrics.jsonl"))
          if '"train"' in l]
  for key in ("reward", "reward_accuracy", "reward_keywords", "reward_hallucination",
              "reward_language", "kl", "clip_fraction", "entropy", "response_length",
              "hinted_keyword_hits"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert all(r["hinted"] > 0 for r in rows)  # every prompt lists names


def test_group_size_one_is_rejected_naming_the_field(corpus, tmp_path):
  import pytest  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="rl.group_size"):
    loop.train(grpo_run_config(corpus, "", 2, **{"rl.group_size": 1}), str(tmp_path / "x"))
