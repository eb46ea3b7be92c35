"""The trainer: one function, read top to bottom.

  setup     config checks, jax.distributed, mesh, tokenizer, model config, workdir files
  data      grain pipelines (per host), noise bank
  state     sharded init, or resume from the newest checkpoint, or init_from an earlier stage
  step      jitted with shardings and donated buffers; compile count and FLOPs logged
  loop      metrics, NaN policy, periodic eval, checkpoints, SIGTERM = save and exit
"""

import concurrent.futures
import logging as std_logging
import os
import signal
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from configs import base as base_config
from configs import models as model_presets
from fun_asr_jax.audio.specaugment import SpecAugmentConfig
from fun_asr_jax.data import augment as aug
from fun_asr_jax.data import cmvn
from fun_asr_jax.data import manifest as manifest_lib
from fun_asr_jax.data.bucketing import Buckets
from fun_asr_jax.data.pipeline import (Pipeline, PipelineConfig, bucket_shape, parse_mixture,
                                       repad)
from fun_asr_jax.inference import hotwords as hotwords_lib
from fun_asr_jax.models import bestrq as bestrq_lib
from fun_asr_jax.models import llm_init
from fun_asr_jax.models.fun_asr import FunASR, ModelConfig, dummy_batch
from fun_asr_jax.parallel import distributed, mesh as mesh_lib, sharding as sharding_lib
from fun_asr_jax.rl import grpo, units as units_lib
from fun_asr_jax.text import prompts
from fun_asr_jax.text.tokenizer import Tokenizer, load_tokenizer, train_sentencepiece
from fun_asr_jax.train import checkpoint as ckpt_lib
from fun_asr_jax.train import flops as flops_lib
from fun_asr_jax.train import evaluation, metrics as metrics_lib, state as state_lib, steps


class NonFiniteLossError(RuntimeError):
  """Too many consecutive steps with non-finite loss or gradients."""


# -- setup ----------------------------------------------------------------------------------
def prompt_texts() -> list[str]:
  """Every fixed string the prompts use, so a trained tokenizer covers them."""
  out = [prompts.SYSTEM, "<|im_start|>system\n", "<|im_end|>\n<|im_start|>user\n",
         "<|im_end|>\n<|im_start|>assistant\n", prompts.task_prompt(),
         prompts.task_prompt(itn=False), prompts.HOTWORD_HEADER + "热词列表：[]"]
  out += [prompts.task_prompt(language=code) for code in prompts.LANGUAGES]
  return out * 20


# Fixed phrases of the prompt, each one piece in a trained tokenizer.
PROMPT_SYMBOLS = ("system\n", "user\n", "assistant\n", prompts.SYSTEM, "语音转写")


def make_tokenizer(cfg, workdir: str):
  """Reuses the workdir's or init_from's tokenizer; otherwise builds the configured one."""
  for folder in (os.path.join(workdir, "tokenizer"),
                 os.path.join(cfg.init_from, "tokenizer") if cfg.init_from else ""):
    if folder and os.path.isdir(folder):
      return load_tokenizer(folder)
  spec = cfg.data.tokenizer
  if spec == "byte":
    return Tokenizer.byte_level()
  if spec.startswith("sentencepiece:"):
    texts = []
    for path, _ in parse_mixture(cfg.data.train):
      if path.endswith(".jsonl"):
        rows, _ = manifest_lib.read_jsonl(path)
        texts += [r.get("text", "") for r in rows]
    if not texts:
      raise ValueError("config.data.tokenizer=sentencepiece:N needs a JSONL manifest in "
                       "config.data.train to learn from (or give a tokenizer folder)")
    build = "tokenizer_build" + (f"_{jax.process_index()}" if jax.process_count() > 1 else "")
    return train_sentencepiece(texts + prompt_texts(), os.path.join(workdir, build),
                               vocab_size=int(spec.split(":")[1]), symbols=PROMPT_SYMBOLS)
  if os.path.isdir(spec):
    return load_tokenizer(spec)
  raise ValueError(f"config.data.tokenizer={spec!r}: expected byte, sentencepiece:N or a folder")


def model_config_for(cfg, tokenizer) -> ModelConfig:
  d = model_presets.resolve_vocab(cfg.model.to_dict(), tokenizer.vocab_size)
  mc = ModelConfig.from_dict(d)
  if mc.llm.vocab_size < tokenizer.vocab_size:
    raise ValueError(f"config.model.llm.vocab_size={mc.llm.vocab_size} is smaller than the "
                     f"tokenizer's {tokenizer.vocab_size} tokens")
  return mc


def pipeline_config(cfg, train: bool, batch_size: int) -> PipelineConfig:
  d = cfg.data
  return PipelineConfig(
      batch_size=batch_size, seed=cfg.seed, shuffle=train, repeat=train,
      buckets=Buckets(seconds=tuple(d.bucket_seconds), tokens=tuple(d.bucket_tokens)),
      augment=aug.AugmentConfig(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v)
                                   for k, v in d.augment.to_dict().items()}) if train
      else aug.AugmentConfig(),
      hotword_prompt_prob=d.hotword_prompt_prob if train else 0.0,
      num_distractors=d.num_distractors,
      distractor_prompt_prob=d.distractor_prompt_prob if train else 0.0,
      language_prompt_prob=d.language_prompt_prob if train else 0.0,
      num_threads=d.num_threads, drop_remainder=train, include_targets=train,
      group_window=d.group_window,
      max_hotwords=cfg.rl.max_hotwords if train and cfg.objective == "grpo" else 0,
      prompt_hotword_entries=prompt_hotword_entries(cfg) if train else 0)


def prompt_hotword_entries(cfg) -> int:
  """Rows of the prompt-hotword bias table hinted GRPO rollouts need (0 when off): every
  token variant of the utterance's hotwords and its distractors, a multiple of 8."""
  if cfg.objective != "grpo" or not cfg.rl.get("hotword_bonus", 0.0):
    return 0
  words = cfg.rl.max_hotwords + cfg.data.num_distractors + 1
  return -(-hotwords_lib.MAX_VARIANTS * words // 8) * 8


_LAST_VALUE_METRICS = ("lr", "nonfinite_consecutive", "nonfinite_total")


def mean_metrics(history: list[dict]) -> dict:
  """Step metrics averaged over a log interval (counters and the learning rate: last)."""
  out = {}
  for k in history[-1]:
    vals = [float(np.asarray(h[k])) for h in history if k in h]
    out[k] = vals[-1] if k in _LAST_VALUE_METRICS else float(np.mean(vals))
  return out


def common_shape(host: dict, pad_id: int) -> dict:
  """Pads this host's batch to the largest (samples, tokens) any process drew."""
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  mine = np.array([host["waveform"].shape[1], host["tokens"].shape[1]], np.int64)
  samples, tokens = np.max(multihost_utils.process_allgather(mine), axis=0)
  return repad(host, int(samples), int(tokens), pad_id)


def loss_config(cfg) -> steps.LossConfig:
  bq = None
  if cfg.objective == "bestrq":
    bq = bestrq_lib.BestRQConfig(**{k: v for k, v in cfg.bestrq.to_dict().items()
                                    if k != "init_from_llm"})
  return steps.LossConfig(objective=cfg.objective, llm_weight=cfg.loss.llm_weight,
                          ctc_weight=cfg.loss.ctc_weight, spec_augment=cfg.data.spec_augment,
                          specaug=SpecAugmentConfig(**cfg.data.specaug.to_dict()),
                          vtln_warp=cfg.data.vtln_warp, bestrq=bq,
                          target_tokens=cfg.loss.target_tokens,
                          copy_noise=cfg.loss.get("copy_noise", 0.5),
                          slot_weight=cfg.loss.get("slot_weight", 0.0))


def init_fn(mc: ModelConfig, lc: steps.LossConfig):
  """rng -> boxed params (FunASR, plus the Best-RQ head when pretraining)."""
  model = FunASR(mc)
  batch = dummy_batch(mc)

  def init(rng):
    k1, k2 = jax.random.split(rng)
    params = dict(model.init(k1, batch)["params"])
    if lc.objective == "bestrq":
      enc = jnp.zeros((1, 4, mc.encoder.hidden))
      params["bestrq"] = bestrq_lib.BestRQHead(lc.bestrq).init(k2, enc)["params"]
    return params
  return init


def merge_init_from(params, source: str):
  """Overwrites the components present in an earlier stage's checkpoint (same shapes)."""
  src_cfg, src_params, _, _ = ckpt_lib.load_model(source)
  del src_cfg
  flat_src = {state_lib.path_str(p): v for p, v in
              jax.tree_util.tree_flatten_with_path(src_params)[0]}
  taken, skipped = [], []

  def pick(path, leaf):
    key = state_lib.path_str(path)
    v = flat_src.get(key)
    if v is not None and tuple(v.shape) == tuple(leaf.shape):
      taken.append(key)
      return jax.device_put(jnp.asarray(v, leaf.dtype), leaf.sharding)
    if v is not None:
      skipped.append(f"{key} {tuple(v.shape)} vs {tuple(leaf.shape)}")
    return leaf
  out = jax.tree_util.tree_map_with_path(pick, params)
  comps = sorted({k.split("/")[0] for k in taken})
  logging.info("init_from %s: restored %d tensors (%s); %d kept fresh; %d shape mismatches",
               source, len(taken), ", ".join(comps), len(jax.tree.leaves(params)) - len(taken),
               len(skipped))
  if not taken:
    raise ValueError(f"config.init_from={source}: no tensor matches this model")
  return out


def measure_peak_flops(n: int = 1024, reps: int = 5) -> float:
  """This host's fp32 matmul FLOP/s (the MFU denominator on CPU)."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(reps):
    f(a).block_until_ready()
  return 2 * n**3 * reps / (time.perf_counter() - t)


# -- the trainer ----------------------------------------------------------------------------
class _QuietOrbax(std_logging.Filter):
  """Orbax logs every save step at INFO; keep its warnings, drop the chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) in `workdir`; returns the final metrics."""
  base_config.finalize(cfg)
  for handler in std_logging.getLogger().handlers + logging.get_absl_logger().handlers:
    if not any(isinstance(f, _QuietOrbax) for f in handler.filters):
      handler.addFilter(_QuietOrbax())
  distributed.maybe_initialize()
  is_main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  mesh = mesh_lib.make_mesh(cfg.mesh.to_dict())
  tokenizer = make_tokenizer(cfg, workdir)
  cache_dir = cfg.data.cache_dir or os.path.join(os.path.dirname(os.path.abspath(workdir)),
                                                 "data_cache")
  mc = cmvn.for_run(cfg, model_config_for(cfg, tokenizer), workdir, cache_dir)
  lc = loss_config(cfg)
  if is_main:
    with open(os.path.join(workdir, "model_config.json"), "w") as f:
      f.write(mc.to_json())
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(cfg.to_json_best_effort(indent=1))
    if not os.path.isdir(os.path.join(workdir, "tokenizer")):
      tokenizer.save(os.path.join(workdir, "tokenizer"))

  # -- data --
  n_data = mesh.shape["data"] * mesh.shape["fsdp"]
  if cfg.data.batch_size % max(n_data, 1) or cfg.data.batch_size % jax.process_count():
    raise ValueError(f"config.data.batch_size={cfg.data.batch_size} must divide over "
                     f"{n_data} data shards and {jax.process_count()} processes")
  train_pipe = Pipeline(cfg.data.train, mc, tokenizer,
                        pipeline_config(cfg, True, cfg.data.batch_size // jax.process_count()),
                        cache_dir, cfg.data.noise, jax.process_index(), jax.process_count())
  eval_pipe = None
  if cfg.data.eval and cfg.train.eval_every > 0 and cfg.objective != "bestrq":
    eval_pipe = Pipeline(cfg.data.eval, mc, tokenizer,
                         pipeline_config(cfg, False, cfg.data.eval_batch_size), cache_dir)
  data_iter = iter(train_pipe)

  # -- state --
  abstract_params = nn.meta.unbox(jax.eval_shape(init_fn(mc, lc), jax.random.key(0)))
  mask = state_lib.trainable_mask(abstract_params, tuple(cfg.trainable))
  if not any(jax.tree.leaves(mask)):
    raise ValueError(f"config.trainable={tuple(cfg.trainable)} matches no parameter")
  tx = state_lib.make_optimizer(cfg, mask)
  factory = state_lib.StateFactory(init_fn(mc, lc), tx, mesh, ema=cfg.optim.ema_decay > 0)
  abstract_state, shardings = factory.abstract()
  distributed.barrier("fun_asr_setup")  # before the checkpointer's first collective
  ckpt = ckpt_lib.TrainCheckpointer(workdir, cfg.train.keep, cfg.train.keep_every,
                                    cfg.train.async_checkpoint)
  start = ckpt.latest_step()
  if start is not None:
    state = ckpt.restore(start, abstract_state, shardings, data_iter)
    logging.info("resumed from %s at step %d", ckpt.directory, start)
  else:
    state, _ = factory.create(jax.random.key(cfg.seed))
    if cfg.init_from:
      state = state.replace(params=merge_init_from(state.params, cfg.init_from))
    if cfg.objective == "bestrq" and cfg.bestrq.init_from_llm:
      _, llm_params, _, _ = ckpt_lib.load_model(cfg.bestrq.init_from_llm)
      params, copied, skipped = llm_init.seed_encoder(
          dict(state.params), llm_params["llm"], mc.encoder.kind)
      if not copied:
        raise ValueError(f"config.bestrq.init_from_llm={cfg.bestrq.init_from_llm}: no LLM "
                         f"tensor matches an encoder tensor ({skipped[:3]} ...)")
      logging.info("encoder seeded from LLM layers: %d tensors copied, %d skipped (shape)",
                   len(copied), len(skipped))
      state = state.replace(params=params)
    state = state_lib.with_fresh_ema(state)  # the average starts from the initial weights

  # -- step --
  step_fn = jitted_step(cfg, mc, lc, tx, mask, shardings, mesh, tokenizer.eos_id,
                        tokenizer.pad_id)
  extra = grpo_inputs(cfg, factory, shardings, tokenizer, mesh) if cfg.objective == "grpo" \
      else ()
  peak = cfg.train.peak_flops or (measure_peak_flops() * jax.device_count()
                                  if jax.default_backend() == "cpu" else 0.0)
  programs = StepPrograms(step_fn, extra)

  # -- loop --
  stop = {"flag": False}
  previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
  writer = metrics_lib.MetricWriter(workdir, enabled=is_main)
  step = int(jax.device_get(state.step))
  t_last, steps_since, audio_s, tokens, flops_since = time.perf_counter(), 0, 0.0, 0.0, 0.0
  t_start = time.perf_counter()
  last_metrics, final_eval, pending = {}, {}, []
  try:
    while step < cfg.train.num_steps:
      host = next(data_iter)
      if jax.process_count() > 1:  # hosts may have drawn different buckets
        host = common_shape(host, tokenizer.pad_id)
      batch = mesh_lib.global_batch(host, mesh)
      fresh, t0 = not programs.ready(batch), time.perf_counter()
      compiled, flops = programs.get(state, batch)  # compiles, or waits for the background
      if fresh:
        t_last += time.perf_counter() - t0  # compiling is not training throughput
        if cfg.train.compile_ahead:
          programs.compile_ahead(state, batch, train_pipe.cfg.buckets)
      state, m = compiled(state, batch, *extra)
      pending.append(m)  # device arrays: no host sync until the next log line
      flops_since += flops
      step += 1
      steps_since += 1
      audio_s += float(np.sum(host["wave_lengths"])) / 16000.0
      tokens += float(np.sum(host["target_mask"]))
      if step % cfg.train.log_every == 0 or step == cfg.train.num_steps:
        m = mean_metrics(jax.device_get(pending))
        pending = []
        if m["nonfinite_consecutive"] >= cfg.train.max_nan_steps:
          raise NonFiniteLossError(
              f"{int(m['nonfinite_consecutive'])} consecutive steps had non-finite loss or "
              f"gradients (last loss {float(m['loss'])}); lower config.optim.lr or check the "
              "data. The last good checkpoint is in " + ckpt.directory)
        dt = time.perf_counter() - t_last
        m = dict(m, steps_per_s=steps_since / dt, audio_hours_per_s=audio_s / 3600 / dt,
                 tokens_per_s=tokens / dt, compiled_programs=len(programs),
                 data_corrupt_records=train_pipe.stats.corrupt,
                 data_too_long=train_pipe.stats.too_long)
        if peak:
          m["mfu"] = flops_since / dt / peak
        eta = (cfg.train.num_steps - step) / max(m["steps_per_s"], 1e-9)
        if is_main:
          logging.info(metrics_lib.progress_line(step, cfg.train.num_steps, m,
                                                 m["steps_per_s"], eta))
        writer.write(step, m)
        last_metrics = m
        t_last, steps_since, audio_s, tokens, flops_since = time.perf_counter(), 0, 0.0, 0.0, 0.0
      if eval_pipe is not None and (step % cfg.train.eval_every == 0 or
                                    step == cfg.train.num_steps):
        final_eval = run_eval(cfg, mc, state.ema if state.ema is not None else state.params,
                              tokenizer, eval_pipe)
        writer.write(step, {k: v for k, v in final_eval.items() if k != "utterances"}, "eval")
        if is_main:
          logging.info("eval at step %d: WER %.4f CER %.4f MER %.4f (%d utterances)", step,
                       final_eval["wer"], final_eval["cer"], final_eval["mer"],
                       final_eval["num_utterances"])
      ran = step - int(start or 0)
      if cfg.train.time_limit_minutes and \
          time.perf_counter() - t_start > 60 * cfg.train.time_limit_minutes and \
          step < cfg.train.num_steps:
        logging.info("time_limit_minutes=%.1f reached at step %d", cfg.train.time_limit_minutes,
                     step)
        stop["flag"] = True
      if cfg.train.stop_after_steps and ran >= cfg.train.stop_after_steps and \
          step < cfg.train.num_steps:
        logging.info("stop_after_steps=%d reached: saving step %d", ran, step)
        stop["flag"] = True
      if stop["flag"]:
        logging.warning("stopping early: saving step %d and exiting", step)
        ckpt.save(step, state, data_iter, cfg.to_dict(), force=True)
        ckpt.wait()
        break
      if cfg.train.save_every and step % cfg.train.save_every == 0:
        ckpt.save(step, state, data_iter, cfg.to_dict())
    else:
      if ckpt.latest_step() != step:
        ckpt.save(step, state, data_iter, cfg.to_dict(), force=True)
  finally:
    programs.close()
    signal.signal(signal.SIGTERM, previous)
    ckpt.close()
    writer.close()
  return {"step": step, "train": last_metrics, "eval": final_eval,
          "compiled_programs": len(programs), "preempted": stop["flag"],
          "train_seconds": time.perf_counter() - t_start}


class StepPrograms:
  """The train step compiled once per batch shape, with its FLOPs.

  `compile_ahead` compiles every other bucket's shape on one background thread while the
  first bucket trains, so a run with B buckets stalls once instead of B times (on TPU hosts
  a nano or full step takes minutes per bucket). A background compile that fails is logged
  and redone on the main thread when its shape is needed. At exit the process waits for a
  background compile already running (checkpoints are saved before that).
  """

  def __init__(self, step_fn, extra: tuple):
    self._step_fn, self._extra = step_fn, extra
    self._programs: dict = {}  # shape key -> Future of (compiled, flops)
    self._pool = None

  @staticmethod
  def _key(batch: dict) -> tuple:
    return tuple(sorted((k, tuple(v.shape)) for k, v in batch.items()))

  def __len__(self):
    """Programs compiled so far, those compiled ahead included."""
    return sum(f.done() and not f.cancelled() and f.exception() is None
               for f in self._programs.values())

  def ready(self, batch: dict) -> bool:
    future = self._programs.get(self._key(batch))
    return future is not None and future.done()

  def _compile(self, state, batch, how: str):
    t0 = time.perf_counter()
    compiled = self._step_fn.lower(state, batch, *self._extra).compile()
    # counted on the jaxpr: XLA's cost analysis counts a scanned layer stack once
    flops = flops_lib.count_flops(self._step_fn, state, batch, *self._extra)
    logging.info("compiled train step for batch shape %s in %.1f s%s (%.2f GFLOP/step)",
                 (batch["waveform"].shape, batch["tokens"].shape), time.perf_counter() - t0,
                 how, flops / 1e9)
    return compiled, flops

  def get(self, state, batch: dict):
    """(compiled step, FLOPs) for this batch's shape: compiled now (also when it is queued
    behind other shapes, so two compile at once, or when its background compile failed),
    or waited for while the background compiles it."""
    key = self._key(batch)
    future = self._programs.get(key)
    if future is not None and not future.cancel():
      concurrent.futures.wait([future])
      if future.exception() is None:
        return future.result()
    done = concurrent.futures.Future()
    done.set_result(self._compile(state, batch, ""))
    self._programs[key] = done
    return done.result()

  def compile_ahead(self, state, batch: dict, buckets: Buckets):
    """Queues every bucket shape not seen or queued yet, from `batch`'s structure and
    shardings (the first call queues them all)."""
    spec = lambda x, shape=None: jax.ShapeDtypeStruct(
        x.shape if shape is None else shape, x.dtype, sharding=x.sharding)
    abstract_state = jax.tree.map(spec, state)
    self._pool = self._pool or concurrent.futures.ThreadPoolExecutor(
        1, thread_name_prefix="compile_ahead")
    for samples, tokens in zip(buckets.samples, buckets.tokens):
      shaped = {k: spec(v, bucket_shape(k, v.shape, samples, tokens)) for k, v in batch.items()}
      if self._key(shaped) not in self._programs:
        future = self._pool.submit(self._compile, abstract_state, shaped,
                                   " ahead, in the background")
        future.add_done_callback(_log_failure)
        self._programs[self._key(shaped)] = future

  def close(self):
    """Drops queued compiles (one already running finishes on its thread)."""
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(future):
  if not future.cancelled() and future.exception() is not None:
    logging.warning("compiling a train step ahead failed (it is retried on the main thread "
                    "if its shape comes): %r", future.exception())


def jitted_step(cfg, mc, lc, tx, mask, shardings, mesh, eos_id: int, pad_id: int):
  """The stage's train step, jitted with the state's shardings and the state donated.

  SFT, CTC and Best-RQ steps take `(state, batch)`; the GRPO step also takes the frozen
  reference policy (None when rl.beta is 0) and the reward's unit tables. launch/describe
  compiles this same function ahead of time for TPU slices.
  """
  batch_sharding = mesh_lib.batch_sharding(mesh)
  if cfg.objective != "grpo":
    model = steps.training_model(mc, cfg.data.dither)
    return jax.jit(
        sharding_lib.with_rules(
            lambda s, b: steps.train_step(s, b, model=model, lc=lc, tx=tx,
                                          lr_fn=state_lib.schedule(cfg), trainable=mask,
                                          ema_decay=cfg.optim.ema_decay), mesh),
        in_shardings=(shardings, batch_sharding), out_shardings=(shardings, None),
        donate_argnums=(0,))
  rl_cfg = base_config.grpo_config(cfg)
  model = FunASR(mc)  # rollouts and scoring run deterministically, without dither
  return jax.jit(
      sharding_lib.with_rules(
          lambda s, b, r, t: grpo.train_step(s, r, b, t, model=model, cfg=rl_cfg, tx=tx,
                                             lr_fn=state_lib.schedule(cfg), eos_id=eos_id,
                                             pad_id=pad_id, trainable=mask,
                                             ema_decay=cfg.optim.ema_decay), mesh),
      in_shardings=(shardings, batch_sharding,
                    shardings.params if rl_cfg.beta > 0 else None, replicated(mesh)),
      out_shardings=(shardings, None), donate_argnums=(0,))


def replicated(mesh):
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def grpo_inputs(cfg, factory, shardings, tokenizer, mesh):
  """The GRPO step's extra inputs: the reference policy and the reward's unit tables.

  The reference is the policy GRPO starts from (`init_from` merged into a fresh state),
  rebuilt the same way on resume, so checkpoints need not carry a second copy.
  """
  ref_params = None
  if base_config.grpo_config(cfg).beta > 0:  # the same draw StateFactory.create makes
    _, init_rng = jax.random.split(jax.random.key(cfg.seed))
    ref_params = jax.jit(lambda k: nn.meta.unbox(factory.init_params(k)),
                         out_shardings=shardings.params)(init_rng)
    if cfg.init_from:
      ref_params = merge_init_from(ref_params, cfg.init_from)
  tables = jax.device_put(units_lib.build_tables(tokenizer).as_arrays(), replicated(mesh))
  return ref_params, tables


def run_eval(cfg, mc, params, tokenizer, pipe) -> dict:
  path = cfg.eval.path if (cfg.objective != "ctc") else "ctc"
  return evaluation.evaluate(mc, params, tokenizer, pipe, path=path,
                             max_new_tokens=cfg.eval.max_new_tokens,
                             max_batches=cfg.eval.num_batches)


__all__ = ["train", "NonFiniteLossError"]
