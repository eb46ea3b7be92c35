"""Staged supervised fine-tuning (Fun-ASR's five stages).

    s1: adaptor only (encoder and LLM frozen)
    s2: encoder + adaptor (LLM frozen)
    s3: LLM through LoRA (encoder and adaptor frozen)
    s4: encoder + adaptor fully, LLM through LoRA
    s5: CTC branch on a frozen encoder

Usage: --config=configs/sft.py:s2,small
"""

from configs import base
from configs import models

STAGES = ("s1", "s2", "s3", "s4", "s5")
TRAINABLE = {
    "s1": ("adaptor",),
    "s2": ("encoder", "adaptor"),
    "s3": ("llm/lora",),
    "s4": ("encoder", "adaptor", "llm/lora"),
    "s5": ("ctc",),
}


def get_config(arg: str | None = None):
  a = base.parse_arg(arg, {"stage": STAGES, "size": models.SIZES},
                     {"stage": "s1", "size": "tiny"})
  c = base.base_config(a["size"])
  c.stage = a["stage"]
  c.trainable = TRAINABLE[a["stage"]]
  if a["stage"] in ("s3", "s4"):
    c.model.llm.lora_rank = 16
    c.model.llm.lora_alpha = 32.0
    c.model.llm.lora_dropout = 0.05
  return c
