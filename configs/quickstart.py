"""The embedded default: every stage on the generated corpus, sized for 2 CPU cores.

`launch/quickstart.py` runs STAGES in order, each starting from the previous one's
checkpoint. Usage of a single stage: --config=configs/quickstart.py:s0 (size small).
"""

import statistics

from configs import base, ctc, grpo, pretrain_bestrq, sft

# (name, builder, steps); the LLM is trained from scratch in s0 because no pretrained
# Qwen3 can be downloaded here; s1..s4 then fine-tune as the paper's stages do.
STAGES = (
    ("bestrq", lambda size: pretrain_bestrq.get_config(size), 100),
    ("ctc", lambda size: ctc.get_config(size), 300),
    ("s0", lambda size: sft.get_config(f"s0,{size}"), 700),
    ("s1", lambda size: sft.get_config(f"s1,{size}"), 40),
    ("s2", lambda size: sft.get_config(f"s2,{size}"), 40),
    ("s3", lambda size: sft.get_config(f"s3,{size}"), 40),
    ("s4", lambda size: sft.get_config(f"s4,{size}"), 40),
    ("s5", lambda size: sft.get_config(f"s5,{size}"), 60),
    ("grpo", lambda size: grpo.get_config(size), 20),
)

# Each stage's share of the training time at the step counts above (small preset, 2 cores,
# compilation included; bench/RESULTS.md). `launch/quickstart.py --minutes` splits what is
# left of its budget between the remaining stages in these proportions.
TIME_SHARE = {"bestrq": 1.0, "ctc": 2.5, "s0": 9.5, "s1": 0.45, "s2": 0.85, "s3": 0.4,
              "s4": 0.85, "s5": 0.3, "grpo": 1.0}


def stage_minutes(budget: float, elapsed: float, stages: list[str],
                  overheads: list[float]) -> float:
  """Training minutes for stages[0]: its TIME_SHARE of the budget left once every remaining
  stage's setup and scoring (the mean of `overheads` so far, else 0.5 min) is set aside."""
  per_stage = statistics.mean(overheads) if overheads else 0.5
  left = budget - elapsed - per_stage * len(stages)
  return max(0.2, left * TIME_SHARE[stages[0]] / sum(TIME_SHARE[n] for n in stages))


def stage_config(name: str, size: str = "small", steps: int | None = None,
                 train: str = "", eval_: str = "", noise: str = ""):
  builder, default_steps = {n: (b, s) for n, b, s in STAGES}[name]
  c = builder(size)
  c.data.train, c.data.eval, c.data.noise = train, eval_, noise
  c.data.tokenizer = "sentencepiece:600"
  c.data.batch_size = 8
  c.data.bucket_seconds = (4.0, 6.0)
  c.data.bucket_tokens = (96, 128)
  c.data.augment.update(noise_prob=0.2 if noise else 0.0, speed_prob=0.2)
  c.data.hotword_prompt_prob = 0.3 if name not in ("bestrq", "ctc", "s5") else 0.0
  c.train.num_steps = steps or default_steps
  c.train.log_every = 10
  c.train.save_every = 0
  c.train.eval_every = 0
  c.optim.update(lr=2e-3 if name in ("bestrq", "ctc", "s0") else 5e-4,
                 warmup_steps=min(20, c.train.num_steps // 4))
  if name == "s0":
    c.loss.ctc_weight = 0.3
  if name == "grpo":  # 4 utterances x 4 samples per step
    c.data.batch_size = 4
    c.data.hotword_prompt_prob = 0.5
    c.data.augment.noise_only_prob = 0.15
    c.optim.update(lr=5e-5, warmup_steps=2)
    c.rl.update(group_size=4, max_new_tokens=24)
  if name in ("s3", "s4"):
    c.model.llm.lora_rank = 8
    c.model.llm.lora_alpha = 16.0
  return c


def get_config(arg: str | None = None):
  a = base.parse_arg(arg, {"stage": tuple(n for n, _, _ in STAGES), "size": ("tiny", "small")},
                     {"stage": "s0", "size": "small"})
  return stage_config(a["stage"], a["size"])
