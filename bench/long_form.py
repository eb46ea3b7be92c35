r"""Long-form transcription: peak memory and time against recording length, and what cutting
and stitching costs in accuracy.

  python bench/long_form.py --checkpoint=DIR --manifest=FILE.jsonl --minutes=1,5,10 \
      [--segment_seconds=30] [--output=REPORT.json]

One recording per length is built from the manifest's utterances in order, each followed by
a pause of 0.3-1.5 s of quiet noise, and transcribed by `FunASR.transcribe` (energy VAD,
pieces of at most --segment_seconds, decoded in batches, stitched with timestamps). Each
length runs in a fresh process that loads the model and transcribes the recording twice: the
first pass compiles the programs its pieces need, the second is timed while a thread samples
the resident memory. Memory is bounded when what the second pass adds above the resident
memory before it stays flat as the recording grows (the waveform itself, 3.8 MB a minute at
16 kHz float32, is loaded before).

Accuracy: WER of the stitched transcript against the joined references, beside the same
utterances transcribed one by one (the difference is what segmentation costs).
"""

import json
import os
import resource
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from fun_asr_jax.audio import io as audio_io  # noqa: E402
from fun_asr_jax.data import manifest  # noqa: E402
from fun_asr_jax.inference.asr import FunASR  # noqa: E402
from fun_asr_jax.train.metrics import error_rates  # noqa: E402

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_MANIFEST = flags.DEFINE_string("manifest", None, "JSONL with audio and text.")
_MINUTES = flags.DEFINE_list("minutes", ["1", "5", "10"], "Recording lengths.")
_SEGMENT = flags.DEFINE_float("segment_seconds", 30.0, "Longest VAD piece.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Decoding limit per piece.")
_OUTPUT = flags.DEFINE_string("output", "", "Also write the report (JSON) here.")
_CHILD = flags.DEFINE_float("child_minutes", 0.0, "Internal: measure this length and print "
                            "one JSON line.")

_RATE = audio_io.TARGET_RATE


def recording(rows, seconds: float, seed: int = 0):
  """The manifest's utterances in order, pauses between -> (wave [N], their texts)."""
  rng = np.random.default_rng(seed)
  parts, refs, total = [], [], 0
  i = 0
  while total < seconds * _RATE:
    r = rows[i % len(rows)]
    x, rate = audio_io.load(r["audio"])
    w = audio_io.resample(audio_io.to_mono(x), rate)
    pause = (1e-3 * rng.standard_normal(int(rng.uniform(0.3, 1.5) * _RATE))).astype(np.float32)
    parts += [w, pause]
    refs.append(r["text"])
    total += len(w) + len(pause)
    i += 1
  return np.concatenate(parts), refs  # whole utterances: slightly over `seconds`


def rss_mb() -> float:
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024


class PeakRSS(threading.Thread):
  """Samples the resident set every 20 ms while a block runs."""

  def __init__(self):
    super().__init__(daemon=True)
    self.peak, self.done = rss_mb(), threading.Event()

  def run(self):
    while not self.done.wait(0.02):
      self.peak = max(self.peak, rss_mb())

  def __enter__(self):
    self.start()
    return self

  def __exit__(self, *exc):
    self.done.set()
    self.join()
    self.peak = max(self.peak, rss_mb())


def measure_child(rows, minutes: float) -> dict:
  """Runs in its own process: memory and time of one long transcription.

  The recording is transcribed twice: the first pass compiles every program its pieces
  need; the second is timed, and its peak resident memory above the resident memory
  before it is what transcription itself holds.
  """
  asr = FunASR.load(_CKPT.value)
  wave, refs = recording(rows, minutes * 60)
  kw = {"max_new_tokens": _MAX_NEW.value, "segment_seconds": _SEGMENT.value}
  asr.transcribe([wave], **kw)
  before = rss_mb()
  t = time.perf_counter()
  with PeakRSS() as peak:
    out = asr.transcribe([wave], **kw)[0]
  seconds = time.perf_counter() - t
  starts = [w["start"] for w in out.timestamps]
  return {"minutes": minutes, "audio_s": len(wave) / _RATE, "audio_mb": wave.nbytes / 2**20,
          "error": out.error, "rss_mb_before": before, "peak_rss_mb": peak.peak,
          "peak_above_before_mb": peak.peak - before,
          "max_rss_mb_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "seconds": seconds, "rtf": seconds / (len(wave) / _RATE),
          "timestamps_in_order": starts == sorted(starts),
          "last_timestamp_s": out.timestamps[-1]["end"] if out.timestamps else 0.0,
          "hyp": out.text, "refs": refs}


def one_by_one(rows) -> list[str]:
  asr = FunASR.load(_CKPT.value)
  return [t.text for t in asr.transcribe([r["audio"] for r in rows],
                                         max_new_tokens=_MAX_NEW.value)]


def main(argv):
  del argv
  rows = [r for r in manifest.read_jsonl(_MANIFEST.value)[0] if r["text"]]
  if _CHILD.value:
    print("RESULT " + json.dumps(measure_child(rows, _CHILD.value), ensure_ascii=False))
    return
  report = {"checkpoint": _CKPT.value, "segment_seconds": _SEGMENT.value, "lengths": []}
  for m in map(float, _MINUTES.value):
    cmd = [sys.executable, __file__, f"--checkpoint={_CKPT.value}",
           f"--manifest={_MANIFEST.value}", f"--segment_seconds={_SEGMENT.value}",
           f"--max_new_tokens={_MAX_NEW.value}", f"--child_minutes={m}"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = [l for l in res.stdout.splitlines() if l.startswith("RESULT ")]
    if res.returncode or not line:
      raise SystemExit(f"{m} min: the measuring process failed:\n{res.stderr[-3000:]}")
    r = json.loads(line[0][len("RESULT "):])
    r["wer_stitched"] = error_rates([" ".join(r["refs"])], [r["hyp"]])["wer"]
    r["num_utterances"] = len(r["refs"])
    del r["hyp"], r["refs"]
    report["lengths"].append(r)
    print(json.dumps(r), flush=True)
  n = report["lengths"][-1]["num_utterances"]  # the longest recording's utterances
  rows = [rows[i % len(rows)] for i in range(n)]
  hyps = one_by_one(rows)
  report["one_by_one"] = {"num_utterances": n,
                          "wer": error_rates([" ".join(r["text"] for r in rows)],
                                             [" ".join(h for h in hyps if h)])["wer"],
                          "wer_per_utterance": error_rates([r["text"] for r in rows],
                                                           hyps)["wer"]}
  print(json.dumps(report["one_by_one"]))
  print("\n| minutes | audio MB | RSS before MB | peak RSS MB | peak above before MB | "
        "s | RTF | WER stitched | timestamps in order |")
  print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  for r in report["lengths"]:
    print(f"| {r['minutes']:g} | {r['audio_mb']:.1f} | {r['rss_mb_before']:.0f} | "
          f"{r['peak_rss_mb']:.0f} | {r['peak_above_before_mb']:.0f} | {r['seconds']:.1f} | "
          f"{r['rtf']:.3f} | {r['wer_stitched']:.3f} | {r['timestamps_in_order']} |")
  o = report["one_by_one"]
  print(f"one by one, the same {o['num_utterances']} utterances: WER {o['wer']:.3f}")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "manifest"])
  app.run(main)
