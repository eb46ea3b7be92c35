r"""What a config costs: parameters per component, and (with --topology) the compiled
train step on a TPU slice: HBM per chip, FLOPs per step, a roofline step time and MFU.

  python launch/describe.py --config=configs/sft.py:nano
  python launch/describe.py --config=configs/sft.py:s3,full --axes
  python launch/describe.py --config=configs/sft.py:s4,full --topology=v5p-64 \
      --batch_size=256 --seconds=30 --config.mesh.data=1 --config.mesh.fsdp=-1

--topology AOT-compiles the step launch/train.py would run (libtpu from PyPI compiles for
TPU on a CPU machine; nothing is allocated). Exits 1 when the step does not fit in HBM.
"""

import _bootstrap  # noqa: F401  pylint: disable=unused-import

import json
import sys

from absl import app, flags
from ml_collections import config_flags

from configs import models
from fun_asr_jax.models import describe

_CONFIG = config_flags.DEFINE_config_file("config", None, "Stage config file[:ARG].")
_AXES = flags.DEFINE_bool("axes", False, "Also list every parameter with its logical axes.")
_TOPOLOGY = flags.DEFINE_string("topology", "", "TPU slice (v4-32, v5e-16, v5e-256, v5p-64, "
                                "v6e-64, ...) or topology (v5p:2x2x2) to AOT-compile for.")
_BATCH = flags.DEFINE_integer("batch_size", 0, "Global utterances per step (default: "
                              "config.data.batch_size).")
_SECONDS = flags.DEFINE_float("seconds", 30.0, "Audio length of the compiled bucket.")
_TEXT = flags.DEFINE_integer("text_tokens", 192, "Prompt tokens besides the audio slots "
                             "(system prompt, task, transcript).")
_JSON = flags.DEFINE_string("json", "", "Also write the compile report here.")


def _fmt(n: int) -> str:
  return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def print_parameters(cfg):
  mc = models.from_dict(cfg.model.to_dict())
  counts = describe.parameter_counts(mc)
  print(f"config: {flags.FLAGS['config'].config_filename}  size: {cfg.get('size')}")
  print(f"{'component':<20}{'parameters':>14}")
  for name in ("encoder", "adaptor", "ctc", "llm", "llm_embed", "llm_lora", "llm_total",
               "total_without_ctc", "total"):
    if name in counts:
      print(f"{name:<20}{_fmt(counts[name]):>14}")
  total = counts["total"]
  print(f"memory (fp32 params + Adam moments): {total * 12 / 2**30:.2f} GiB; "
        f"bf16 params alone: {total * 2 / 2**30:.2f} GiB")
  if _AXES.value:
    for path, names in sorted(describe.logical_axes(mc).items()):
      print(f"  {path:<70} {names}")


def print_compiled(cfg) -> bool:
  from fun_asr_jax.train import aot  # pylint: disable=import-outside-toplevel
  batch = _BATCH.value or cfg.data.batch_size
  r = aot.compile_step(cfg, _TOPOLOGY.value, batch, _SECONDS.value, _TEXT.value)
  g = cfg.rl.group_size if cfg.objective == "grpo" else 1
  print(f"\n{cfg.stage or cfg.objective} step on {_TOPOLOGY.value} ({r['topology']}, "
        f"{r['devices']} devices, mesh {r['mesh']}), {batch} utterances x {_SECONDS.value:g} s"
        f"{f' x {g} samples' if g > 1 else ''}, prompt {r['prompt_tokens']} tokens; "
        f"compiled in {r['compile_s']:.0f} s")
  print(f"  HBM per device   {r['hbm_per_device_gib']:8.2f} GiB of {r['hbm_capacity_gib']:.0f} "
        f"(arguments {r['arguments_gib']:.2f}, temporaries {r['temp_gib']:.2f})"
        f"{'' if r['fits'] else '  DOES NOT FIT'}")
  print(f"  FLOPs per step   {r['model_flops']:.3e} useful (6ND), {r['executed_flops']:.3e} "
        f"executed (jaxpr count: attention, remat recompute)")
  print(f"  step at peak     {r['ideal_step_s'] * 1e3:8.1f} ms on {r['devices']} devices at "
        f"{r['peak_flops_per_device'] / 1e12:.0f} TFLOP/s bf16 -> MFU at most "
        f"{100 * r['mfu_bound']:.1f}%")
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(r, f, indent=1)
  return r["fits"]


def main(argv):
  del argv
  cfg = _CONFIG.value
  print_parameters(cfg)
  if _TOPOLOGY.value:
    try:
      fits = print_compiled(cfg)
    except Exception as e:  # pylint: disable=broad-except
      if "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower():
        print(f"\nDOES NOT FIT on {_TOPOLOGY.value}: the compiler ran out of HBM:\n"
              f"{str(e)[:2000]}", file=sys.stderr)
        sys.exit(1)
      raise
    if not fits:
      print(f"\nDOES NOT FIT on {_TOPOLOGY.value}: more HBM per device than the chip has; "
            "shard more (config.mesh), remat (model.*.remat) or use a smaller batch",
            file=sys.stderr)
      sys.exit(1)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
