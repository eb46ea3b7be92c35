r"""Accuracy on real speech: FSDD digit sequences, speaker-disjoint; AISHELL CER.

  python bench/accuracy.py --workdir=/tmp/bench_acc                 # digits, small, 30 min
  python bench/accuracy.py --workdir=/tmp/bench_acc --task=aishell --minutes=20

digits: ../shared/tools/digit_sequences.py builds sequences from four FSDD speakers for
training and from the fifth (--test_speaker) for testing; the small preset trains from
scratch (all parameters, LLM loss + CTC loss) within --minutes, then the unseen speaker is
scored three ways: the LLM, the CTC branch, and the CTC n-best rescored by the LLM. Four
voices are few, so the recipe adds voices and conditions: espeak-ng digit sequences in many
synthetic voices (--tts), noise mixing (--noise_prob), speed and gain perturbation,
SpecAugment, and it scores a parameter EMA. The LLM reads the audio through CTC
compression (--ctc_compress_cap: one audio token per CTC label, so it starts reading ~1000
steps sooner than through every frame). aishell: an 80/20 split by utterance of
../shared/data/aishell, scored by CER. Results go to WORKDIR/accuracy_<task>.json.
"""

import json
import math
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # a CPU benchmark: no TPU probe with libtpu

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from configs import base, ctc, llm_copy, pretrain_bestrq, sft  # noqa: E402
from fun_asr_jax.data.bucketing import Buckets  # noqa: E402
from fun_asr_jax.data.pipeline import Pipeline, PipelineConfig  # noqa: E402
from fun_asr_jax.train import checkpoint, evaluation, loop  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")
_CALIBRATION = 300  # steps trained at the fitted schedule's start to measure the step rate

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/bench_accuracy", "Scratch and results.")
_TASK = flags.DEFINE_enum("task", "digits", ["digits", "aishell"], "Which corpus.")
_SIZE = flags.DEFINE_enum("size", "small", ["tiny", "small"], "Model preset.")
_MINUTES = flags.DEFINE_float("minutes", 30.0, "Training time budget (2 CPU cores).")
_STEPS = flags.DEFINE_integer("steps", 6000, "Schedule length (training stops at the budget "
                              "regardless). 0: fitted to the budget: the run trains "
                              f"{_CALIBRATION} steps, measures its step rate and resumes with "
                              "a cosine that ends with the budget (tried on a slow machine: "
                              "worse, the LLM starts reading later at a lower rate).")
_COMPRESS = flags.DEFINE_integer("ctc_compress_cap", 2, "CTC compression: the adaptor "
                                 "(downsampling 1) reads the encoder frames where the CTC "
                                 "best path starts a label, at most one per this many "
                                 "encoder frames (model.ctc_compress_cap). 0 = off: the "
                                 "preset's adaptor downsampling 2 over every frame.")
_TEST_SPEAKER = flags.DEFINE_enum("test_speaker", "theo", list(SPEAKERS), "Held-out speaker.")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 4000, "Training sequences.")
_NUM_TEST = flags.DEFINE_integer("num_test", 300, "Test sequences.")
_SET = flags.DEFINE_multi_string("set", [], "Config overrides KEY=VALUE (as --config.KEY=VALUE "
                                  "on launch/train.py), e.g. --set=model.llm.num_layers=4.")
_RUN = flags.DEFINE_string("run", "", "Run folder name under --workdir (default "
                           "run_TASK_SIZE); an existing run resumes.")
_TTS = flags.DEFINE_integer("tts", 4000, "digits: add this many espeak-ng digit sequences in "
                            "many synthetic voices to the training data (0 = FSDD only).")
_TTS_WEIGHT = flags.DEFINE_float("tts_weight", 0.3, "Sampling share of the synthetic voices.")
_NOISE_PROB = flags.DEFINE_float("noise_prob", 0.5, "Share of training clips mixed with a "
                                 "../shared/data/noise clip at 5-25 dB SNR (0 = none).")
_EMA = flags.DEFINE_float("ema", 0.999, "Parameter EMA decay; the EMA is what gets scored "
                          "(0 = none).")
_CTC_WEIGHT = flags.DEFINE_float("ctc_weight", 2.0, "The 'rescore' path: CTC n-best scored "
                                 "by log P_llm + ctc_weight * log P_ctc.")
_CTC_FIRST = flags.DEFINE_float("ctc_first", 0.0, "Share of the budget spent training the "
                                "encoder with CTC alone before the joint stage (0 = none).")
_COPY_FIRST = flags.DEFINE_float("llm_copy_first", 0.0, "Share of the budget spent teaching "
                                 "the from-scratch LLM to copy the transcript out of its "
                                 "audio slots (configs/llm_copy.py) before the joint stage.")
_BESTRQ_FIRST = flags.DEFINE_float("bestrq_first", 0.0, "Share of the budget spent on Best-RQ "
                                   "self-supervised pretraining of the encoder, on the same "
                                   "(augmented) training audio, before anything else (0 = none).")


def digits_corpus(root):
  out = {}
  train_spk = ",".join(s for s in SPEAKERS if s != _TEST_SPEAKER.value)
  for split, spk, num, seed in (("train", train_spk, _NUM_TRAIN.value, 0),
                                ("test", _TEST_SPEAKER.value, _NUM_TEST.value, 1)):
    folder = os.path.join(root, f"digits_{split}")
    if not os.path.exists(os.path.join(folder, "manifest.jsonl")):
      subprocess.run([sys.executable, os.path.join(SHARED, "tools", "digit_sequences.py"),
                      "--manifest", os.path.join(SHARED, "data", "fsdd", "manifest.jsonl"),
                      "--out", folder, "--num", str(num), "--seed", str(seed),
                      "--speakers", spk], check=True)
    out[split] = os.path.join(folder, "manifest.jsonl")
  if _TTS.value:
    out["tts"] = synthetic_digits(root, _TTS.value)
  return out


def synthetic_digits(root, num, seed=2):
  """`num` espeak-ng digit sequences (1-6 digits) in many voices, band-limited to 8 kHz.

  Extra "speakers" for a corpus of four: 6 English voices x 16 variants, random pitch,
  pitch range, rate and pauses. Written at FSDD's 8 kHz so both sources share one band.
  """
  from scipy import signal  # pylint: disable=import-outside-toplevel
  import soundfile as sf  # pylint: disable=import-outside-toplevel
  from fun_asr_jax.data import espeak, synth  # pylint: disable=import-outside-toplevel
  folder = os.path.join(root, f"digits_tts{num}")
  manifest = os.path.join(folder, "manifest.jsonl")
  if os.path.exists(manifest):
    return manifest
  os.makedirs(os.path.join(folder, "audio"), exist_ok=True)
  tts, rng = espeak.synthesizer(), random.Random(seed)
  variants = synth.TRAIN_VARIANTS + synth.TEST_VARIANTS
  with open(manifest + ".tmp", "w", encoding="utf-8") as f:
    for i in range(num):
      words = [rng.choice(synth.EN_NUMBERS) for _ in range(rng.randint(1, 6))]
      voice = rng.choice(synth.EN_VOICES) + (("+" + v) if (v := rng.choice(variants)) else "")
      wave = tts.synth(" ".join(words), voice=voice, rate=rng.randint(110, 210),
                       pitch=rng.randint(20, 80), pitch_range=rng.randint(20, 80),
                       word_gap=rng.randint(0, 20), seed=i)
      g = math.gcd(8000, tts.sample_rate)
      wave = signal.resample_poly(wave.astype(np.float32) / 32768, 8000 // g, tts.sample_rate // g)
      rel = f"audio/tts_{i:05d}.wav"
      sf.write(os.path.join(folder, rel), wave, 8000, subtype="PCM_16")
      f.write(json.dumps({"id": f"tts_{i:05d}", "audio": rel, "text": " ".join(words),
                          "lang": "en", "speaker": voice, "duration": len(wave) / 8000}) + "\n")
  os.replace(manifest + ".tmp", manifest)
  return manifest


def aishell_corpus(root):
  src = os.path.join(SHARED, "data", "aishell", "manifest.jsonl")
  rows = [json.loads(l) for l in open(src)]
  random.Random(0).shuffle(rows)
  cut = int(0.8 * len(rows))
  out = {}
  for split, part in (("train", rows[:cut]), ("test", rows[cut:])):
    path = os.path.join(root, f"aishell_{split}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
      for r in part:
        r = dict(r, audio=os.path.join(os.path.dirname(src), r["audio"]))
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
    out[split] = path
  return out


def config(manifests, task, stage="s0"):
  c = {"ctc": lambda: ctc.get_config(_SIZE.value),
       "bestrq": lambda: pretrain_bestrq.get_config(_SIZE.value),
       "copy": lambda: llm_copy.get_config(_SIZE.value),
       "s0": lambda: sft.get_config(f"s0,{_SIZE.value}")}[stage]()
  c.data.train = manifests["train"]
  if manifests.get("tts"):
    c.data.train = f"{manifests['train']}@{1 - _TTS_WEIGHT.value},{manifests['tts']}@{_TTS_WEIGHT.value}"
  c.data.tokenizer = "sentencepiece:300" if task == "digits" else "sentencepiece:1500"
  c.data.batch_size = 8
  if task == "digits":
    c.data.bucket_seconds, c.data.bucket_tokens = (2.0, 3.0, 4.5, 7.0), (48, 64, 80, 112)
  else:
    c.data.bucket_seconds, c.data.bucket_tokens = (8.0, 14.0), (160, 192)
  c.data.augment.update(speed_prob=0.5, gain_prob=0.5)
  if _NOISE_PROB.value > 0:  # each FSDD speaker has one microphone and room: noise varies them
    c.data.noise = os.path.join(SHARED, "data", "noise", "manifest.jsonl")
    c.data.augment.update(noise_prob=_NOISE_PROB.value, snr_db=(5.0, 25.0))
  if _COMPRESS.value > 0:  # every stage, so that init_from finds the same shapes
    c.model.update(ctc_compress=True, ctc_compress_cap=_COMPRESS.value)
    c.model.adaptor.downsample = 1
  c.optim.ema_decay = _EMA.value if stage not in ("bestrq", "copy") else 0.0
  c.data.spec_augment = stage != "bestrq"  # Best-RQ masks its own input
  if stage != "bestrq":
    c.loss.ctc_weight = 1.0  # the encoder learns its acoustics mostly from CTC
    c.optim.update(lr=1e-3, warmup_steps=100)
  c.train.update(num_steps=_STEPS.value or 6000, log_every=25, save_every=300,
                 time_limit_minutes=_MINUTES.value, compile_ahead=True)
  for item in _SET.value:
    base.apply_override(c, item)
  return c


def score(workdir, manifest, path, task):
  cfg, params, tok, _ = checkpoint.load_model(workdir)
  # scoring buckets hold every test utterance (6-digit sequences at 8 kHz run past 5 s)
  buckets = Buckets(seconds=(3.0, 6.5, 10.0), tokens=(64, 112, 160)) if task == "digits" else \
      Buckets(seconds=(16.0,), tokens=(192,))
  pipe = Pipeline(manifest, cfg, tok, PipelineConfig(
      batch_size=16, shuffle=False, repeat=False, drop_remainder=False, include_targets=False,
      buckets=buckets), os.path.join(_WORKDIR.value, "cache"))
  return evaluation.evaluate(cfg, params, tok, pipe, path=path, max_new_tokens=64,
                             ctc_weight=_CTC_WEIGHT.value)


def train_main(c, run, t_start):
  """The main stage; with --steps=0 its cosine schedule is fitted to what is left of the
  budget (machines differ twice over in speed, and a fixed schedule that the budget cuts
  ends with the learning rate still high and the parameter average lagging). The rate is
  measured on the first `_CALIBRATION` steps (warmup, where the schedule's length does not
  matter yet); the plan is kept in the run folder, so a rerun resumes with the same
  schedule."""
  plan = os.path.join(run, "fitted_schedule.json")
  if not _STEPS.value and not os.path.exists(plan):
    first = c.copy_and_resolve_references()
    first.train.update(num_steps=100 * _CALIBRATION, stop_after_steps=_CALIBRATION)
    t = time.time()
    done = loop.train(first, run)["step"]
    rate = step_rate(run, done)
    compiling = max(0.0, time.time() - t - done / rate)  # the restart compiles as much again
    left = 60 * _MINUTES.value - (time.time() - t_start)
    steps = done + int(0.97 * rate * max(0.0, left - compiling))
    with open(plan, "w", encoding="utf-8") as f:
      json.dump({"num_steps": steps, "calibrated_at": done, "steps_per_s": rate,
                 "seconds_left": left, "compile_seconds": compiling}, f)
  if os.path.exists(plan):
    with open(plan, encoding="utf-8") as f:
      c.train.num_steps = json.load(f)["num_steps"]
  c.train.time_limit_minutes = max(0.01, _MINUTES.value - (time.time() - t_start) / 60)
  return dict(loop.train(c, run), num_steps=c.train.num_steps)


def step_rate(run, done: int) -> float:
  """Median steps/s logged in the second half of the calibration (compiles are over)."""
  with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  rows = [r for r in rows if r.get("split") == "train" and "steps_per_s" in r]
  late = [r["steps_per_s"] for r in rows if r["step"] > done // 2]
  return float(np.median(late or [r["steps_per_s"] for r in rows]))


def main(argv):
  del argv
  root = _WORKDIR.value
  os.makedirs(root, exist_ok=True)
  task = _TASK.value
  manifests = digits_corpus(root) if task == "digits" else aishell_corpus(root)
  run = os.path.join(root, _RUN.value or f"run_{task}_{_SIZE.value}")
  t = time.time()
  c = config(manifests, task)
  previous, spent = "", 0.0  # warm-up stages, each initialising the next
  for stage, share in (("bestrq", _BESTRQ_FIRST.value), ("ctc", _CTC_FIRST.value),
                       ("copy", _COPY_FIRST.value)):
    if share > 0:
      first = config(manifests, task, stage)
      first.init_from = previous
      first.train.time_limit_minutes = _MINUTES.value * share
      first.train.num_steps = int((_STEPS.value or 6000) * 2 * share)  # ~2x faster steps
      loop.train(first, f"{run}_{stage}")
      previous, spent = f"{run}_{stage}", spent + share
  if previous:
    c.init_from = previous
    c.train.time_limit_minutes = _MINUTES.value - (time.time() - t) / 60
    c.train.num_steps = int((_STEPS.value or 6000) * (1 - spent))
  result = train_main(c, run, t)
  minutes = (time.time() - t) / 60
  report = {"task": task, "size": _SIZE.value, "train_minutes": minutes,
            "steps": result["step"], "schedule_steps": result["num_steps"],
            "test_speaker": _TEST_SPEAKER.value if task == "digits" else None}
  for path in evaluation.PATHS:
    r = score(run, manifests["test"], path, task)
    report[path] = {k: r[k] for k in ("wer", "cer", "mer", "num_utterances", "substitutions",
                                      "deletions", "insertions")}
    report[path]["examples"] = r["utterances"][:5]
  with open(os.path.join(root, f"accuracy_{task}.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, ensure_ascii=False, indent=1)
  print(json.dumps({k: v for k, v in report.items()}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
  app.run(main)
