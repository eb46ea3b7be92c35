r"""Compile cost of a training run: one program per length bucket, and how long each takes.

  python bench/compile_buckets.py [--sizes=tiny,small] [--stage=s0]

A run compiles its train step once per batch shape, and batch shapes are the config's
buckets (data.bucket_seconds x data.bucket_tokens; five by default: 2/4/8/16/30 s), so a
run of any length compiles at most five programs (launch/train.py logs each one and
`compiled_programs`). This measures the compile time of each bucket's program for the
real step (loop.jitted_step), and the FLOPs each runs (jaxpr count).
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import sft  # noqa: E402
from fun_asr_jax.data.pipeline import bucket_shape  # noqa: E402
from fun_asr_jax.train import aot  # noqa: E402
from fun_asr_jax.train.flops import count_flops  # noqa: E402

_SIZES = flags.DEFINE_list("sizes", ["tiny", "small"], "Presets.")
_STAGE = flags.DEFINE_string("stage", "s0", "SFT stage.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Utterances per batch.")


def main(argv):
  del argv
  print(f"{'size':<7}{'bucket':>8}{'tokens':>8}{'compile s':>11}{'GFLOP/step':>12}")
  for size in _SIZES.value:
    cfg = sft.get_config(f"{_STAGE.value},{size}")
    total = 0.0
    buckets = list(zip(cfg.data.bucket_seconds, cfg.data.bucket_tokens))
    for seconds, tokens in buckets:
      p = aot.prepare(cfg, jax.devices(), _BATCH.value, seconds, text_tokens=0)
      # the bucket's token length, as the pipeline pads to it
      samples = p.batch["waveform"].shape[1]
      p.batch.update({k: jax.ShapeDtypeStruct(bucket_shape(k, v.shape, samples, tokens), v.dtype)
                      for k, v in p.batch.items()})
      t = time.perf_counter()
      p.step.lower(p.state, p.batch).compile()
      dt = time.perf_counter() - t
      total += dt
      flops = count_flops(p.step, p.state, p.batch)
      print(f"{size:<7}{seconds:>7.0f}s{tokens:>8}{dt:>11.1f}{flops / 1e9:>12.1f}", flush=True)
    print(f"{size:<7}{'all':>8}{'':>8}{total:>11.1f}   ({len(buckets)} programs)")


if __name__ == "__main__":
  app.run(main)
