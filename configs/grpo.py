"""GRPO (Fun-ASR's RL stage) from an SFT checkpoint.

    python launch/train.py --config=configs/grpo.py:small --workdir=DIR \\
        --config.init_from=SFT_WORKDIR --config.data.train=train.jsonl

Per utterance `rl.group_size` responses are sampled in-graph and scored by the weighted
rewards in `rl.reward` (1 - error rate, hotword recall/precision, hallucination and loop
penalty, language match); the policy follows the clipped GRPO loss with a k3 KL
(`rl.beta`) to the frozen `init_from` model. The encoder stays frozen by default.
"""

import ml_collections

from configs import base
from configs import models


def get_config(arg: str | None = None):
  a = base.parse_arg(arg, {"size": models.SIZES}, {"size": "tiny"})
  c = base.base_config(a["size"])
  c.stage = "grpo"
  c.objective = "grpo"
  c.trainable = ("adaptor", "llm")
  c.loss.ctc_weight = 0.0
  c.rl = ml_collections.ConfigDict({
      "group_size": 4, "max_new_tokens": 32, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
      "epsilon_low": 0.2, "epsilon_high": 0.28, "beta": 0.04, "aggregation": "sequence",
      "num_updates": 1, "max_hotwords": 4, "guide": 0.5, "hotword_bonus": 0.0,
      "sft_weight": 0.0, "empty_unlikelihood": 0.0,
      "reward": {"accuracy": 1.0, "keywords": 0.5, "hallucination": 1.0, "language": 0.2,
                 "hallucination_per_unit": 0.0, "dropped": 0.0, "loop_max_ngram": 4,
                 "loop_repeats": 4, "max_units": 0}})
  # the rewards need something to score: hotword prompts and noise-only clips
  c.data.hotword_prompt_prob = 0.5
  c.data.augment.noise_only_prob = 0.1
  c.optim.update(lr=2e-5, warmup_steps=10, clip_norm=1.0)
  c.train.num_steps = 200
  if a["size"] in ("nano", "full"):
    c.optim.update(lr=1e-6, warmup_steps=50)
    c.rl.group_size = 8
  return c
