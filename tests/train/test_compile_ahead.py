"""Compiling every bucket's step ahead, in the background, changes nothing but when."""

import json
import os
import threading
import time

import jax
import jax.numpy as jnp

from fun_asr_jax.data.bucketing import Buckets
from fun_asr_jax.train import loop
from tests.train.helpers import losses, tiny_config


def test_step_programs_compiles_ahead_cancels_queued_shapes_and_retries_failures():
  step = jax.jit(lambda s, b: (s + b["waveform"].sum() + b["tokens"].sum(), {"n": s}),
                 donate_argnums=(0,))
  programs = loop.StepPrograms(step, ())
  buckets = Buckets(seconds=(1.0, 2.0, 3.0, 4.0), tokens=(8, 16, 24, 32))
  batch = lambda b: {"waveform": jnp.ones((2, buckets.samples[b])),
                     "tokens": jnp.ones((2, buckets.tokens[b]), jnp.int32),
                     "is_noise": jnp.zeros((2,), bool)}
  calls, gate, compile_ = [], threading.Event(), programs._compile

  def traced_compile(state, b, how):  # records which thread compiles what
    background = threading.current_thread().name.startswith("compile_ahead")
    if background:
      gate.wait(60)  # holds the background thread on its first shape
    calls.append((buckets.samples.index(b["waveform"].shape[1]), background))
    if background and b["waveform"].shape[1] == buckets.samples[2]:
      raise RuntimeError("injected failure")
    return compile_(state, b, how)
  programs._compile = traced_compile

  state = jnp.zeros(())
  programs.get(state, batch(1))
  programs.compile_ahead(state, batch(1), buckets)  # queues 0, 2, 3; 0 starts and waits
  programs.get(state, batch(3))  # still queued: cancelled and compiled here
  gate.set()
  for _ in range(600):
    if programs.ready(batch(0)) and programs.ready(batch(2)):
      break
    time.sleep(0.1)
  for b in (0, 2):
    compiled, _ = programs.get(state, batch(b))
    want = float(state) + buckets.samples[b] * 2 + buckets.tokens[b] * 2
    state, _ = compiled(state, batch(b))
    assert float(state) == want
  # 1 and 3 on this thread, 0 in the background, 2 failed there and was redone here
  assert calls == [(1, False), (3, False), (0, True), (2, True), (2, False)]
  assert len(programs) == 4
  programs.close()


def test_compile_ahead_leaves_the_run_unchanged(corpus, tmp_path):
  two = {"data.bucket_seconds": (4.0, 8.0), "data.bucket_tokens": (128, 256)}
  plain, ahead = str(tmp_path / "plain"), str(tmp_path / "ahead")
  loop.train(tiny_config(corpus, steps=4, **two), plain)
  result = loop.train(tiny_config(corpus, steps=4, **two, **{"train.compile_ahead": True}),
                      ahead)
  assert losses(plain) == losses(ahead)
  assert result["step"] == 4
  rows = [json.loads(l) for l in open(os.path.join(plain, "metrics.jsonl"))]
  assert max(r.get("compiled_programs", 0) for r in rows) == 2, "both buckets should be drawn"
