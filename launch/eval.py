r"""Scores a checkpoint on a manifest: batched greedy decoding, jiwer after normalisation.

  python launch/eval.py --checkpoint=runs/s4 --manifest=corpus/test.jsonl --output=report.json
  python launch/eval.py --checkpoint=runs/s5 --manifest=corpus/test.jsonl --output=ctc.json --path=ctc
  python launch/eval.py ... --path=rescore --ctc_weight=1.0   # CTC n-best rescored by the LLM

REPORT.json: top-level wer, cer, mer, num_utterances, substitutions/deletions/insertions,
hallucination_rate (empty references with output), and per-utterance rows (id, ref, hyp).
--checkpoint is a training workdir (newest checkpoint) or a converted model folder.
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

import json
import os
import tempfile

from absl import app, flags

from fun_asr_jax.data.bucketing import Buckets
from fun_asr_jax.data.pipeline import Pipeline, PipelineConfig
from fun_asr_jax.train import checkpoint, evaluation

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_MANIFEST = flags.DEFINE_string("manifest", None, "JSONL manifest (or a shard folder).")
_OUTPUT = flags.DEFINE_string("output", None, "Report path (JSON).")
_PATH = flags.DEFINE_enum("path", "llm", list(evaluation.PATHS), "Decode with the LLM, the "
                          "CTC branch, or the CTC n-best rescored by the LLM.")
_CTC_WEIGHT = flags.DEFINE_float("ctc_weight", 1.0, "--path=rescore: score = log P_llm + "
                                 "ctc_weight * log P_ctc.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Utterances per batch.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 128, "Decoding limit per utterance.")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 30.0, "Longest utterance (bucket limit).")


def main(argv):
  del argv
  cfg, params, tokenizer, _ = checkpoint.load_model(_CKPT.value)
  if tokenizer is None:
    raise app.UsageError(f"--checkpoint={_CKPT.value} has no tokenizer/ folder")
  params = {k: v for k, v in params.items() if k != "bestrq"}
  seconds = tuple(s for s in (4.0, 8.0, 16.0, 30.0, 60.0) if s < _MAX_SECONDS.value) + (
      _MAX_SECONDS.value,)
  buckets = Buckets(seconds=seconds, tokens=tuple(512 for _ in seconds))
  pcfg = PipelineConfig(batch_size=_BATCH.value, shuffle=False, repeat=False,
                        drop_remainder=False, include_targets=False, buckets=buckets)
  cache = os.path.join(tempfile.gettempdir(), "fun_asr_eval_cache")
  pipe = Pipeline(_MANIFEST.value, cfg, tokenizer, pcfg, cache)
  report = evaluation.evaluate(cfg, params, tokenizer, pipe, path=_PATH.value,
                               max_new_tokens=_MAX_NEW.value, ctc_weight=_CTC_WEIGHT.value)
  report["hotword_recall"] = evaluation.hotword_recall(report["utterances"])
  report.update(checkpoint=os.path.abspath(_CKPT.value), manifest=_MANIFEST.value,
                path=_PATH.value, skipped_too_long=pipe.stats.too_long,
                skipped_corrupt=pipe.stats.corrupt)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w", encoding="utf-8") as f:
    json.dump(report, f, ensure_ascii=False, indent=1)
  print(f"{_PATH.value}: WER {report['wer']:.4f} CER {report['cer']:.4f} MER {report['mer']:.4f} "
        f"on {report['num_utterances']} utterances -> {_OUTPUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "manifest", "output"])
  app.run(main)
