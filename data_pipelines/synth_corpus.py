r"""Generates the embedded bilingual corpus (espeak-ng speech, noise and silence clips).

  python data_pipelines/synth_corpus.py --output_dir=corpus --num_utterances=2000 --seed=0

Writes corpus/audio/{train,test}/*.flac and corpus/{train,test}.jsonl manifests; the test
split uses voice variants the training split never hears.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from fun_asr_jax.data import synth  # noqa: E402

_OUT = flags.DEFINE_string("output_dir", None, "Destination folder.")
_N = flags.DEFINE_integer("num_utterances", 1000, "Training utterances.")
_SEED = flags.DEFINE_integer("seed", 0, "Corpus seed.")
_TEST = flags.DEFINE_float("test_fraction", 0.1, "Held-out size relative to train.")
_WORKERS = flags.DEFINE_integer("num_workers", 2, "Processes.")
_NAME_POOL = flags.DEFINE_integer("name_pool", 0, "Rare names (hotwords) drawn from this many "
                                  "invented ones instead of the built-in 20 (0).")
_HOTWORD_SHARE = flags.DEFINE_float("hotword_share", synth.SynthConfig.hotword_share,
                                    "Share of sentences that mention a rare name.")


def main(argv):
  del argv
  t0 = time.time()
  cfg = synth.SynthConfig(name_pool=_NAME_POOL.value, hotword_share=_HOTWORD_SHARE.value)
  paths = synth.write_corpus(_OUT.value, _N.value, _SEED.value, _TEST.value, _WORKERS.value,
                             cfg)
  seconds = 0.0
  for p in paths.values():
    with open(p) as f:
      seconds += sum(float(__import__("json").loads(l)["duration"]) for l in f)
  wall = time.time() - t0
  print(f"wrote {paths}: {seconds / 3600:.2f} h of audio in {wall:.1f} s "
        f"({seconds / max(wall, 1e-9):.0f}x real time)")


if __name__ == "__main__":
  flags.mark_flag_as_required("output_dir")
  app.run(main)
