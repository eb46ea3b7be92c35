"""Small training runs for tests: tiny preset, byte tokenizer, one bucket."""

import json
import os

from configs import sft


def tiny_config(corpus, stage="s0", steps=4, **overrides):
  c = sft.get_config(f"{stage},tiny")
  c.data.train = corpus["shards"]
  c.data.tokenizer = "byte"
  c.data.batch_size = 4
  c.data.bucket_seconds = (8.0,)
  c.data.bucket_tokens = (256,)
  c.data.num_threads = 1
  c.train.num_steps = steps
  c.train.log_every = 1
  c.train.save_every = 2
  c.train.async_checkpoint = False
  c.optim.warmup_steps = 2
  for key, value in overrides.items():
    node = c
    parts = key.split(".")
    for p in parts[:-1]:
      node = node[p]
    node[parts[-1]] = value
  return c


def losses(workdir):
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}
