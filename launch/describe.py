r"""Prints a config's parameter counts per component and a memory estimate, from shapes only.

  python launch/describe.py --config=configs/sft.py:nano
  python launch/describe.py --config=configs/sft.py:s3,full --axes
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

from absl import app, flags
from ml_collections import config_flags

from configs import models
from fun_asr_jax.models import describe
from fun_asr_jax.models.fun_asr import ModelConfig

_CONFIG = config_flags.DEFINE_config_file("config", None, "Stage config file[:ARG].")
_AXES = flags.DEFINE_bool("axes", False, "Also list every parameter with its logical axes.")


def _fmt(n: int) -> str:
  return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def main(argv):
  del argv
  cfg = ModelConfig.from_dict(models.resolve_vocab(_CONFIG.value.model.to_dict(),
                                                    models.BYTE_VOCAB - 3))
  counts = describe.parameter_counts(cfg)
  print(f"config: {flags.FLAGS['config'].config_filename}  size: {_CONFIG.value.get('size')}")
  print(f"{'component':<20}{'parameters':>14}")
  for name in ("encoder", "adaptor", "ctc", "llm", "llm_embed", "llm_lora", "llm_total",
               "total_without_ctc", "total"):
    if name in counts:
      print(f"{name:<20}{_fmt(counts[name]):>14}")
  total = counts["total"]
  print(f"memory (fp32 params + Adam moments): {total * 12 / 2**30:.2f} GiB; "
        f"bf16 params alone: {total * 2 / 2**30:.2f} GiB")
  if _AXES.value:
    for path, names in sorted(describe.logical_axes(cfg).items()):
      print(f"  {path:<70} {names}")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
