"""Staged supervised fine-tuning (Fun-ASR's five stages), plus s0 = everything from scratch.

    s0: every parameter (from-scratch baselines and small-data runs)
    s1: adaptor only (encoder and LLM frozen)
    s2: encoder + adaptor (LLM frozen)
    s3: LLM through LoRA (encoder and adaptor frozen)
    s4: encoder + adaptor fully, LLM through LoRA
    s5: CTC branch on a frozen encoder

Usage: --config=configs/sft.py:s2,small
"""

from configs import base
from configs import models

STAGES = ("s0", "s1", "s2", "s3", "s4", "s5")
TRAINABLE = {
    "s0": ("all",),
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
  c.objective = "ctc" if a["stage"] == "s5" else "sft"
  if a["stage"] in ("s3", "s4"):
    c.model.llm.lora_rank = 16
    c.model.llm.lora_alpha = 32.0
    c.model.llm.lora_dropout = 0.05
  if a["stage"] in ("s1", "s2", "s3", "s4"):
    c.loss.ctc_weight = 0.0  # the CTC branch has its own stage
  if a["size"] in ("nano", "full"):  # the release's fine-tuning recipe
    c.optim.update(lr=5e-6 if a["stage"] != "s1" else 1e-4, warmup_steps=2500, clip_norm=5.0)
  return c
