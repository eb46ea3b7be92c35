r"""Hotword retrieval: speed over a 10,000-entry list and recall on simulated first passes.

  python bench/hotwords.py [--num_hotwords=10000] [--num_queries=400]

The list mixes invented Latin-script names and Chinese names (rare surname + given
characters). Queries are template sentences (fun_asr_jax.data.synth) that mention one
list entry as a CTC first pass might write it: spelt by ear (letters swapped for
same-sounding ones, the name split in two, a character replaced by a homophone), plus as
many sentences that mention none. Reported: retrieval time per utterance (mean, p95),
recall of the mentioned entry in the prompt, false retrievals on the others, and the
prompt size against putting the whole list into the prompt (the release's way).
"""

import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from fun_asr_jax.data import synth  # noqa: E402
from fun_asr_jax.inference.hotwords import HotwordIndex, RetrievalConfig  # noqa: E402
from fun_asr_jax.text.normalize import has_cjk  # noqa: E402

_NUM = flags.DEFINE_integer("num_hotwords", 10000, "List size.")
_QUERIES = flags.DEFINE_integer("num_queries", 400, "Sentences (half mention an entry).")
_THRESHOLD = flags.DEFINE_float("threshold", RetrievalConfig.threshold, "Retrieval threshold.")
_VOWEL = flags.DEFINE_float("vowel_cost", RetrievalConfig.vowel_cost, "Vowel substitution cost.")

# spelt by ear: what a first pass trained on ordinary words writes for a rare name
_BY_EAR = [("ph", "f"), ("ck", "k"), ("c", "k"), ("qu", "kw"), ("x", "ks"), ("ee", "ea"),
           ("ai", "ay"), ("oa", "o"), ("th", "t"), ("z", "s"), ("ou", "ow")]
_HOMOPHONES = {"霁": "季", "川": "穿", "梓": "子", "萱": "宣", "晗": "含", "弈": "亦", "泠": "玲",
               "苒": "然", "霈": "佩", "暄": "宣", "珩": "横", "琰": "眼", "璟": "井", "婕": "杰",
               "翊": "亦", "曜": "要", "澈": "彻", "昀": "云", "瑾": "紧", "琛": "晨", "颢": "浩",
               "龚": "工", "阙": "却", "蔺": "吝", "靳": "近", "芮": "瑞", "邬": "乌", "蓟": "季"}


def by_ear(name, rng):
  """A first-pass spelling of `name`."""
  if has_cjk(name):
    return "".join(_HOMOPHONES.get(c, c) if rng.random() < 0.5 else c for c in name)
  out = name.lower()
  for a, b in rng.sample(_BY_EAR, len(_BY_EAR)):
    if a in out and rng.random() < 0.6:
      out = out.replace(a, b)
  if len(out) > 6 and rng.random() < 0.5:  # split into two "words"
    cut = len(out) // 2
    out = out[:cut] + " " + out[cut:]
  return out


def sentence(rng, mention=None):
  zh = has_cjk(mention) if mention is not None else rng.random() < 0.4
  if zh:
    head = rng.choice(synth.ZH_SUBJECTS) + rng.choice(synth.ZH_VERBS)
    return head + (mention or rng.choice(synth.ZH_OBJECTS)) + rng.choice(synth.ZH_PLACES)
  words = [rng.choice(synth.EN_SUBJECTS), rng.choice(synth.EN_VERBS)]
  words.append(mention if mention else rng.choice(synth.EN_OBJECTS))
  return " ".join(words + [rng.choice(synth.EN_PLACES)])


def main(argv):
  del argv
  rng = random.Random(0)
  names = set()
  while len(names) < _NUM.value:
    names.add(synth.latin_name(rng) if rng.random() < 0.7 else synth.chinese_name(rng))
  names = sorted(names)
  t = time.perf_counter()
  index = HotwordIndex(names, RetrievalConfig(threshold=_THRESHOLD.value,
                                               vowel_cost=_VOWEL.value))
  build_s = time.perf_counter() - t
  queries = []
  for i in range(_QUERIES.value):
    if i % 2 == 0:
      target = rng.choice(names)
      queries.append((sentence(rng, by_ear(target, rng)), target))
    else:
      queries.append((sentence(rng), None))
  index.retrieve(queries[0][0])  # warm caches
  times, hits, mentioned, false_any, prompt_words = [], 0, 0, 0, []
  for text, target in queries:
    t = time.perf_counter()
    got = [w for w, _ in index.retrieve(text)]
    times.append(time.perf_counter() - t)
    prompt_words.append(len(got))
    if target is None:
      false_any += bool(got)
    else:
      mentioned += 1
      hits += target in got
  ms = np.array(times) * 1000
  whole = sum(len(n) for n in names) + 2 * len(names)
  print(f"hotwords {len(index)} (index built in {build_s:.2f} s), queries {len(queries)}")
  print(f"retrieval ms/utterance: mean {ms.mean():.2f}, p95 {np.percentile(ms, 95):.2f}, "
        f"max {ms.max():.2f}")
  print(f"recall of the mentioned entry: {hits / mentioned:.3f} ({hits}/{mentioned})")
  print(f"sentences without an entry that retrieved something: "
        f"{false_any / (len(queries) - mentioned):.3f}")
  print(f"hotwords per prompt: mean {np.mean(prompt_words):.2f}, max {max(prompt_words)}; "
        f"the whole list would add ~{whole} characters to every prompt")


if __name__ == "__main__":
  app.run(main)
