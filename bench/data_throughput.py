r"""Input pipeline throughput against what training consumes, in one run.

  python bench/data_throughput.py --workdir=/tmp/bench_data

Builds the embedded corpus (if absent), then measures utterances/s and audio-seconds/s of
the grain pipeline with augmentation on (noise, RIR, speed, gain) using reader threads
(1, 2, 4) and worker processes (2), and the train step's consumption (utterances/s) for the
tiny and small presets on the same batches. Prints a table for bench/RESULTS.md.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grain  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import models, sft  # noqa: E402
from fun_asr_jax.data import synth  # noqa: E402
from fun_asr_jax.data.augment import AugmentConfig  # noqa: E402
from fun_asr_jax.data.bucketing import Buckets  # noqa: E402
from fun_asr_jax.data.pipeline import Pipeline, PipelineConfig  # noqa: E402
from fun_asr_jax.parallel import mesh as mesh_lib  # noqa: E402
from fun_asr_jax.text.tokenizer import Tokenizer  # noqa: E402
from fun_asr_jax.train import loop, state as state_lib, steps  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/bench_data", "Scratch folder.")
_BATCHES = flags.DEFINE_integer("batches", 100, "Batches timed per configuration.")

BUCKETS = Buckets(seconds=(3.0, 6.0), tokens=(192, 256))
AUG = AugmentConfig(noise_prob=0.5, rir_prob=0.2, speed_prob=0.5, gain_prob=0.5,
                    noise_only_prob=0.05)


def noise_manifest():
  p = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                   "data", "noise", "manifest.jsonl")
  return p if os.path.exists(p) else ""


def time_pipeline(manifest, cache, threads, processes=0):
  cfg = PipelineConfig(batch_size=8, buckets=BUCKETS, augment=AUG, num_threads=threads,
                       hotword_prompt_prob=0.3)
  p = Pipeline(manifest, models.model_config("small"), Tokenizer.byte_level(), cfg, cache,
               noise_manifest())
  ds = p.dataset
  if processes:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=processes))
  it = iter(ds)
  next(it)  # warm-up (threads started, first batch built)
  t, utts, audio = time.perf_counter(), 0, 0.0
  for _ in range(_BATCHES.value):
    b = next(it)
    utts += len(b["wave_lengths"])
    audio += float(np.sum(b["wave_lengths"])) / 16000
  dt = time.perf_counter() - t
  return utts / dt, audio / dt


def time_training(size, manifest, cache):
  c = sft.get_config(f"s0,{size}")
  c.data.update(train=manifest, tokenizer="byte", batch_size=8, bucket_seconds=(3.0,),
                bucket_tokens=(192,))
  tok = Tokenizer.byte_level()
  mc = loop.model_config_for(c, tok)
  lc = loop.loss_config(c)
  mesh = mesh_lib.make_mesh({"data": -1})
  abstract = __import__("flax").linen.meta.unbox(jax.eval_shape(loop.init_fn(mc, lc),
                                                                jax.random.key(0)))
  tx = state_lib.make_optimizer(c, state_lib.trainable_mask(abstract, ("all",)))
  factory = state_lib.StateFactory(loop.init_fn(mc, lc), tx, mesh)
  state, shardings = factory.create(jax.random.key(0))
  model = steps.training_model(mc, 1.0)
  fn = jax.jit(lambda s, b: steps.train_step(s, b, model=model, lc=lc, tx=tx,
                                             lr_fn=state_lib.schedule(c)),
               in_shardings=(shardings, mesh_lib.batch_sharding(mesh)),
               out_shardings=(shardings, None), donate_argnums=(0,))
  pipe = Pipeline(manifest, mc, tok, loop.pipeline_config(c, True, 8), cache)
  it = iter(pipe)
  batch = mesh_lib.global_batch(next(it), mesh)
  state, m = fn(state, batch)
  jax.block_until_ready(m)
  times = []
  for _ in range(5):
    batch = mesh_lib.global_batch(next(it), mesh)
    t = time.perf_counter()
    state, m = fn(state, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  return 8 / float(np.median(times)), float(np.median(times))


def main(argv):
  del argv
  root = _WORKDIR.value
  corpus = os.path.join(root, "corpus")
  if not os.path.exists(os.path.join(corpus, "train.jsonl")):
    synth.write_corpus(corpus, 1000, seed=0)
  manifest = os.path.join(corpus, "train.jsonl")
  cache = os.path.join(root, "cache")
  print(f"noise bank: {noise_manifest() or 'none (augmentation without noise/RIR)'}")
  rows = []
  for threads in (1, 2, 4):
    rows.append((f"threads={threads}", *time_pipeline(manifest, cache, threads)))
  try:
    rows.append(("processes=2 (mp_prefetch)", *time_pipeline(manifest, cache, 1, processes=2)))
  except Exception as e:  # pylint: disable=broad-except
    print(f"worker processes failed: {type(e).__name__}: {e}")
  train = {size: time_training(size, manifest, cache) for size in ("tiny", "small")}
  print("\n| pipeline (augmentation on) | utterances/s | audio s/s |")
  print("|---|---:|---:|")
  for name, u, a in rows:
    print(f"| {name} | {u:.1f} | {a:.1f} |")
  best = max(u for _, u, _ in rows)
  print("\n| training consumption (batch 8 x 3 s) | step s | utterances/s | best pipeline / training |")
  print("|---|---:|---:|---:|")
  for size, (u, step_s) in train.items():
    print(f"| {size} | {step_s:.3f} | {u:.1f} | {best / u:.1f}x |")


if __name__ == "__main__":
  app.run(main)
