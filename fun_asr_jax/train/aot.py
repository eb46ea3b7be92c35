"""Ahead-of-time compilation of the real train step for a TPU slice, on any machine.

libtpu (`pip install libtpu`) compiles for a TPU topology that is not attached
(`jax.experimental.topologies`), so before paying for a pod we can check that a stage's
step compiles, how much HBM each chip needs and how many FLOPs a step costs:

    slice -> its devices -> the config's mesh on them -> abstract sharded state and batch
      -> loop.jitted_step(...).lower(...).compile() -> memory_analysis, cost_analysis

Nothing is allocated: state and batch are ShapeDtypeStructs. The step is the one
`launch/train.py` runs (same function, shardings, donation and optimizer).
"""

import dataclasses
import re
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from configs import base as base_config
from configs import models as model_presets
from fun_asr_jax.data.pipeline import PipelineConfig
from fun_asr_jax.models import describe
from fun_asr_jax.models.fun_asr import ModelConfig, frame_counts, num_audio_tokens
from fun_asr_jax.parallel import mesh as mesh_lib
from fun_asr_jax.train import flops as flops_lib
from fun_asr_jax.train import loop
from fun_asr_jax.train import state as state_lib

_GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
  """Per JAX device of the generation: one chip (v4 and v5p run their two TensorCores as one
  'megacore' device, as JAX on a real v4/v5p VM does)."""
  hbm_bytes: float
  peak_flops: float  # dense bf16
  hbm_bandwidth: float  # bytes/s


# Google's published per-chip figures.
CHIPS = {
    "v4": Chip(hbm_bytes=32 * _GIB, peak_flops=275e12, hbm_bandwidth=1228e9),
    "v5e": Chip(hbm_bytes=16 * _GIB, peak_flops=197e12, hbm_bandwidth=819e9),
    "v5p": Chip(hbm_bytes=95 * _GIB, peak_flops=459e12, hbm_bandwidth=2765e9),
    "v6e": Chip(hbm_bytes=32 * _GIB, peak_flops=918e12, hbm_bandwidth=1640e9),
}

# Cloud TPU slice names (v4/v5p count TensorCores, v5e/v6e count chips) -> topologies.
SLICES = {
    "v4-8": "v4:2x2x1", "v4-32": "v4:2x2x4", "v4-128": "v4:4x4x4",
    "v5e-4": "v5e:2x2", "v5e-8": "v5e:2x4", "v5e-16": "v5e:4x4", "v5e-64": "v5e:8x8",
    "v5e-256": "v5e:16x16",
    "v5p-8": "v5p:2x2x1", "v5p-16": "v5p:2x2x2", "v5p-32": "v5p:2x2x4", "v5p-64": "v5p:2x4x4",
    "v5p-128": "v5p:4x4x4", "v5p-256": "v5p:4x4x8",
    "v6e-4": "v6e:2x2", "v6e-8": "v6e:2x4", "v6e-16": "v6e:4x4", "v6e-64": "v6e:8x8",
    "v6e-256": "v6e:16x16",
}


def slice_devices(name: str):
  """'v5p-64' (or a raw topology 'v5p:2x4x4') -> (devices, Chip, topology string)."""
  topology = SLICES.get(name, name)
  m = re.fullmatch(r"(v4|v5e|v5p|v6e):\d+(x\d+)+", topology)
  if not m:
    raise ValueError(f"--topology={name!r}: expected one of {', '.join(SLICES)} or a "
                     "topology such as v5p:2x2x2")
  try:
    from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
    # v4's topology otherwise lists each TensorCore as a device, and meshes for TPU > v3
    # need one device per chip (megacore), which is how v4 VMs run JAX
    extra = {"chip_config_name": "megacore"} if m.group(1) == "v4" else {}
    desc = topologies.get_topology_desc(platform="tpu", topology_name=topology, **extra)
  except Exception as e:  # libtpu missing, busy, or the shape unknown to it
    hint = ("another process holds libtpu; run one at a time or set "
            "ALLOW_MULTIPLE_LIBTPU_LOAD=1" if "lockfile" in str(e)
            else "AOT compilation for TPU needs `pip install libtpu`")
    raise RuntimeError(f"cannot describe TPU topology {topology!r} ({e}); {hint}") from e
  return desc.devices, CHIPS[m.group(1)], topology


def abstract_batch(cfg, mc: ModelConfig, batch_size: int, seconds: float,
                   text_tokens: int = 192) -> dict:
  """The batch a bucket of `seconds` audio gives, as ShapeDtypeStructs.

  Prompt length = audio slots + `text_tokens` (system prompt, task and target), rounded up
  to a multiple of 128 as bucket lengths are.
  """
  n = int(round(seconds * mc.frontend.fbank.sample_rate))
  s = -(-(num_audio_tokens(mc, n) + text_tokens) // 128) * 128
  spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, jnp.dtype(dtype))
  b = batch_size
  out = {"waveform": spec((b, n), "float32"), "wave_lengths": spec((b,), "int32"),
         "tokens": spec((b, s), "int32"), "audio_mask": spec((b, s), "bool"),
         "target_mask": spec((b, s), "bool"), "paddings": spec((b, s), "float32"),
         "ctc_labels": spec((b, s), "int32"), "ctc_label_paddings": spec((b, s), "float32"),
         "is_noise": spec((b,), "bool")}
  if cfg.objective == "grpo" and cfg.rl.max_hotwords > 0:
    k, h = cfg.rl.max_hotwords, PipelineConfig().hotword_tokens
    out.update(hotword_tokens=spec((b, k, h), "int32"), hotword_lengths=spec((b, k), "int32"))
  if loop.prompt_hotword_entries(cfg):
    out["prompt_hotword_ids"] = spec(
        (b, loop.prompt_hotword_entries(cfg), PipelineConfig().hotword_tokens), "int32")
  return out


def unit_table_shapes(vocab_size: int) -> dict:
  """Shapes of rl.units.build_tables(tokenizer).as_arrays() for a `vocab_size` tokenizer
  (token_bytes at its widest: a real tokenizer's longest token may be shorter)."""
  from fun_asr_jax.rl import units  # pylint: disable=import-outside-toplevel
  return {"token_bytes": jax.ShapeDtypeStruct((vocab_size, units.MAX_TOKEN_BYTES), jnp.int32),
          "char_map": jax.ShapeDtypeStruct((65536, units.EXPANSION), jnp.int32)}


def model_config(cfg) -> ModelConfig:
  """From-scratch presets size their vocabulary from the tokenizer; AOT uses bytes."""
  return model_presets.from_dict(cfg.model.to_dict())


def step_flops(cfg, mc: ModelConfig, batch_size: int, seconds: float, tokens: int) -> float:
  """Useful FLOPs of one step by the 6·N·D convention (weight matmuls only, no recompute).

  Per component: 2·N·D forward, +2·N·D for activation gradients when anything trainable
  sits at or below it, +2·N·D for weight gradients when it is trainable itself. D is the
  encoder's output frames for encoder and CTC, the adaptor's for the adaptor, the prompt
  length for the LLM. GRPO adds the rollout (2·N per generated token) and the reference
  pass (2·N·D). What the compiled step executes (attention, remat recompute) is counted
  on its jaxpr instead (train/flops.py).
  """
  n = int(round(seconds * mc.frontend.fbank.sample_rate))
  counts = describe.parameter_counts(mc)
  _, enc_frames, ada_frames = frame_counts(mc, n)
  trainable = tuple(cfg.trainable)
  # full weight gradients only for components trained whole; LoRA ('llm/lora') still
  # needs the activation gradients through its component
  trains = lambda comp: "all" in trainable or comp in trainable
  touched = lambda comp: trains(comp) or any(t.startswith(comp + "/") for t in trainable)
  g = cfg.rl.group_size if cfg.objective == "grpo" else 1
  rows = batch_size * g
  llm_n = counts.get("llm", 0) + counts.get("llm_lora", 0) + (
      mc.llm.vocab_size * mc.llm.hidden_size)  # the output projection is a matmul too
  parts = [("encoder", counts.get("encoder", 0), batch_size * enc_frames),
           ("adaptor", counts.get("adaptor", 0), batch_size * ada_frames),
           ("llm", llm_n, rows * tokens)]
  if cfg.objective in ("ctc", "sft") and mc.ctc.enabled and (
      cfg.objective == "ctc" or cfg.loss.ctc_weight > 0):
    parts.append(("ctc", counts.get("ctc", 0), batch_size * enc_frames))
  if cfg.objective == "ctc":
    parts = [p for p in parts if p[0] in ("encoder", "ctc")]
  order = ["encoder", "adaptor", "llm", "ctc"]
  total = 0.0
  for name, params, d in parts:
    below = order[: order.index(name) + 1] if name != "ctc" else ["encoder", "ctc"]
    backward = any(touched(c) for c in below)
    total += (2 + 2 * backward + 2 * trains(name)) * params * d
  if cfg.objective == "grpo":
    total += 2 * llm_n * rows * cfg.rl.max_new_tokens  # rollout: one token at a time
    if cfg.rl.beta > 0:
      total += 2 * llm_n * rows * tokens  # the reference policy's pass
  return float(total)


def _cost(compiled) -> dict:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return dict(cost or {})


@dataclasses.dataclass
class Prepared:
  """A stage's jitted train step and its abstract inputs on a mesh."""
  step: object
  state: object  # abstract TrainState
  factory: state_lib.StateFactory
  mc: ModelConfig
  batch: dict  # abstract batch
  extra: tuple  # the GRPO step's reference params and unit tables (abstract)


def prepare(cfg, devices, batch_size: int, seconds: float, text_tokens: int = 192) -> Prepared:
  """The step `launch/train.py` would run for `cfg` on `devices`, with abstract inputs."""
  base_config.finalize(cfg)
  mesh = mesh_lib.make_mesh(cfg.mesh.to_dict(), devices)
  n_batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if batch_size % n_batch_shards:
    raise ValueError(f"batch_size={batch_size} does not divide over the {n_batch_shards} "
                     f"data x fsdp shards of mesh {dict(mesh.shape)}")
  mc = model_config(cfg)
  lc = loop.loss_config(cfg)
  init = loop.init_fn(mc, lc)
  mask = state_lib.trainable_mask(nn.meta.unbox(jax.eval_shape(init, jax.random.key(0))),
                                  tuple(cfg.trainable))
  tx = state_lib.make_optimizer(cfg, mask)
  factory = state_lib.StateFactory(init, tx, mesh, ema=cfg.optim.ema_decay > 0)
  state, shardings = factory.abstract()
  vocab = mc.llm.vocab_size
  step = loop.jitted_step(cfg, mc, lc, tx, mask, shardings, mesh, eos_id=vocab - 2,
                          pad_id=vocab - 1)
  batch = abstract_batch(cfg, mc, batch_size, seconds, text_tokens)
  extra = ()
  if cfg.objective == "grpo":
    extra = (state.params if cfg.rl.beta > 0 else None, unit_table_shapes(vocab))
  return Prepared(step, state, factory, mc, batch, extra)


def compile_step(cfg, topology: str, batch_size: int, seconds: float,
                 text_tokens: int = 192) -> dict:
  """AOT-compiles `cfg`'s train step for `topology`; returns the memory and FLOP report.

  `batch_size` is global (utterances; GRPO samples `rl.group_size` responses for each).
  """
  devices, chip, topo = slice_devices(topology)
  p = prepare(cfg, devices, batch_size, seconds, text_tokens)
  step, state, mc, batch, extra = p.step, p.state, p.mc, p.batch, p.extra
  mesh = p.factory.mesh
  t0 = time.perf_counter()
  compiled = step.lower(state, batch, *extra).compile()
  compile_s = time.perf_counter() - t0
  mem, cost = compiled.memory_analysis(), _cost(compiled)
  peak_bytes = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                - mem.alias_size_in_bytes + mem.temp_size_in_bytes)
  useful = step_flops(cfg, mc, batch_size, seconds, batch["tokens"].shape[1])
  executed = flops_lib.count_flops(
      step, state, batch, *extra,
      while_trips=cfg.rl.max_new_tokens if cfg.objective == "grpo" else 1)
  n_dev = len(devices)
  ideal_s = executed / (n_dev * chip.peak_flops)
  return {
      "topology": topo, "devices": n_dev, "mesh": {k: int(v) for k, v in mesh.shape.items()},
      "batch_size": batch_size, "seconds": seconds, "prompt_tokens": batch["tokens"].shape[1],
      "compile_s": round(compile_s, 1),
      "hbm_per_device_gib": round(peak_bytes / _GIB, 3),
      "hbm_capacity_gib": round(chip.hbm_bytes / _GIB, 1),
      "fits": peak_bytes <= chip.hbm_bytes,
      "arguments_gib": round(mem.argument_size_in_bytes / _GIB, 3),
      "temp_gib": round(mem.temp_size_in_bytes / _GIB, 3),
      "model_flops": useful, "executed_flops": executed,
      # XLA's own count per device (a scanned stack's body once): kept for comparisons
      "xla_flops_per_device": float(cost.get("flops", 0.0)),
      # executed: every matmul of the compiled step counted on its jaxpr (remat recompute,
      # attention, the output projection); every chip at its bf16 peak doing them gives
      # the step time below and the MFU it allows
      "ideal_step_s": ideal_s, "mfu_bound": useful / executed if executed else 0.0,
      "peak_flops_per_device": chip.peak_flops,
  }
