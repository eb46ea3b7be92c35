"""Warm-up of a from-scratch LLM: copy the transcript out of audio slots that hold its own
token embeddings (steps.copy_loss), so that it can read audio slots before the encoder has
learnt to fill them. For from-scratch runs only (a pretrained Qwen3 already copies); the
next stage takes it with `--config.init_from`. Usage: --config=configs/llm_copy.py:small"""

from configs import base
from configs import models


def get_config(arg: str | None = None):
  a = base.parse_arg(arg, {"size": models.SIZES}, {"size": "tiny"})
  c = base.base_config(a["size"])
  c.objective = "copy"
  c.trainable = ("llm",)
  return c
