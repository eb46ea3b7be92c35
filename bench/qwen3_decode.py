r"""Qwen3 greedy decoding: our KV-cache decoder against transformers' `generate`, same weights.

  python bench/qwen3_decode.py [--sizes=tiny,small,0.6b] [--batches=1,16] [--new_tokens=32]

Per size a random transformers Qwen3ForCausalLM is saved and imported with
fun_asr_jax.convert.hf_qwen3 (the same weights on both sides, fp32). Each side decodes
--new_tokens tokens greedily after a --prompt-token prompt (end token disabled, so both
decode every token), with its KV cache; medians of --repeats timed runs after a warm-up
(compilation excluded). Reported: generated tokens/s for each, their ratio, and the share
of rows whose generated tokens are identical. Ours runs in each of --layouts against one
transformers measurement (before/after in one run):
  scan      the training layout: layers under nn.scan, weights stacked [L, ...]
  unrolled  one module per layer on its own weights, kernels [in, out]
  out_major unrolled, kernels [out, in]
  decode    `decoding_layout`, what every decoder runs: unrolled, with whichever kernel
            layout this machine measured faster (printed as decode:in or decode:out)
A decoding step reads every weight once (the tied embedding is the head), so each side's
weight bytes per step times its steps/s is the memory traffic it sustains; the script
measures, in the same run, what this machine streams at best (a jitted matrix-vector
product over a matrix of the model's size) and reports both sides against it: at batch 1
that is decoding's roofline.
"""

import dataclasses
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from fun_asr_jax import decoding  # noqa: E402
from fun_asr_jax.convert import hf_qwen3  # noqa: E402
from fun_asr_jax.models.llm import Qwen3, decoding_layout, unstack_layers  # noqa: E402

GEOMETRY = {  # hidden, layers, heads, kv heads, head dim, mlp, vocab
    "tiny": (64, 2, 4, 2, 16, 128, 512),
    "small": (256, 4, 4, 2, 64, 768, 4096),
    "0.6b": (1024, 28, 16, 8, 128, 3072, 151936),  # Qwen3-0.6B
}

_SIZES = flags.DEFINE_list("sizes", ["tiny", "small", "0.6b"], "Geometries.")
_BATCHES = flags.DEFINE_list("batches", ["1", "16"], "Batch sizes.")
_PROMPT = flags.DEFINE_integer("prompt", 32, "Prompt tokens.")
_NEW = flags.DEFINE_integer("new_tokens", 32, "Generated tokens per row.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs (median).")
_LAYOUTS = flags.DEFINE_list("layouts", ["decode"], "Our parameter layouts to time: scan, "
                             "unrolled, out_major, decode (see above).")


def hf_model(size: str, folder: str):
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  d, layers, heads, kv, hd, mlp, vocab = GEOMETRY[size]
  torch.manual_seed(0)
  cfg = transformers.Qwen3Config(vocab_size=vocab, hidden_size=d, intermediate_size=mlp,
                                 num_hidden_layers=layers, num_attention_heads=heads,
                                 num_key_value_heads=kv, head_dim=hd, tie_word_embeddings=True,
                                 rope_theta=1e6, max_position_embeddings=4096)
  model = transformers.Qwen3ForCausalLM(cfg).eval()
  model.save_pretrained(folder)
  return model


def timed(fn, repeats: int):
  fn()  # warm-up (and compilation)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def read_bandwidth(nbytes: int, repeats: int) -> float:
  """Bytes/s a jitted fp32 matrix-vector product streams over `nbytes` of matrix."""
  k = 1024
  w = jnp.ones((max(1, nbytes // (4 * k)), k), jnp.float32)
  v = jnp.ones((k,), jnp.float32)
  matvec = jax.jit(lambda w, v: w @ v)
  t, _ = timed(lambda: jax.block_until_ready(matvec(w, v)), max(repeats, 5))
  return w.size * 4 / t


def layout(name: str, cfg, params):
  """Converted once, before timing, as inference.asr.FunASR does at load."""
  if name == "decode":
    return decoding_layout(cfg, params)
  if name == "out_major":
    return decoding_layout(cfg, params, out_major=True)
  if name == "unrolled":
    return (dataclasses.replace(cfg, scan_layers=False),
            unstack_layers(params, cfg.num_layers))
  assert name == "scan", name
  return cfg, params


def ours(cfg, params, ids, new_tokens):
  model = Qwen3(cfg)
  sampling = decoding.SamplingConfig(max_new_tokens=new_tokens, eos_ids=(), pad_id=0)

  @jax.jit
  def run(params, ids):
    v = {"params": params}
    emb = model.apply(v, ids, method=Qwen3.embed)
    embed = lambda t: model.apply(v, t, method=Qwen3.embed)
    return decoding.generate(decoding.model_decoder(model, v), embed, cfg, emb,
                             jnp.zeros(ids.shape, jnp.float32), sampling)["tokens"]
  ids = jnp.asarray(ids)
  return lambda: np.asarray(jax.block_until_ready(run(params, ids)))


def theirs(model, ids, new_tokens):
  import torch  # pylint: disable=import-outside-toplevel
  ids = torch.tensor(ids)

  def run():
    with torch.no_grad():
      out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           eos_token_id=None, pad_token_id=0, use_cache=True)
    return out[:, ids.shape[1]:].numpy()
  return run


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(os.cpu_count() or 1)
  print(f"{'size':<6}{'batch':>6}{'layout':>11}{'ours tok/s':>12}{'HF tok/s':>10}"
        f"{'speed-up':>10}{'same tokens':>13}{'ours GB/s':>11}{'HF GB/s':>9}"
        f"{'machine GB/s':>14}")
  for size in _SIZES.value:
    with tempfile.TemporaryDirectory() as folder:
      model = hf_model(size, folder)
      cfg, params = hf_qwen3.load(folder)
    params = jax.tree.map(jnp.asarray, params)
    nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
    peak = read_bandwidth(nbytes, _REPEATS.value)  # weights in cache for small geometries
    for b in map(int, _BATCHES.value):
      ids = np.random.RandomState(b).randint(0, GEOMETRY[size][-1], (b, _PROMPT.value))
      t_hf, out_hf = timed(theirs(model, ids, _NEW.value), _REPEATS.value)
      n = b * _NEW.value
      for name in _LAYOUTS.value:
        lcfg, lparams = layout(name, cfg, params)
        t_ours, out_ours = timed(ours(lcfg, lparams, ids, _NEW.value), _REPEATS.value)
        if name == "decode":
          name = "decode:" + ("out" if lcfg.out_major else "in")
        same = float(np.mean(np.all(out_ours == out_hf, axis=1)))
        traffic = lambda t: nbytes * _NEW.value / t / 1e9  # weight bytes read per second
        print(f"{size:<6}{b:>6}{name:>11}{n / t_ours:>12.1f}{n / t_hf:>10.1f}"
              f"{t_hf / t_ours:>9.2f}x{same:>13.2f}{traffic(t_ours):>11.1f}"
              f"{traffic(t_hf):>9.1f}{peak / 1e9:>14.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)
