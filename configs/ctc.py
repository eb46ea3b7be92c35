"""A CTC-only recognizer (encoder + CTC branch): a fast baseline and the encoder's
supervised pretraining. Usage: --config=configs/ctc.py:small"""

from configs import base
from configs import models


def get_config(arg: str | None = None):
  a = base.parse_arg(arg, {"size": models.SIZES}, {"size": "tiny"})
  c = base.base_config(a["size"])
  c.objective = "ctc"
  c.trainable = ("encoder", "ctc")
  c.eval.path = "ctc"
  return c
