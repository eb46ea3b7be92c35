"""Best-RQ self-supervised pretraining of the encoder (masked prediction of frozen
random-projection quantizer codes). Usage: --config=configs/pretrain_bestrq.py:small"""

import ml_collections

from configs import base
from configs import models


def get_config(arg: str | None = None):
  a = base.parse_arg(arg, {"size": models.SIZES}, {"size": "tiny"})
  c = base.base_config(a["size"])
  c.objective = "bestrq"
  c.trainable = ("encoder", "bestrq")
  c.bestrq = ml_collections.ConfigDict({
      "num_codebooks": 4, "codebook_size": 256, "codebook_dim": 16,
      "mask_prob": 0.02, "mask_frames": 4,  # spans in encoder frames
      "init_from_llm": "",  # a model folder whose LLM layers seed matching encoder layers
  })
  c.loss.ctc_weight = 0.0
  c.optim.lr = 2e-3
  return c
