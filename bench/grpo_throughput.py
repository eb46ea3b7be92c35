r"""GRPO rollout and step throughput, and what sharing the encoder across a group saves.

  python bench/grpo_throughput.py --sizes=tiny,small

For each preset (random weights, byte tokenizer, a batch of 4 utterances of 3 s with
references from the embedded corpus' sentence templates, G = 4 samples of 32 tokens at
temperature 1; the end token is disabled so every row decodes all 32 tokens and both
variants do the same decoding work):
  - rollout tokens/s with the audio encoded once per utterance and shared by its group
    (what grpo.rollout does) against re-encoding it for every sample (the batch repeated G
    times before the encoder), same program otherwise;
  - the full GRPO train step (rollout, rewards, reference and policy passes, update).
Medians of 5 timed calls after a warm-up call.
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import models  # noqa: E402
from fun_asr_jax.data import synth  # noqa: E402
from fun_asr_jax.models.fun_asr import FunASR, init_params, num_audio_tokens  # noqa: E402
from fun_asr_jax.rl import grpo, units  # noqa: E402
from fun_asr_jax.text import prompts  # noqa: E402
from fun_asr_jax.text.tokenizer import Tokenizer  # noqa: E402
from fun_asr_jax.train import state as state_lib  # noqa: E402

_SIZES = flags.DEFINE_list("sizes", ["tiny", "small"], "Presets to measure.")
_G = flags.DEFINE_integer("group_size", 4, "Samples per utterance.")
_N = flags.DEFINE_integer("max_new_tokens", 32, "Tokens per sample.")
_B = flags.DEFINE_integer("batch", 4, "Utterances per step.")


def make_batch(cfg, tok, b):
  """`b` synthetic utterances (3 s bucket) as a training batch with references."""
  rng = np.random.RandomState(0)
  texts = [synth.english_sentence(rng) for _ in range(b)]
  waves = [rng.normal(0, 0.05, 48000).astype(np.float32) for _ in range(b)]
  lays = [prompts.layout(tok, num_audio_tokens(cfg, 48000), prompts.task_prompt(), t)
          for t in texts]
  batch = prompts.collate(lays, tok.pad_id, length=max(len(l.tokens) for l in lays) + 8)
  labels = [tok.encode(t) for t in texts]
  w = max(map(len, labels))
  batch.update(waveform=np.stack(waves), wave_lengths=np.full(b, 48000, np.int32),
               ctc_labels=np.array([l + [0] * (w - len(l)) for l in labels], np.int32),
               ctc_label_paddings=np.array([[0.0] * len(l) + [1.0] * (w - len(l))
                                            for l in labels], np.float32),
               is_noise=np.zeros(b, bool))
  return {k: jnp.asarray(v) for k, v in batch.items()}


def timed(fn, *args):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(5):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def measure(size):
  tok = Tokenizer.byte_level()
  cfg = models.model_config(size, tok.vocab_size)
  params = nn.meta.unbox(init_params(cfg, jax.random.key(0)))["params"]
  model = FunASR(cfg)
  batch = make_batch(cfg, tok, _B.value)
  g, n = _G.value, _N.value
  gcfg = grpo.GRPOConfig(group_size=g, max_new_tokens=n, beta=0.04)
  no_eos = -1  # every row samples all n tokens
  shared = jax.jit(lambda p, k: grpo.rollout(model, p, batch, k, gcfg, no_eos, tok.pad_id))
  repeated = {k: jnp.repeat(v, g, axis=0) for k, v in batch.items()}
  per_sample = jax.jit(lambda p, k: grpo.rollout(
      model, p, repeated, k, grpo.GRPOConfig(group_size=1, max_new_tokens=n), no_eos,
      tok.pad_id))
  key = jax.random.key(1)
  t_shared = timed(shared, params, key)
  t_per = timed(per_sample, params, key)
  tokens = _B.value * g * n
  tx = optax.apply_if_finite(optax.adamw(1e-5), 10)
  state = state_lib.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                               rng=jax.random.key(0))
  tables = units.build_tables(tok).as_arrays()
  step = jax.jit(lambda s: grpo.train_step(s, params, batch, tables, model=model, cfg=gcfg,
                                           tx=tx, lr_fn=lambda _: 1e-5, eos_id=tok.eos_id,
                                           pad_id=tok.pad_id))
  t_step = timed(step, state)
  return {"size": size, "rollout_s": t_shared, "rollout_tok_s": tokens / t_shared,
          "reencode_s": t_per, "reencode_tok_s": tokens / t_per, "speedup": t_per / t_shared,
          "step_s": t_step}


def main(argv):
  del argv
  rows = [measure(s) for s in _SIZES.value]
  print(f"\nB={_B.value} utterances x G={_G.value} samples x {_N.value} tokens, 3 s audio")
  print(f"{'size':<7}{'rollout tok/s':>15}{'re-encode tok/s':>17}{'speed-up':>10}"
        f"{'GRPO step s':>13}")
  for r in rows:
    print(f"{r['size']:<7}{r['rollout_tok_s']:>15.1f}{r['reencode_tok_s']:>17.1f}"
          f"{r['speedup']:>10.2f}{r['step_s']:>13.3f}")


if __name__ == "__main__":
  app.run(main)
