r"""Builds ArrayRecord shards from a JSONL manifest or a Kaldi data folder.

  python data_pipelines/build_arrayrecord.py --manifest=train.jsonl --output_dir=shards/train
  python data_pipelines/build_arrayrecord.py --manifest=data/train_kaldi --output_dir=shards/kaldi

Rerunning completes only missing shards. Writes summary.json and rejects.jsonl.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from fun_asr_jax.data import build  # noqa: E402

_MANIFEST = flags.DEFINE_string("manifest", None, "JSONL manifest or Kaldi data folder.")
_OUT = flags.DEFINE_string("output_dir", None, "Destination folder.")
_SHARDS = flags.DEFINE_integer("num_shards", None, "Shards (default: ~2000 rows each).")
_WORKERS = flags.DEFINE_integer("num_workers", 2, "Processes.")
_MAX = flags.DEFINE_float("max_seconds", 60.0, "Longer clips are rejected.")
_MIN = flags.DEFINE_float("min_seconds", 0.05, "Shorter clips are rejected.")


def main(argv):
  del argv
  s = build.build_from_manifest(_MANIFEST.value, _OUT.value, num_shards=_SHARDS.value,
                                num_workers=_WORKERS.value, max_seconds=_MAX.value,
                                min_seconds=_MIN.value)
  print(f"{_OUT.value}: {s['utterances']} utterances, {s['hours']:.3f} h, "
        f"{len(s['shards'])} shards, {s['rejected']} rejected (see {build.REJECTS}); "
        f"langs {s['langs']}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["manifest", "output_dir"])
  app.run(main)
