r"""nano and full train steps AOT-compiled for TPU slices: HBM per chip, FLOPs, MFU bound.

  pip install libtpu
  python bench/tpu_aot.py --output=/tmp/tpu_aot.json                  # every case below
  python bench/tpu_aot.py --cases=full_s4_v5p-64,nano_grpo_v5e-16

Each case compiles the step launch/train.py runs (train/aot.py) for a slice on this CPU and
records what launch/describe.py prints. SFT: s4 (encoder + adaptor trained, LLM through
LoRA), 30 s utterances; GRPO: 30 s utterances x 8 samples of up to 128 tokens.
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from configs import grpo, sft  # noqa: E402
from fun_asr_jax.train import aot  # noqa: E402

# name -> (size, stage, slice, global utterances, mesh overrides)
CASES = {
    "nano_s4_v5e-16": ("nano", "s4", "v5e-16", 64, {}),
    "nano_s4_v5e-16_b128": ("nano", "s4", "v5e-16", 128, {}),
    "nano_grpo_v5e-16": ("nano", "grpo", "v5e-16", 16, {}),
    "nano_s4_v4-32": ("nano", "s4", "v4-32", 256, {}),
    "nano_s4_v5p-64": ("nano", "s4", "v5p-64", 256, {}),
    "nano_s4_v6e-64": ("nano", "s4", "v6e-64", 256, {}),
    "nano_s4_v5e-256": ("nano", "s4", "v5e-256", 1024, {}),
    "full_s4_v5p-64": ("full", "s4", "v5p-64", 256, {}),
    "full_s4_v5p-64_tp4": ("full", "s4", "v5p-64", 256, {"fsdp": 8, "tensor": 4}),
    "full_grpo_v5p-64": ("full", "grpo", "v5p-64", 32, {}),
    "full_s4_v4-32": ("full", "s4", "v4-32", 64, {}),
    "full_s4_v6e-64": ("full", "s4", "v6e-64", 256, {}),
    "full_s4_v5e-256": ("full", "s4", "v5e-256", 256, {}),
}

_CASES = flags.DEFINE_list("cases", list(CASES), "Which cases to compile.")
_OUTPUT = flags.DEFINE_string("output", "/tmp/tpu_aot.json", "Results (JSON, one per case).")


def config_for(size: str, stage: str, mesh: dict):
  c = grpo.get_config(size) if stage == "grpo" else sft.get_config(f"{stage},{size}")
  if stage == "grpo":
    c.rl.update(group_size=8, max_new_tokens=128)
  c.mesh.update(**mesh)
  if mesh:
    c.mesh.fsdp = -1 if "fsdp" not in mesh else mesh["fsdp"]
  return c


def main(argv):
  del argv
  results = json.load(open(_OUTPUT.value)) if os.path.exists(_OUTPUT.value) else {}
  for name in _CASES.value:
    size, stage, slice_name, batch, mesh = CASES[name]
    t = time.time()
    try:
      r = aot.compile_step(config_for(size, stage, mesh), slice_name, batch, 30.0)
    except Exception as e:  # pylint: disable=broad-except
      if "RESOURCE_EXHAUSTED" not in str(e):
        raise
      r = {"fits": False, "error": str(e).splitlines()[0][:300]}
    r.update(case=name, size=size, stage=stage, slice=slice_name, batch_size=batch,
             wall_s=round(time.time() - t, 1))
    results[name] = r
    with open(_OUTPUT.value, "w") as f:
      json.dump(results, f, indent=1)
    print(json.dumps(r), flush=True)
  table(results, _CASES.value)


def table(results: dict, names):
  print("\n| case | mesh | batch | HBM/chip GiB | fits | useful PFLOP/step | step at peak ms |"
        " MFU bound |")
  for name in names:
    r = results[name]
    if "error" not in r:  # useful FLOPs from the current formula (cheap, no compile)
      size, stage, _, batch, mesh = CASES[name]
      cfg = config_for(size, stage, mesh)
      r["model_flops"] = aot.step_flops(cfg, aot.model_config(cfg), batch, 30.0,
                                        r["prompt_tokens"])
      r["mfu_bound"] = r["model_flops"] / r["executed_flops"]
    if "error" in r:
      print(f"| {name} | | {r['batch_size']} | > capacity | no | | | |")
      continue
    print(f"| {name} | {r['mesh']} | {r['batch_size']} | {r['hbm_per_device_gib']:.1f} / "
          f"{r['hbm_capacity_gib']:.0f} | {'yes' if r['fits'] else 'no'} | "
          f"{r['model_flops'] / 1e15:.2f} | {r['ideal_step_s'] * 1e3:.0f} | "
          f"{100 * r['mfu_bound']:.0f}% |")


if __name__ == "__main__":
  app.run(main)
