r"""Streaming: first-partial latency, real-time factor, and streaming vs offline error rates.

  python bench/streaming.py --checkpoint=/tmp/bench_acc/run_digits_small \
      --manifest=/tmp/bench_acc/digits_test/manifest.jsonl --num=100

Each utterance is fed to `inference.streaming.Stream` in chunks as if it arrived live.
First-partial latency: compute time of the first partial after its chunk is complete
(what a user waits beyond the chunk itself). RTF: all compute for the stream (every
partial + the final decode) over the audio's duration. Error rates: the last CTC partial
and the final result against the references, beside offline CTC and LLM decoding of the
same files (`FunASR.transcribe`).

Cost over a long stream (--cost_seconds): the checkpoint's geometry made streamable (chunked
causal Conformer, 160 ms chunks, per-frame frontend; random weights, so timing only) fed
one long stream of the test audio; compute per partial early and late in the stream,
incremental encoding (each frame once, cached keys and values) against re-encoding all
audio so far at every chunk.
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from fun_asr_jax.audio import io as audio_io  # noqa: E402
from fun_asr_jax.data import manifest  # noqa: E402
from fun_asr_jax.inference.asr import FunASR  # noqa: E402
from fun_asr_jax.inference.streaming import Stream  # noqa: E402
from fun_asr_jax.train.metrics import error_rates  # noqa: E402

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_MANIFEST = flags.DEFINE_string("manifest", None, "JSONL with audio and text.")
_NUM = flags.DEFINE_integer("num", 100, "Utterances.")
_CHUNK = flags.DEFINE_float("chunk_seconds", 0.64, "Chunk length.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 64, "Decoding limit.")
_COST_SECONDS = flags.DEFINE_float("cost_seconds", 30.0, "Long-stream cost comparison: stream "
                                   "length (0 = skip).")
_OUTPUT = flags.DEFINE_string("output", "", "Also write the report (JSON) here.")


def streamable_copy(asr: FunASR) -> FunASR:
  """The same geometry as a chunk-streamable model, random weights."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import flax  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.models import fun_asr  # pylint: disable=import-outside-toplevel
  c = asr.cfg
  cfg = dataclasses.replace(
      c, frontend=dataclasses.replace(c.frontend, utterance_norm=False),
      encoder=dataclasses.replace(c.encoder, chunk_size=4, causal_conv=True))
  params = flax.core.meta.unbox(fun_asr.init_params(cfg, jax.random.key(0)))["params"]
  return FunASR(cfg, params, asr.tokenizer)


def long_stream_cost(asr: FunASR, waves, seconds: float) -> dict:
  """Mean compute per partial in the first and last fifth of one long stream."""
  model = streamable_copy(asr)
  wave = np.concatenate(waves)
  while len(wave) < seconds * audio_io.TARGET_RATE:
    wave = np.concatenate([wave, wave])
  wave = wave[: int(seconds * audio_io.TARGET_RATE)]
  out = {}
  for name, reencode in (("incremental", False), ("reencode", True)):
    Stream(model, _CHUNK.value, reencode=reencode).accept(wave)  # warm-up: compile
    parts = Stream(model, _CHUNK.value, reencode=reencode).accept(wave)
    fifth = max(1, len(parts) // 5)
    out[name] = {"partials": len(parts),
                 "first_fifth_ms": 1000 * float(np.mean([p.compute_seconds for p in parts[:fifth]])),
                 "last_fifth_ms": 1000 * float(np.mean([p.compute_seconds for p in parts[-fifth:]])),
                 "total_s": float(sum(p.compute_seconds for p in parts))}
  out["stream_seconds"] = seconds
  return out


def main(argv):
  del argv
  asr = FunASR.load(_CKPT.value)
  rows = manifest.read_jsonl(_MANIFEST.value)[0][: _NUM.value]
  waves = []
  for r in rows:
    x, rate = audio_io.load(r["audio"])
    waves.append(audio_io.resample(audio_io.to_mono(x), rate))
  refs = [r["text"] for r in rows]
  # warm-up: compile every padded length the streams and the offline pass will use
  for w in waves[:8]:
    s = Stream(asr, _CHUNK.value, max_new_tokens=_MAX_NEW.value)
    s.accept(w)
    s.finish()
  offline = asr.transcribe(waves, max_new_tokens=_MAX_NEW.value)
  first, compute, audio_s, last_partial, final = [], 0.0, 0.0, [], []
  for w in waves:
    s = Stream(asr, _CHUNK.value, max_new_tokens=_MAX_NEW.value)
    partials = s.accept(w)
    t = time.perf_counter()
    tail = s.accept(np.zeros(0, np.float32))  # nothing new: the stream is complete
    done = s.finish()
    finish_s = time.perf_counter() - t
    if partials:
      first.append(partials[0].compute_seconds)
    compute += sum(p.compute_seconds for p in partials + tail) + finish_s
    audio_s += len(w) / audio_io.TARGET_RATE
    last_partial.append(partials[-1].text if partials else "")
    final.append(done.text)
  report = {
      "utterances": len(rows), "chunk_seconds": _CHUNK.value,
      "first_partial_latency_ms": {"mean": 1000 * float(np.mean(first)),
                                   "p95": 1000 * float(np.percentile(first, 95))},
      "rtf": compute / audio_s,
      "wer": {"stream_last_partial_ctc": error_rates(refs, last_partial)["wer"],
              "offline_ctc": error_rates(refs, [r.ctc_text for r in offline])["wer"],
              "stream_final": error_rates(refs, final)["wer"],
              "offline_llm": error_rates(refs, [r.text for r in offline])["wer"]}}
  if _COST_SECONDS.value > 0:
    report["long_stream_cost"] = long_stream_cost(asr, waves, _COST_SECONDS.value)
  print(json.dumps(report, indent=1))
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
    with open(_OUTPUT.value, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "manifest"])
  app.run(main)
