r"""Transcribes audio files, folders or manifests with a checkpoint.

  python launch/transcribe.py --checkpoint=runs/s5 a.wav b.flac
  python launch/transcribe.py --checkpoint=runs/s5 --hotwords=names.txt --format=json talks/
  python launch/transcribe.py --checkpoint=ckpt/nano --language=zh --format=srt test.jsonl

Any sample rate, mono or stereo. --checkpoint is a training workdir or a converted model
folder. With --hotwords, each file's CTC first pass picks the hotwords its prompt gets
(phoneme retrieval; see fun_asr_jax/inference/hotwords.py). A file that cannot be read is
reported on stderr and the others are still transcribed; the exit status is then 1.
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

import json
import os
import sys

from absl import app, flags

from fun_asr_jax.data import manifest
from fun_asr_jax.inference.asr import FunASR
from fun_asr_jax.inference.hotwords import RetrievalConfig, clean_hotwords

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_HOTWORDS = flags.DEFINE_string("hotwords", None, "Text file, one hotword per line.")
_LANGUAGE = flags.DEFINE_string("language", "auto", "zh, en, ja, ko, yue or auto.")
_FORMAT = flags.DEFINE_enum("format", "text", ["text", "json", "srt"], "Output format.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Files per batch.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Decoding limit per file.")
_THRESHOLD = flags.DEFINE_float("hotword_threshold", RetrievalConfig.threshold,
                                "Most phoneme edits per hotword phoneme for retrieval.")
_TOP_K = flags.DEFINE_integer("hotword_top_k", RetrievalConfig.top_k,
                              "Most hotwords put into one prompt.")
_BIAS = flags.DEFINE_float("hotword_bias", RetrievalConfig.bias,
                           "Decoding bonus (nats) per token of a hotword in the prompt; 0 off.")

_AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3", ".opus")


def read_hotwords(path):
  with open(path, encoding="utf-8") as f:
    return clean_hotwords(f)


def expand(inputs) -> list[str]:
  """Files as given, folders recursively (audio extensions), manifests by their `audio`."""
  out = []
  for item in inputs:
    if os.path.isdir(item):
      for root, _, files in sorted(os.walk(item)):
        out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(_AUDIO_EXT))
    elif item.endswith(".jsonl") and os.path.isfile(item):
      rows, rejects = manifest.read_jsonl(item)
      out.extend(r["audio"] for r in rows)
      for _, _, reason in rejects:
        print(f"error: {reason}", file=sys.stderr)
    else:
      out.append(item)
  return out


def srt_time(seconds: float) -> str:
  ms = int(round(seconds * 1000))
  return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def main(argv):
  files = expand(argv[1:])
  if not files:
    raise app.UsageError("give one or more audio files, folders or manifests")
  asr = FunASR.load(_CKPT.value, retrieval=RetrievalConfig(threshold=_THRESHOLD.value,
                                                           top_k=_TOP_K.value,
                                                           bias=_BIAS.value))
  hotwords = read_hotwords(_HOTWORDS.value) if _HOTWORDS.value else None
  results = asr.transcribe(files, hotwords=hotwords, language=_LANGUAGE.value,
                           batch_size=_BATCH.value, max_new_tokens=_MAX_NEW.value)
  failed = [r for r in results if r.error]
  for r in failed:
    print(f"error: {r.error}", file=sys.stderr)
  ok = [r for r in results if not r.error]
  if _FORMAT.value == "text":
    for r in ok:
      print(f"{r.source}\t{r.text}")
  elif _FORMAT.value == "json":
    print(json.dumps([vars(r) for r in results], ensure_ascii=False, indent=1))
  else:  # one SRT cue per file, timed by its CTC words
    for i, r in enumerate(ok, 1):
      start = r.timestamps[0]["start"] if r.timestamps else 0.0
      end = r.timestamps[-1]["end"] if r.timestamps else 0.0
      print(f"{i}\n{srt_time(start)} --> {srt_time(end)}\n{r.text}\n")
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  flags.mark_flag_as_required("checkpoint")
  app.run(main)
