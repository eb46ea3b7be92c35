r"""The embedded default: generate a corpus, then run every training stage and score each.

  python launch/quickstart.py --workdir=/tmp/fun_asr_quickstart

Makes WORKDIR/corpus (espeak-ng speech: English, Mandarin, code-switched, hotwords, noise
and silence), then Best-RQ -> CTC -> s0 (all, LLM from scratch) -> s1 .. s4 -> s5 (CTC
branch), each stage starting from the previous checkpoint, and prints a table of error
rates per stage on held-out voices. The last stage's folder (WORKDIR/grpo) is the final
checkpoint:

  python launch/transcribe.py --checkpoint=/tmp/fun_asr_quickstart/grpo AUDIO.wav
  python launch/eval.py --checkpoint=/tmp/fun_asr_quickstart/grpo \
      --manifest=/tmp/fun_asr_quickstart/corpus/test.jsonl --output=report.json

The run keeps to a wall-clock budget (--minutes): each stage trains for its step count or
for its share of the time left, whichever ends first, so a slower machine runs fewer steps
instead of running over.
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

import json
import os
import time

from absl import app, flags, logging

from configs import quickstart
from fun_asr_jax.data import synth
from fun_asr_jax.data.bucketing import Buckets
from fun_asr_jax.data.pipeline import Pipeline, PipelineConfig
from fun_asr_jax.train import checkpoint, evaluation, loop

_WORKDIR = flags.DEFINE_string("workdir", None, "Everything goes here.")
_SIZE = flags.DEFINE_enum("size", "small", ["tiny", "small"], "Model preset.")
_N = flags.DEFINE_integer("num_utterances", 1200, "Training utterances to synthesise.")
_SCALE = flags.DEFINE_float("steps_scale", 1.0, "Multiplies every stage's step count.")
_EVAL_N = flags.DEFINE_integer("eval_batches", 6, "Eval batches of 8 per stage (0 = all).")
_STAGES = flags.DEFINE_list("stages", [n for n, _, _ in quickstart.STAGES], "Stages to run.")
_MINUTES = flags.DEFINE_float("minutes", 18.5, "Wall-clock budget for the whole run (corpus, "
                              "training, scoring); 0 = step counts only.")


def evaluate_stage(workdir: str, test_manifest: str, path: str, max_batches: int) -> dict:
  cfg, params, tok, _ = checkpoint.load_model(workdir)
  params = {k: v for k, v in params.items() if k != "bestrq"}
  pipe = Pipeline(test_manifest, cfg, tok, PipelineConfig(
      batch_size=8, shuffle=False, repeat=False, drop_remainder=False, include_targets=False,
      buckets=Buckets(seconds=(4.0, 6.0), tokens=(96, 128))),
      os.path.join(os.path.dirname(workdir), "data_cache"))
  return evaluation.evaluate(cfg, params, tok, pipe, path=path, max_new_tokens=48,
                             max_batches=max_batches)


def main(argv):
  del argv
  root = os.path.abspath(_WORKDIR.value)
  corpus = os.path.join(root, "corpus")
  t0 = time.time()
  if not os.path.exists(os.path.join(corpus, "test.jsonl")):
    logging.info("synthesising %d utterances into %s", _N.value, corpus)
    synth.write_corpus(corpus, _N.value, seed=0, test_fraction=0.1)
  train_m, test_m = os.path.join(corpus, "train.jsonl"), os.path.join(corpus, "test.jsonl")
  noise = os.path.join(os.path.dirname(_bootstrap.ROOT), "shared", "data", "noise",
                       "manifest.jsonl")  # real noise when the project's ../shared is present
  rows, previous, overheads = [], "", []
  steps_of = {n: s for n, _, s in quickstart.STAGES}
  todo = [n for n in steps_of if n in _STAGES.value]
  for i, name in enumerate(todo):
    t = time.time()
    cfg = quickstart.stage_config(name, _SIZE.value, max(1, int(steps_of[name] * _SCALE.value)),
                                  train_m, test_m, noise if os.path.exists(noise) else "")
    cfg.init_from = previous
    if _MINUTES.value > 0:
      cfg.train.time_limit_minutes = quickstart.stage_minutes(
          _MINUTES.value, (t - t0) / 60, todo[i:], overheads)
    stage_dir = os.path.join(root, name)
    result = loop.train(cfg, stage_dir)
    previous = stage_dir
    row = {"stage": name, "steps": result["step"], "train_min": (time.time() - t) / 60}
    if name != "bestrq":
      path = "ctc" if name in ("ctc", "s5") else "llm"
      r = evaluate_stage(stage_dir, test_m, path, _EVAL_N.value)
      row.update(path=path, wer=r["wer"], cer=r["cer"], mer=r["mer"],
                 hallucination=r["hallucination_rate"], n=r["num_utterances"])
    overheads.append((time.time() - t - result["train_seconds"]) / 60)
    rows.append(row)
  with open(os.path.join(root, "quickstart.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print(f"\n{'stage':<8}{'steps':>6}{'min':>6}  {'path':<5}{'WER':>8}{'CER':>8}{'MER':>8}"
        f"{'halluc.':>9}{'utts':>6}")
  for r in rows:
    if "wer" in r:
      print(f"{r['stage']:<8}{r['steps']:>6}{r['train_min']:>6.1f}  {r['path']:<5}"
            f"{r['wer']:>8.3f}{r['cer']:>8.3f}{r['mer']:>8.3f}{r['hallucination']:>9.2f}"
            f"{r['n']:>6}")
    else:
      print(f"{r['stage']:<8}{r['steps']:>6}{r['train_min']:>6.1f}  (self-supervised)")
  print(f"\ntotal {(time.time() - t0) / 60:.1f} min; final checkpoint: {previous}")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
