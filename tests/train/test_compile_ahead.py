"""Compiling every bucket's step ahead, in the background, changes nothing but when."""

import jax
import jax.numpy as jnp

from fun_asr_jax.data.bucketing import Buckets
from fun_asr_jax.train import loop
from tests.train.helpers import losses, tiny_config


def test_step_programs_compiles_the_other_buckets_in_the_background():
  step = jax.jit(lambda s, b: (s + b["waveform"].sum() + b["tokens"].sum(), {"n": s}),
                 donate_argnums=(0,))
  programs = loop.StepPrograms(step, ())
  buckets = Buckets(seconds=(1.0, 2.0, 3.0), tokens=(8, 16, 24))
  batch = lambda b: {"waveform": jnp.ones((2, buckets.samples[b])),
                     "tokens": jnp.ones((2, buckets.tokens[b]), jnp.int32),
                     "is_noise": jnp.zeros((2,), bool)}
  state = jnp.zeros(())
  assert not programs.ready(batch(1))
  compiled, _ = programs.get(state, batch(1))
  programs.compile_ahead(state, batch(1), buckets)
  for b in (0, 2):  # queued from batch 1's structure, each waited for and then reused
    compiled, flops = programs.get(state, batch(b))
    assert programs.ready(batch(b)) and flops >= 0
    state, _ = compiled(state, batch(b))
    assert float(state) == float(buckets.samples[b] * 2 + buckets.tokens[b] * 2) + \
        (buckets.samples[0] * 2 + buckets.tokens[0] * 2 if b == 2 else 0)
  assert len(programs) == 3
  programs.close()


def test_compile_ahead_leaves_the_run_unchanged(corpus, tmp_path):
  two = {"data.bucket_seconds": (4.0, 8.0), "data.bucket_tokens": (128, 256)}
  plain, ahead = str(tmp_path / "plain"), str(tmp_path / "ahead")
  loop.train(tiny_config(corpus, steps=4, **two), plain)
  result = loop.train(tiny_config(corpus, steps=4, **two, **{"train.compile_ahead": True}),
                      ahead)
  assert losses(plain) == losses(ahead)
  assert result["step"] == 4
