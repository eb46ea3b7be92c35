"""Fields every stage shares. A stage config starts from `base_config(size)`.

`--config=configs/STAGE.py:ARG` passes ARG to the stage's `get_config`; ARG is a comma list
of a size (tiny | small | nano | full) and, for SFT, a stage (s1..s5).
"""

import ast

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
  c.objective = "sft"  # sft | ctc | bestrq | grpo | copy
  c.stage = ""
  c.trainable = ("all",)  # path prefixes; 'llm/lora' = LoRA leaves only
  c.model = ml_collections.ConfigDict(models.model_dict(size))
  c.init_from = ""  # an earlier stage's workdir or a converted model folder
  c.seed = 0
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})

  c.data = ml_collections.ConfigDict()
  c.data.train = ""  # JSONL manifest(s) or shard folder(s): 'a.jsonl@2,b'
  c.data.eval = ""
  c.data.noise = ""  # noise manifest for augmentation
  c.data.cache_dir = ""  # '' -> <workdir>/../data_cache
  c.data.tokenizer = "sentencepiece:1000"  # byte | sentencepiece:VOCAB | a folder
  c.data.batch_size = 8  # global
  c.data.eval_batch_size = 8
  c.data.num_threads = 2
  c.data.global_cmvn = 0  # > 0: normalise with global CMVN from this many training clips
  c.data.bucket_seconds = (2.0, 4.0, 8.0, 16.0, 30.0)
  c.data.bucket_tokens = (96, 128, 192, 320, 512)
  c.data.group_window = 16  # batches sorted by length together (1 = arrival order)
  c.data.hotword_prompt_prob = 0.0  # an utterance's hotwords in its prompt, among distractors
  c.data.num_distractors = 2  # other utterances' hotwords added to each list
  c.data.distractor_prompt_prob = 0.0  # utterances without hotwords: distractors alone
  c.data.language_prompt_prob = 0.0
  c.data.augment = ml_collections.ConfigDict({
      "noise_prob": 0.0, "snr_db": (0.0, 20.0), "rir_prob": 0.0, "speed_prob": 0.0,
      "speeds": (0.9, 1.1), "gain_prob": 0.0, "gain_db": (-6.0, 6.0),
      "noise_only_prob": 0.0, "truncate_prob": 0.0})
  c.data.spec_augment = False
  c.data.specaug = ml_collections.ConfigDict({  # in-graph masks (when spec_augment)
      "num_freq_masks": 2, "max_freq_width": 27, "num_time_masks": 2, "max_time_ratio": 0.05})
  c.data.vtln_warp = 0.0  # in-graph VTLN: per-utterance warp ~ U[1 - x, 1 + x]; 0 = off
  c.data.dither = 1.0  # Kaldi dither while training (0 at eval)

  c.optim = ml_collections.ConfigDict({
      "lr": 1e-3, "warmup_steps": 100, "decay": "cosine", "end_lr_ratio": 0.05,
      "weight_decay": 0.01, "b1": 0.9, "b2": 0.98, "clip_norm": 1.0, "grad_accum": 1,
      "ema_decay": 0.0})  # > 0: keep a parameter EMA; evaluation and exports use it
  # target_tokens > 0: the LLM head projects only up to that many target positions per
  # row (prompt and audio slots are never predicted); a longer row falls back to all.
  # slot_weight > 0 (sft with model.ctc_compress): pull each audio slot towards the LLM's
  # embedding of the token CTC emits there (steps.slot_term)
  c.loss = ml_collections.ConfigDict({"llm_weight": 1.0, "ctc_weight": 0.3, "target_tokens": 0,
                                      "copy_noise": 0.5, "slot_weight": 0.0})

  c.train = ml_collections.ConfigDict({
      "num_steps": 1000, "log_every": 10, "eval_every": 0, "save_every": 200,
      "keep": 2, "keep_every": 0, "max_nan_steps": 5, "peak_flops": 0.0,
      "async_checkpoint": True,
      # compile every bucket's step on a background thread while the first one trains
      "compile_ahead": False,
      "stop_after_steps": 0,  # >0: save and exit after this many steps in this run
      "time_limit_minutes": 0.0})  # >0: save and exit when this run has trained this long
  c.eval = ml_collections.ConfigDict({"max_new_tokens": 64, "num_batches": 0,
                                      "path": "llm"})
  if size in ("nano", "full"):
    accelerator_defaults(c)
  return c


def accelerator_defaults(c: ml_collections.ConfigDict):
  """What nano and full need on TPU: bf16 compute, layer remat, parameters and optimizer
  state sharded over every chip (FSDP), every bucket's step compiled while the first trains
  (minutes each at these sizes). `launch/describe.py --topology=...` checks the fit;
  tensor parallelism is `--config.mesh.tensor=N` (then fsdp=-1 takes the rest)."""
  for part in ("encoder", "adaptor", "llm"):
    c.model[part].dtype = "bfloat16"
  c.model.encoder.remat = "full"
  c.model.llm.remat = "full"
  c.mesh.update(data=1, fsdp=-1, tensor=1)
  c.train.compile_ahead = True


def finalize(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Checks values users can get wrong; errors name the field."""
  def need(cond, field, msg):
    if not cond:
      raise ValueError(f"config.{field}: {msg}")
  need(c.objective in ("sft", "ctc", "bestrq", "grpo", "copy"), "objective",
       "expected sft, ctc, bestrq, grpo or copy")
  slot_weight = c.loss.get("slot_weight", 0.0)
  need(slot_weight >= 0, "loss.slot_weight", "must be >= 0 (0 = off)")
  need(slot_weight == 0 or (c.model.get("ctc_compress", False)
                            and c.model.adaptor.get("downsample", 1) == 1),
       "loss.slot_weight", "needs model.ctc_compress=True and model.adaptor.downsample=1 "
       "(one audio slot per CTC label)")
  need(c.objective != "copy" or all(t.startswith("llm") for t in c.trainable), "trainable",
       "the copy objective trains the LLM only (no audio is read): use ('llm',)")
  if c.objective == "grpo":
    grpo_config(c).validate()
  need(c.model.get("llm", {}).get("scan_layers", True), "model.llm.scan_layers",
       "False is the decoding layout (fun_asr.decoding_layout); training, checkpoints and "
       "init_from use the scanned stack")
  need(not c.model.get("llm", {}).get("out_major", False), "model.llm.out_major",
       "True is the decoding layout (fun_asr.decoding_layout); checkpoints store [in, out] "
       "kernels")
  need(c.model.get("ctc_compress_cap", 0) >= 0, "model.ctc_compress_cap",
       "must be >= 0 (0 = no cap)")
  for part in ("encoder", "adaptor", "llm", "ctc.decoder"):
    sub = c.model
    for key in part.split("."):
      sub = sub.get(key, {})
    need(sub.get("scan_unroll", 1) >= 0, f"model.{part}.scan_unroll",
         "must be >= 0 (layers per scan iteration; 0 = the whole stack unrolled)")
  need(c.data.batch_size > 0, "data.batch_size", "must be positive")
  need(c.data.group_window >= 1, "data.group_window", "must be >= 1 (1 = no grouping)")
  need(c.train.num_steps > 0, "train.num_steps", "must be positive")
  need(c.loss.target_tokens >= 0, "loss.target_tokens", "must be >= 0 (0 = every position)")
  need(c.optim.lr > 0, "optim.lr", "must be positive")
  need(0.0 <= c.optim.ema_decay < 1.0, "optim.ema_decay", "must be in [0, 1) (0 = off)")
  need(c.optim.grad_accum >= 1, "optim.grad_accum", "must be >= 1")
  need(0 <= c.optim.warmup_steps, "optim.warmup_steps", "must be >= 0")
  need(len(c.data.bucket_seconds) == len(c.data.bucket_tokens), "data.bucket_tokens",
       "needs one entry per data.bucket_seconds")
  for name in ("hotword_prompt_prob", "distractor_prompt_prob", "language_prompt_prob"):
    need(0.0 <= c.data[name] <= 1.0, f"data.{name}", "must be in [0, 1]")
  need(c.data.num_distractors >= 0, "data.num_distractors", "must be >= 0")
  need(c.data.global_cmvn >= 0, "data.global_cmvn", "must be >= 0 (0 = off)")
  need(not (c.data.global_cmvn and c.model.frontend.get("utterance_norm", False)),
       "model.frontend.utterance_norm", "must be False with data.global_cmvn (one "
       "normalisation: global statistics are what a streaming model can use)")
  need(0.0 <= c.data.vtln_warp < 0.5, "data.vtln_warp", "must be in [0, 0.5)")
  need(c.data.specaug.max_time_ratio <= 0.5 and min(c.data.specaug.to_dict().values()) >= 0,
       "data.specaug", "mask counts and sizes must be >= 0, max_time_ratio <= 0.5")
  need(c.eval.path in ("llm", "ctc"), "eval.path", "expected llm or ctc")
  need(c.train.save_every >= 0 and c.train.keep >= 1, "train.keep", "must be >= 1")
  return c


def grpo_config(c: ml_collections.ConfigDict):
  """`config.rl` as a GRPOConfig."""
  from fun_asr_jax.rl import grpo, rewards  # pylint: disable=import-outside-toplevel
  d = c.rl.to_dict()
  d.pop("max_hotwords", None)
  return grpo.GRPOConfig(**dict(d, reward=rewards.RewardConfig(**d["reward"])))


def apply_override(c, item):
  """'a.b=VALUE' sets c.a.b, parsing VALUE as a Python literal when it is one."""
  key, sep, text = item.partition("=")
  if not sep:
    raise ValueError(f"--set={item!r}: expected KEY=VALUE")
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  *parents, leaf = key.split(".")
  node = c
  for name in parents:
    node = node[name]
  if leaf not in node:
    raise ValueError(f"--set={item!r}: config has no field {key!r}")
  node[leaf] = value
