r"""Trains one stage; resumes from the newest checkpoint in --workdir.

  python launch/train.py --config=configs/sft.py:s1,small --workdir=runs/s1 \
      --config.data.train=corpus/train.jsonl --config.data.eval=corpus/test.jsonl
  python launch/train.py --config=configs/sft.py:s2,small --workdir=runs/s2 \
      --config.init_from=runs/s1 ...
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

from absl import app, flags, logging
from ml_collections import config_flags

from fun_asr_jax.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Stage config file[:ARG].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics and logs go here.")


def main(argv):
  del argv
  result = loop.train(_CONFIG.value, _WORKDIR.value)
  logging.info("finished at step %d (%d compiled programs)%s", result["step"],
               result["compiled_programs"],
               " (stopped early: SIGTERM or a time/step limit; the run resumes from here)"
               if result["preempted"] else "")
  if result["eval"]:
    print(f"eval: WER {result['eval']['wer']:.4f} CER {result['eval']['cer']:.4f} "
          f"MER {result['eval']['mer']:.4f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
