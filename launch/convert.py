r"""Imports released weights into a model folder the other commands load.

  python launch/convert.py --format=funasr_nano --src=Fun-ASR-Nano-2512 --dst=ckpt/nano
  python launch/convert.py --format=hf_fun_asr_nano --src=Fun-ASR-Nano-2512-hf --dst=ckpt/nano_hf
  python launch/convert.py --format=hf_qwen3 --src=Qwen3-0.6B --dst=ckpt/qwen3

The destination is written atomically: on any error nothing is left behind.
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

import os

from absl import app, flags, logging

from fun_asr_jax.convert import convert_folder, FORMATS

_FORMAT = flags.DEFINE_enum("format", None, list(FORMATS), "Source layout.")
_SRC = flags.DEFINE_string("src", None, "Source folder.")
_DST = flags.DEFINE_string("dst", None, "Destination model folder (must not exist).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing destination.")


def main(argv):
  del argv
  if not os.path.isdir(_SRC.value):
    raise app.UsageError(f"--src={_SRC.value}: not a folder")
  summary = convert_folder(_FORMAT.value, _SRC.value, _DST.value, overwrite=_OVERWRITE.value)
  logging.info("wrote %s", _DST.value)
  print(summary)


if __name__ == "__main__":
  flags.mark_flags_as_required(["format", "src", "dst"])
  app.run(main)
