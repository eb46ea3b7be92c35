"""Fields every stage shares. A stage config starts from `base_config(size)`.

`--config=configs/STAGE.py:ARG` passes ARG to the stage's `get_config`; ARG is a comma list
of a size (tiny | small | nano | full) and, for SFT, a stage (s1..s5).
"""

import ml_collections

from configs import models


def parse_arg(arg: str | None, choices: dict[str, tuple[str, ...]], defaults: dict[str, str]):
  """'s2,small' -> {'stage': 's2', 'size': 'small'} given the allowed values per key."""
  out = dict(defaults)
  for token in filter(None, (arg or "").split(",")):
    for key, allowed in choices.items():
      if token in allowed:
        out[key] = token
        break
    else:
      valid = "; ".join(f"{k}: {', '.join(v)}" for k, v in choices.items())
      raise ValueError(f"config argument {token!r} is not recognised ({valid})")
  return out


def base_config(size: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.size = size
  c.model = ml_collections.ConfigDict(models.model_dict(size))
  c.init_from = ""  # a checkpoint of an earlier stage
  c.seed = 0
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.data = ml_collections.ConfigDict({"train": "", "eval": "", "noise": "",
                                      "batch_size": 8, "max_audio_seconds": 30.0})
  return c
