r"""Transcribes audio files with a checkpoint (greedy decoding with the KV cache).

  python launch/transcribe.py --checkpoint=runs/s5 a.wav b.flac
  python launch/transcribe.py --checkpoint=ckpt/nano --language=zh --hotwords=names.txt talk.wav

Any sample rate, mono or stereo. --checkpoint is a training workdir or a converted model
folder. A file that cannot be read is reported and the others are still transcribed.
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

import json
import sys

from absl import app, flags

from fun_asr_jax.audio import io as audio_io
from fun_asr_jax.inference.transcribe import transcribe_arrays
from fun_asr_jax.train import checkpoint

_CKPT = flags.DEFINE_string("checkpoint", None, "Training workdir or model folder.")
_HOTWORDS = flags.DEFINE_string("hotwords", None, "Text file, one hotword per line.")
_LANGUAGE = flags.DEFINE_string("language", "auto", "zh, en, ja, ko, yue or auto.")
_FORMAT = flags.DEFINE_enum("format", "text", ["text", "json"], "Output format.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Files per batch.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Decoding limit per file.")


def read_hotwords(path):
  seen, out = set(), []
  with open(path, encoding="utf-8") as f:
    for line in f:
      w = line.strip()[:64]
      if w and w not in seen:
        seen.add(w)
        out.append(w)
  return out


def main(argv):
  files = argv[1:]
  if not files:
    raise app.UsageError("give one or more audio files")
  cfg, params, tok, _ = checkpoint.load_model(_CKPT.value)
  params = {k: v for k, v in params.items() if k != "bestrq"}
  hotwords = read_hotwords(_HOTWORDS.value) if _HOTWORDS.value else None
  language = None if _LANGUAGE.value == "auto" else _LANGUAGE.value
  results, failed = {}, 0
  waves = {}
  for path in files:
    try:
      x, rate = audio_io.load(path)
      waves[path] = audio_io.resample(audio_io.to_mono(x), rate)
    except audio_io.AudioError as e:
      print(f"error: {e}", file=sys.stderr)
      failed += 1
  paths = list(waves)
  for i in range(0, len(paths), _BATCH.value):
    chunk = paths[i: i + _BATCH.value]
    out = transcribe_arrays(cfg, params, tok, [waves[p] for p in chunk], language=language,
                            hotwords=hotwords, max_new_tokens=_MAX_NEW.value)
    for p, r in zip(chunk, out):
      results[p] = r["text"]
      if _FORMAT.value == "text":
        print(f"{p}\t{r['text']}")
  if _FORMAT.value == "json":
    print(json.dumps([{"audio": p, "text": t} for p, t in results.items()], ensure_ascii=False,
                     indent=1))
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  flags.mark_flag_as_required("checkpoint")
  app.run(main)
