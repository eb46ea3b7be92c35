r"""Hotwords through a trained model: rare-name recall and false insertions, several ways.

  python bench/hotword_recall.py --checkpoint=DIR --workdir=/tmp/hotword_recall
  python bench/hotword_recall.py --train_minutes=55 --names=unseen    # trains the model too

Held-out synthetic speech (a fresh test split, seed 7: voices and sentences the model
never heard), decoded several ways with the same checkpoint:
  none       no hotwords in the prompt
  retrieval  the corpus's rare names plus --distractors invented ones (a list of ~1,000);
             each utterance's prompt gets what CTC-retrieval finds (inference/hotwords.py)
  whole      the corpus's rare names, all of them in every prompt (the release's way; the
             big list would not fit a prompt)
  ...+bias B the same prompts, and the LLM's decoding adds B nats to the next token of each
             hotword in the prompt (RetrievalConfig.bias, default 5), for each B in --biases
With --names=unseen the rare names are invented here (none of them in any training
corpus): --num_unseen utterances each mention one of 20 new names (12 Latin, 8 Chinese),
and the lists are built from those; the model cannot know them, so only the prompt can
give them. A model learns to take names from the prompt only if its training corpus has
too many names to memorise: --train_minutes trains one (small preset: CTC, then s0) on a
synthetic corpus whose rare names come from a pool of --train_pool invented names, with
each utterance's name in its prompt among distractors, and lists of distractors alone in
other prompts. Reported per way: recall of the reference's rare name in the hypothesis (utterances that
mention one), false insertions (utterances that mention none whose hypothesis contains a
list name), hotwords per prompt, and the mixed error rate.
"""

import dataclasses
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from fun_asr_jax import FunASR  # noqa: E402
from fun_asr_jax.data import manifest, synth  # noqa: E402
from fun_asr_jax.text.normalize import has_cjk, normalize  # noqa: E402
from fun_asr_jax.train.metrics import error_rates  # noqa: E402

from configs import quickstart  # noqa: E402  pylint: disable=wrong-import-order

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/hotword_recall", "Held-out data and results.")
_NUM = flags.DEFINE_integer("num_test", 160, "Held-out utterances (about a quarter with a "
                            "rare name).")
_DISTRACTORS = flags.DEFINE_integer("distractors", 1000, "Invented names added to the list.")
_NAMES = flags.DEFINE_enum("names", "corpus", ["corpus", "unseen"], "Rare names: the "
                           "synthetic corpus's own, or new ones no training corpus contains.")
_TRAIN_POOL = flags.DEFINE_integer("train_pool", 3000, "Size of the invented-name pool of the "
                                   "training corpus (SynthConfig.name_pool): --train_minutes "
                                   "uses it, --names=unseen excludes its names.")
_TRAIN_MINUTES = flags.DEFINE_float("train_minutes", 0.0, "Without --checkpoint: train a model "
                                    "for this long first (a fifth of it CTC).")
_TRAIN_UTTERANCES = flags.DEFINE_integer("train_utterances", 8000, "Its corpus size.")
_NUM_UNSEEN = flags.DEFINE_integer("num_unseen", 60, "--names=unseen: utterances that "
                                   "mention a new name.")
_NAMES_SEED = flags.DEFINE_integer("names_seed", 5, "--names=unseen: seed of the 20 new "
                                   "names (5: the recorded test; another seed gives a "
                                   "development set to choose settings on).")
_BIASES = flags.DEFINE_list("biases", ["5"], "Hotword decoding bonuses (nats) to try besides "
                            "none (RetrievalConfig.bias; 5 is the default).")
_THRESHOLD = flags.DEFINE_float("threshold", None, "Retrieval threshold (phoneme edits per "
                                "hotword phoneme; default RetrievalConfig's).")


def unseen_names(rng: random.Random) -> list[str]:
  """20 invented names (12 Latin, 8 Chinese) outside the synthetic corpus's lists."""
  known = set(synth.EN_RARE) | set(synth.ZH_RARE)
  if _TRAIN_POOL.value:
    known |= {n for part in synth.name_pool(_TRAIN_POOL.value) for n in part}
  out = []
  for make, count in ((synth.latin_name, 12), (synth.chinese_name, 8)):
    found = set()
    while len(found) < count:
      found.add(make(rng))
      found -= known
    out += sorted(found)
  return out


def dev_set() -> bool:
  return _NAMES_SEED.value != 5


def unseen_rows(folder: str, names: list[str], num: int) -> list[dict]:
  """`num` test-voice utterances, each mentioning one of `names` (cycled), as wav files."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import soundfile as sf  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.audio import io as audio_io  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.data import espeak  # pylint: disable=import-outside-toplevel
  path = os.path.join(folder, "unseen.jsonl")
  if os.path.exists(path):
    return manifest.read_jsonl(path)[0]
  os.makedirs(os.path.join(folder, "unseen"), exist_ok=True)
  tts, rows = espeak.synthesizer(), []
  for i in range(num):
    rng = np.random.RandomState(1000 + i + 100_000 * dev_set())  # other sentences, voices
    name = names[i % len(names)]
    lang = "zh" if has_cjk(name) else "en"
    text = (synth.mandarin_sentence if lang == "zh" else synth.english_sentence)(rng, name)
    voice = synth.voice_for(rng, lang, "test")
    pcm = tts.synth(text, voice=voice, rate=int(rng.uniform(140, 210)),
                    pitch=int(rng.uniform(25, 75)))
    wave = audio_io.resample(pcm.astype(np.float32) / 32768.0, tts.sample_rate, 16000)
    wave = wave * np.float32(0.9 / (np.abs(wave).max() + 1e-9))
    audio = os.path.join(folder, "unseen", f"{i:04d}.wav")
    sf.write(audio, wave, 16000)
    rows.append({"id": f"unseen-{i:04d}", "audio": audio, "text": text, "lang": lang,
                 "hotwords": [name], "voice": voice})
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
  return rows


def train_model(folder: str, minutes: float, pool: int) -> str:
  """Corpus with names from a pool of `pool`, CTC then s0 (small); returns the s0 workdir."""
  from fun_asr_jax.train import loop  # pylint: disable=import-outside-toplevel
  corpus = os.path.join(folder, f"names{pool}_corpus")
  if not os.path.exists(os.path.join(corpus, "test.jsonl")):
    synth.write_corpus(corpus, _TRAIN_UTTERANCES.value, seed=0, test_fraction=0.02,
                       cfg=synth.SynthConfig(name_pool=pool, hotword_share=0.5))
  train = os.path.join(corpus, "train.jsonl")
  noise = os.path.join(os.path.dirname(ROOT), "shared", "data", "noise", "manifest.jsonl")
  noise = noise if os.path.exists(noise) else ""
  first = quickstart.stage_config("ctc", "small", steps=2000, train=train, noise=noise)
  first.train.time_limit_minutes = minutes / 5
  loop.train(first, os.path.join(folder, f"names{pool}_ctc"))
  c = quickstart.stage_config("s0", "small", steps=8000, train=train, noise=noise)
  c.init_from = os.path.join(folder, f"names{pool}_ctc")
  c.data.update(hotword_prompt_prob=0.8, distractor_prompt_prob=0.3, num_distractors=3,
                bucket_tokens=(160, 224))  # room for a list of four names
  c.optim.ema_decay = 0.999
  c.train.update(time_limit_minutes=minutes * 4 / 5, save_every=500)
  out = os.path.join(folder, f"names{pool}_s0")
  loop.train(c, out)
  return out


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
    synth.write_corpus(corpus, _NUM.value * 10, seed=70 if dev_set() else 7, test_fraction=0.1)
  rows = [r for r in manifest.read_jsonl(os.path.join(corpus, "test.jsonl"))[0]
          if r["text"]][: _NUM.value]
  names = list(synth.EN_RARE) + list(synth.ZH_RARE)
  rng = random.Random(0)
  if _NAMES.value == "unseen":  # the corpus's names leave; new ones come in
    names = unseen_names(random.Random(_NAMES_SEED.value))
    rows = [r for r in rows if not r.get("hotwords")] + unseen_rows(
        _WORKDIR.value, names, _NUM_UNSEEN.value)
  distractors = set()
  while len(distractors) < _DISTRACTORS.value:
    distractors.add(synth.latin_name(rng) if rng.random() < 0.7
                    else synth.chinese_name(rng))
  big = names + sorted(distractors - set(names))
  checkpoint = _CKPT.value or train_model(_WORKDIR.value, _TRAIN_MINUTES.value,
                                          _TRAIN_POOL.value)
  asr = FunASR.load(checkpoint)
  if _THRESHOLD.value is not None:
    asr.retrieval = dataclasses.replace(asr.retrieval, threshold=_THRESHOLD.value)
  audio = [r["audio"] for r in rows]
  ways = {"none": asr.transcribe(audio, max_new_tokens=64)}
  for bias in [0.0] + [float(b) for b in _BIASES.value]:
    asr.retrieval = dataclasses.replace(asr.retrieval, bias=bias)
    tag = f"+bias {bias:g}" if bias else ""
    ways["retrieval" + tag] = asr.transcribe(audio, hotwords=big, max_new_tokens=64)
    ways["whole" + tag] = asr.transcribe(audio, hotwords=names, retrieve=False,
                                         max_new_tokens=64)
  report = {way: score(rows, res, names) for way, res in ways.items()}
  report["list_size"] = len(big)
  report["examples"] = [{"ref": r["text"], **{w: ways[w][i].text for w in ways},
                         "retrieved": ways["retrieval"][i].hotwords}
                        for i, r in enumerate(rows) if r.get("hotwords")][:8]
  report["names"] = _NAMES.value
  report["checkpoint"] = checkpoint
  out = os.path.join(_WORKDIR.value, f"hotword_recall_{_NAMES.value}.json")
  with open(out, "w", encoding="utf-8") as f:
    json.dump(report, f, ensure_ascii=False, indent=1)
  print(f"{'way':<21}{'recall':>8}{'false ins.':>12}{'hotwords/prompt':>17}{'MER':>8}")
  for way in ways:
    r = report[way]
    print(f"{way:<21}{r['recall']:>8.3f}{r['false_insertion']:>12.3f}"
          f"{r['hotwords_per_prompt']:>17.2f}{r['mer']:>8.3f}")
  print(f"{report['none']['num_mention']} utterances with a rare name, "
        f"{report['none']['num_plain']} without; retrieval list {len(big)} entries")


if __name__ == "__main__":
  flags.register_multi_flags_validator(
      ["checkpoint", "train_minutes"], lambda f: bool(f["checkpoint"]) or f["train_minutes"] > 0,
      "give --checkpoint, or --train_minutes to train a model")
  app.run(main)
