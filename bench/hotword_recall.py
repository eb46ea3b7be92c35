r"""Hotwords through a trained model: rare-name recall and false insertions, three ways.

  python bench/hotword_recall.py --checkpoint=DIR --workdir=/tmp/hotword_recall

Held-out synthetic speech (a fresh test split, seed 7: voices and sentences the model
never heard), decoded three ways with the same checkpoint:
  none       no hotwords in the prompt
  retrieval  the corpus's rare names plus --distractors invented ones (a list of ~1,000);
             each utterance's prompt gets what CTC-retrieval finds (inference/hotwords.py)
  whole      the corpus's rare names, all of them in every prompt (the release's way; the
             big list would not fit a prompt)
Reported per way: recall of the reference's rare name in the hypothesis (utterances that
mention one), false insertions (utterances that mention none whose hypothesis contains a
list name), hotwords per prompt, and the mixed error rate.
"""

import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from bench import hotwords as hotword_bench  # noqa: E402
from fun_asr_jax import FunASR  # noqa: E402
from fun_asr_jax.data import manifest, synth  # noqa: E402
from fun_asr_jax.text.normalize import normalize  # noqa: E402
from fun_asr_jax.train.metrics import error_rates  # noqa: E402

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/hotword_recall", "Held-out data and results.")
_NUM = flags.DEFINE_integer("num_test", 160, "Held-out utterances (about a quarter with a "
                            "rare name).")
_DISTRACTORS = flags.DEFINE_integer("distractors", 1000, "Invented names added to the list.")


def contains(hyp: str, word: str) -> bool:
  return normalize(word).replace(" ", "") in normalize(hyp).replace(" ", "")


def score(rows, results, names) -> dict:
  mention = [(r, t) for r, t in zip(rows, results) if r.get("hotwords")]
  plain = [(r, t) for r, t in zip(rows, results) if not r.get("hotwords") and r["text"]]
  hits = sum(all(contains(t.text, h) for h in r["hotwords"]) for r, t in mention)
  false = sum(any(contains(t.text, n) and not contains(r["text"], n) for n in names)
              for r, t in plain)
  rates = error_rates([r["text"] for r, _ in mention + plain], [t.text for _, t in mention + plain])
  return {"recall": hits / max(1, len(mention)), "false_insertion": false / max(1, len(plain)),
          "hotwords_per_prompt": sum(len(t.hotwords) for t in results) / max(1, len(results)),
          "mer": rates["mer"], "num_mention": len(mention), "num_plain": len(plain)}


def main(argv):
  del argv
  os.makedirs(_WORKDIR.value, exist_ok=True)
  corpus = os.path.join(_WORKDIR.value, "heldout")
  if not os.path.exists(os.path.join(corpus, "test.jsonl")):
    synth.write_corpus(corpus, _NUM.value * 10, seed=7, test_fraction=0.1)
  rows = [r for r in manifest.read_jsonl(os.path.join(corpus, "test.jsonl"))[0]
          if r["text"]][: _NUM.value]
  names = list(synth.EN_RARE) + list(synth.ZH_RARE)
  rng = random.Random(0)
  distractors = set()
  while len(distractors) < _DISTRACTORS.value:
    distractors.add(hotword_bench.latin_name(rng) if rng.random() < 0.7
                    else hotword_bench.chinese_name(rng))
  big = names + sorted(distractors - set(names))
  asr = FunASR.load(_CKPT.value)
  audio = [r["audio"] for r in rows]
  ways = {"none": asr.transcribe(audio, max_new_tokens=64),
          "retrieval": asr.transcribe(audio, hotwords=big, max_new_tokens=64),
          "whole": asr.transcribe(audio, hotwords=names, retrieve=False, max_new_tokens=64)}
  report = {way: score(rows, res, names) for way, res in ways.items()}
  report["list_size"] = len(big)
  report["examples"] = [{"ref": r["text"], **{w: ways[w][i].text for w in ways},
                         "retrieved": ways["retrieval"][i].hotwords}
                        for i, r in enumerate(rows) if r.get("hotwords")][:8]
  with open(os.path.join(_WORKDIR.value, "hotword_recall.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, ensure_ascii=False, indent=1)
  print(f"{'way':<11}{'recall':>8}{'false ins.':>12}{'hotwords/prompt':>17}{'MER':>8}")
  for way in ways:
    r = report[way]
    print(f"{way:<11}{r['recall']:>8.3f}{r['false_insertion']:>12.3f}"
          f"{r['hotwords_per_prompt']:>17.2f}{r['mer']:>8.3f}")
  print(f"{report['none']['num_mention']} utterances with a rare name, "
        f"{report['none']['num_plain']} without; retrieval list {len(big)} entries")


if __name__ == "__main__":
  flags.mark_flag_as_required("checkpoint")
  app.run(main)
