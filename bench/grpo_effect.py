r"""What GRPO changes: hallucination on noise, hotword recall, WER on clean speech.

  python launch/quickstart.py --workdir=/tmp/qs            # gives an SFT checkpoint (s4)
  python bench/grpo_effect.py --sft=/tmp/qs/s4 --workdir=/tmp/grpo_effect --minutes=15

Held-out sets, built once in WORKDIR: a fresh synthetic test split (seed 7, voices and
sentences the SFT run never saw) for clean WER and hotword recall (hotwords in the prompt),
and noise-only clips cut from ../shared/data/noise (empty references) for the
hallucination rate. The SFT checkpoint is scored, GRPO (configs/grpo.py, small) trains
from it on the quickstart corpus, and the result is scored the same way.
Results: WORKDIR/grpo_effect_RUN.json and a table.

To choose a setting without looking at the held-out sets above, build a development pair
in another workdir (`--heldout_seed=8 --noise_seed=12`: other sentences and voices, other
noise cuts), train the candidates there, then score only the chosen run on the recorded
sets with `--score_only=RUN_DIR`.
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import base as base_config  # noqa: E402
from configs import grpo as grpo_config  # noqa: E402
from fun_asr_jax.audio import io as audio_io  # noqa: E402
from fun_asr_jax.data import synth  # noqa: E402
from fun_asr_jax.data.bucketing import Buckets  # noqa: E402
from fun_asr_jax.data.pipeline import Pipeline, PipelineConfig  # noqa: E402
from fun_asr_jax.train import checkpoint, evaluation, loop  # noqa: E402

NOISE = os.path.join(os.path.dirname(ROOT), "shared", "data", "noise", "manifest.jsonl")

_SFT = flags.DEFINE_string("sft", None, "SFT workdir to start from (e.g. quickstart's s4).")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/grpo_effect", "Scratch and results.")
_TRAIN = flags.DEFINE_string("train", "", "Training manifest; default: the SFT run's own.")
_STEPS = flags.DEFINE_integer("steps", 60, "GRPO steps (training stops at the budget).")
_MINUTES = flags.DEFINE_float("minutes", 15.0, "GRPO time budget.")
_NUM_TEST = flags.DEFINE_integer("num_test", 160, "Held-out synthetic utterances.")
_NUM_NOISE = flags.DEFINE_integer("num_noise", 48, "Held-out noise-only clips.")
_LR = flags.DEFINE_float("lr", 2e-5, "GRPO peak learning rate.")
_NOISE_ONLY = flags.DEFINE_float("noise_only_prob", 0.15, "Share of training utterances "
                                 "replaced by noise-only clips (empty references).")
_HELDOUT_SEED = flags.DEFINE_integer("heldout_seed", 7, "Synthesis seed of the held-out "
                                     "speech (7: the recorded set; another for development).")
_NOISE_SEED = flags.DEFINE_integer("noise_seed", 11, "Seed of the held-out noise cuts.")
_SCORE_ONLY = flags.DEFINE_string("score_only", "", "Train nothing: score this GRPO run "
                                  "directory (and the SFT) on WORKDIR's held-out sets.")
_RUN = flags.DEFINE_string("run", "grpo", "Run folder under --workdir (an existing one resumes).")
_SET = flags.DEFINE_multi_string("set", [], "Config overrides KEY=VALUE, e.g. "
                                 "--set=rl.group_size=8 --set=rl.temperature=1.2.")


def noise_clips(folder: str, n: int) -> str:
  """`n` clips of 1-4 s cut at random from the real noise recordings; empty references."""
  path = os.path.join(folder, "noise_only.jsonl")
  if os.path.exists(path):
    return path
  rows = [json.loads(l) for l in open(NOISE)]
  sources = [r for r in rows if r.get("kind") == "noise"]
  rng = np.random.default_rng(_NOISE_SEED.value)
  os.makedirs(os.path.join(folder, "noise"), exist_ok=True)
  with open(path, "w") as f:
    for i in range(n):
      src = sources[i % len(sources)]
      x, sr = audio_io.load(os.path.join(os.path.dirname(NOISE), src["audio"]))
      x = audio_io.resample(audio_io.to_mono(x), sr)
      seconds = rng.uniform(1.0, 4.0)
      start = rng.integers(0, max(1, len(x) - int(16000 * seconds)))
      clip = x[start: start + int(16000 * seconds)] * rng.uniform(0.3, 1.0)
      name = f"noise/clip{i:03d}.wav"
      sf.write(os.path.join(folder, name), clip, 16000)
      f.write(json.dumps({"id": f"noise{i:03d}", "audio": name, "text": "", "kind": "noise"})
              + "\n")
  return path


def held_out(folder: str) -> dict:
  corpus = os.path.join(folder, "heldout")
  if not os.path.exists(os.path.join(corpus, "test.jsonl")):
    synth.write_corpus(corpus, _NUM_TEST.value * 10, seed=_HELDOUT_SEED.value,
                       test_fraction=0.1)
  rows = [json.loads(l) for l in open(os.path.join(corpus, "test.jsonl"), encoding="utf-8")]
  speech = [r for r in rows if r["text"]]
  out = {"speech": os.path.join(corpus, "speech.jsonl"),
         "hotwords": os.path.join(corpus, "hotwords.jsonl"),
         "noise": noise_clips(folder, _NUM_NOISE.value)}
  for key, part in (("speech", speech), ("hotwords", [r for r in speech if r.get("hotwords")])):
    with open(out[key], "w", encoding="utf-8") as f:
      for r in part:
        f.write(json.dumps(dict(r, audio=os.path.join(corpus, r["audio"])),
                           ensure_ascii=False) + "\n")
  return out


def score(workdir: str, sets: dict) -> dict:
  cfg, params, tok, _ = checkpoint.load_model(workdir)
  cache = os.path.join(_WORKDIR.value, "cache")

  def run(manifest, hotword_prob=0.0):
    pipe = Pipeline(manifest, cfg, tok, PipelineConfig(
        batch_size=8, shuffle=False, repeat=False, drop_remainder=False,
        include_targets=False, hotword_prompt_prob=hotword_prob,
        buckets=Buckets(seconds=(4.0, 8.0), tokens=(160, 256))), cache)
    return evaluation.evaluate(cfg, params, tok, pipe, path="llm", max_new_tokens=48)

  clean = run(sets["speech"])
  noise = run(sets["noise"])
  hot = run(sets["hotwords"], hotword_prob=1.0)
  return {"wer": clean["wer"], "mer": clean["mer"], "cer": clean["cer"],
          "hallucination_rate": noise["hallucination_rate"],
          "hotword_recall": evaluation.hotword_recall(hot["utterances"]),
          "hotword_set_mer": hot["mer"], "num_speech": clean["num_scored"],
          "num_noise": noise["num_empty_refs"], "num_hotword_utts": len(hot["utterances"]),
          "noise_examples": [r["hyp"] for r in noise["utterances"][:8]]}


def train_grpo(sft: str, run_dir: str) -> tuple[int, float]:
  """GRPO (configs/grpo.py, small) from the SFT checkpoint; returns (steps, minutes)."""
  src_cfg = json.load(open(os.path.join(sft, "config.json")))
  c = grpo_config.get_config("small")
  c.init_from = sft
  c.data.train = _TRAIN.value or src_cfg["data"]["train"]
  c.data.noise = NOISE if os.path.exists(NOISE) else ""
  c.data.update(batch_size=4, bucket_seconds=(4.0, 6.0), bucket_tokens=(160, 192))
  c.data.augment.update(noise_only_prob=_NOISE_ONLY.value,
                        noise_prob=0.2 if c.data.noise else 0.0)
  c.optim.update(lr=_LR.value)
  c.rl.update(group_size=4, max_new_tokens=32)
  c.train.update(num_steps=_STEPS.value, log_every=5, save_every=0,
                 time_limit_minutes=_MINUTES.value)
  for item in _SET.value:
    base_config.apply_override(c, item)
  t = time.time()
  result = loop.train(c, run_dir)
  return result["step"], (time.time() - t) / 60


def main(argv):
  del argv
  root = _WORKDIR.value
  os.makedirs(root, exist_ok=True)
  sets = held_out(root)
  sft = os.path.abspath(_SFT.value)
  before = score(sft, sets)
  print("before:", json.dumps(before, ensure_ascii=False))
  if _SCORE_ONLY.value:
    run_dir, name = os.path.abspath(_SCORE_ONLY.value), _RUN.value
    steps, minutes = None, None
  else:
    run_dir, name = os.path.join(root, _RUN.value), _RUN.value
    steps, minutes = train_grpo(sft, run_dir)
  after = score(run_dir, sets)
  report = {"sft": sft, "run_dir": run_dir, "grpo_steps": steps, "grpo_minutes": minutes,
            "heldout_seed": _HELDOUT_SEED.value, "noise_seed": _NOISE_SEED.value,
            "lr": _LR.value, "noise_only_prob": _NOISE_ONLY.value, "set": _SET.value,
            "score_only": bool(_SCORE_ONLY.value), "before": before, "after": after}
  with open(os.path.join(root, f"grpo_effect_{name}.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, ensure_ascii=False, indent=1)
  print(f"\n{'':<10}{'halluc.':>9}{'hotword R':>11}{'WER':>8}{'MER':>8}")
  for label, r in (("SFT", before), ("GRPO", after)):
    print(f"{label:<10}{r['hallucination_rate']:>9.3f}{r['hotword_recall']:>11.3f}"
          f"{r['wer']:>8.3f}{r['mer']:>8.3f}")
  if steps is not None:
    print(f"GRPO: {steps} steps in {minutes:.1f} min")


if __name__ == "__main__":
  flags.mark_flag_as_required("sft")
  app.run(main)
