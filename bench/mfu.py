r"""MFU of the training step on this CPU: achieved matmul FLOP/s over the measured peak.

  python bench/mfu.py [--cases=small,nano_blocks] [--steps=5]

The peak is measured first, in the same process: the median FLOP/s of a 2048^3 fp32
matmul (and bf16 with fp32 accumulation). Each case then runs the real jitted train step
(loop.jitted_step, the `s0` stage: every parameter trained, LLM + CTC loss) on a fixed
batch; its FLOPs are counted on the jaxpr (train/flops.py: every matmul and convolution,
scanned layers times their count, remat recompute included; XLA's cost analysis would
count a scanned stack once). MFU = FLOPs / median step time / peak.

Cases: `small` (the CPU preset, batch 8 x 4 s) and `nano_blocks` (Fun-ASR-Nano widths,
encoder 512 / LLM 1024 with the real vocabulary, but 4 encoder blocks and 2 LLM layers so
a step fits this machine's time, batch 4 x 4 s).
"""

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import sft  # noqa: E402
from fun_asr_jax.train import aot  # noqa: E402
from fun_asr_jax.train.flops import count_flops  # noqa: E402

_CASES = flags.DEFINE_list("cases", ["small", "nano_blocks"], "Which models.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (median).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")


def matmul_peak(dtype, n: int = 2048, reps: int = 10) -> float:
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
  f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
  f(a).block_until_ready()
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n**3 / statistics.median(times)


def case_config(name: str):
  if name == "small":
    c = sft.get_config("s0,small")
    return c, 8
  c = sft.get_config("s0,nano")
  c.model.encoder.update(num_blocks=4, tp_blocks=2, remat="none")
  c.model.llm.update(num_layers=2, remat="none")
  c.model.ctc.decoder.num_layers = 1
  c.mesh.update(data=-1, fsdp=1, tensor=1)
  return c, 4


def concrete_batch(abstract: dict, vocab: int, num_audio: int) -> dict:
  """Arrays of the abstract batch's shapes holding a plausible utterance layout."""
  rng = np.random.default_rng(0)
  out = {}
  for k, spec in abstract.items():
    shape = spec.shape
    if k == "waveform":
      out[k] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    elif k == "wave_lengths":
      out[k] = np.full(shape, abstract["waveform"].shape[1], np.int32)
    elif k in ("tokens", "ctc_labels"):
      out[k] = rng.integers(1, vocab - 3, shape).astype(np.int32)
    elif k == "audio_mask":
      m = np.zeros(shape, bool)
      m[:, 4: 4 + num_audio] = True
      out[k] = m
    elif k == "target_mask":
      m = np.zeros(shape, bool)
      m[:, 8 + num_audio: 40 + num_audio] = True
      out[k] = m
    elif k == "ctc_label_paddings":
      out[k] = (np.arange(shape[1])[None] >= 24).astype(np.float32).repeat(shape[0], 0)
    else:
      out[k] = np.zeros(shape, spec.dtype)
  return {k: jnp.asarray(v) for k, v in out.items()}


def main(argv):
  del argv
  peak32, peak16 = matmul_peak(jnp.float32), matmul_peak(jnp.bfloat16)
  peak = peak16 if _DTYPE.value == "bfloat16" else peak32
  print(f"matmul peak on {jax.device_count()} device(s): fp32 {peak32 / 1e9:.1f} GFLOP/s, "
        f"bf16 (fp32 accumulation) {peak16 / 1e9:.1f} GFLOP/s")
  from fun_asr_jax.models.fun_asr import num_audio_tokens  # pylint: disable=import-outside-toplevel
  print(f"{'case':<13}{'params':>9}{'GFLOP/step':>12}{'step s':>9}{'GFLOP/s':>9}{'MFU':>7}")
  for name in _CASES.value:
    cfg, b = case_config(name)
    for part in ("encoder", "adaptor", "llm"):
      cfg.model[part].dtype = _DTYPE.value
    p = aot.prepare(cfg, jax.devices(), b, 4.0, text_tokens=64)
    state, _ = p.factory.create(jax.random.key(0))
    batch = concrete_batch(p.batch, p.mc.llm.vocab_size,
                           num_audio_tokens(p.mc, p.batch["waveform"].shape[1]))
    flops = count_flops(p.step, state, batch)
    compiled = p.step.lower(state, batch).compile()
    state, m = compiled(state, batch)  # warm-up
    jax.block_until_ready(m)
    times = []
    for _ in range(_STEPS.value):
      t = time.perf_counter()
      state, m = compiled(state, batch)
      jax.block_until_ready((state, m))
      times.append(time.perf_counter() - t)
    dt = statistics.median(times)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    print(f"{name:<13}{n_params / 1e6:>8.1f}M{flops / 1e9:>12.1f}{dt:>9.3f}"
          f"{flops / dt / 1e9:>9.1f}{100 * flops / dt / peak:>6.1f}%", flush=True)


if __name__ == "__main__":
  app.run(main)
