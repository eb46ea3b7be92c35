"""Model checkpoints on disk: config + Orbax params + tokenizer, written atomically.

Layout of a model folder (what convert.py writes and every command loads):

    DIR/model_config.json     ModelConfig as JSON
    DIR/params/               Orbax PyTree checkpoint of the parameter tree
    DIR/tokenizer/            tokenizer.json (optional)
    DIR/meta.json             provenance (source format, components present)

Everything is first written to a sibling temporary folder and renamed into place only
when complete, so an interrupted save never leaves a partial checkpoint and never touches
an existing one.
"""

import json
import os
import shutil
import tempfile

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from fun_asr_jax.models.fun_asr import ModelConfig
from fun_asr_jax.train import state as state_lib


def save_model(folder: str, params, cfg: ModelConfig, tokenizer=None, meta: dict | None = None,
               overwrite: bool = False):
  """Writes a model folder atomically (see module doc)."""
  folder = os.path.abspath(folder)
  if os.path.exists(folder) and not overwrite:
    raise FileExistsError(f"{folder} already exists (pass overwrite=True to replace it)")
  parent = os.path.dirname(folder)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".partial-", dir=parent)
  try:
    with open(os.path.join(tmp, "model_config.json"), "w") as f:
      f.write(cfg.to_json())
    ckptr = ocp.PyTreeCheckpointer()
    ckptr.save(os.path.join(tmp, "params"), jax.tree.map(np.asarray, nn.meta.unbox(params)))
    if tokenizer is not None:
      tokenizer.save(os.path.join(tmp, "tokenizer"))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
      json.dump(meta or {}, f, indent=1)
    if os.path.exists(folder):
      shutil.rmtree(folder)
    os.rename(tmp, folder)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def load_config(folder: str) -> ModelConfig:
  path = os.path.join(folder, "model_config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{folder}: not a fun_asr_jax model folder (no model_config.json)")
  with open(path) as f:
    return ModelConfig.from_dict(json.load(f))


def load_model(folder: str):
  """A model folder or a training workdir -> (ModelConfig, params, Tokenizer or None, meta)."""
  from fun_asr_jax.text.tokenizer import load_tokenizer  # pylint: disable=import-outside-toplevel
  cfg = load_config(folder)
  if os.path.isdir(os.path.join(folder, "params")):
    params = ocp.PyTreeCheckpointer().restore(os.path.join(os.path.abspath(folder), "params"))
  else:  # a training workdir: its newest checkpoint
    params, _ = restore_params(folder)
  tok_dir = os.path.join(folder, "tokenizer")
  tokenizer = load_tokenizer(tok_dir) if os.path.isdir(tok_dir) else None
  meta_path = os.path.join(folder, "meta.json")
  meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
  return cfg, params, tokenizer, meta


# ---------------------------------------------------------------------------------------
# Training checkpoints: Orbax CheckpointManager in WORKDIR/checkpoints.
#   params  model parameters
#   ema     their moving average, when optim.ema_decay > 0 (then what init_from and the
#           inference commands read instead of params)
#   opt     step, optimizer state, rng
#   data    grain iterator state (exact resume of the input pipeline)
#   config  the run's config (JSON)
# ---------------------------------------------------------------------------------------
class TrainCheckpointer:
  """Saves and restores train state + data iterator + config with retention rules."""

  def __init__(self, workdir: str, keep: int = 2, keep_every: int = 0,
               async_save: bool = True):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    opts = ocp.CheckpointManagerOptions(
        max_to_keep=keep, keep_period=keep_every or None, create=True,
        enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=opts)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step: int, state, data_iterator=None, config: dict | None = None,
           force: bool = False) -> bool:
    items = {"params": ocp.args.StandardSave(state.params),
             "opt": ocp.args.StandardSave({"step": state.step, "opt_state": state.opt_state,
                                           "rng": jax.random.key_data(state.rng)})}
    if state.ema is not None:
      items["ema"] = ocp.args.StandardSave(state.ema)
    if data_iterator is not None:
      import grain  # pylint: disable=import-outside-toplevel
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    if config is not None:
      items["config"] = ocp.args.JsonSave(config)
    return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, step: int, abstract_state, shardings, data_iterator=None):
    """Restores onto `shardings` (any mesh shape); returns the state."""
    def target(tree, sh):
      return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          tree, sh)
    opt_abstract = {"step": target(abstract_state.step, shardings.step),
                    "opt_state": target(abstract_state.opt_state, shardings.opt_state),
                    "rng": jax.ShapeDtypeStruct(
                        jax.eval_shape(jax.random.key_data, abstract_state.rng).shape,
                        np.uint32, sharding=shardings.rng)}
    items = {"params": ocp.args.StandardRestore(target(abstract_state.params,
                                                       shardings.params)),
             "opt": ocp.args.StandardRestore(opt_abstract)}
    has_ema = "ema" in self.manager.item_metadata(step)
    if abstract_state.ema is not None and has_ema:
      items["ema"] = ocp.args.StandardRestore(target(abstract_state.ema, shardings.ema))
    if data_iterator is not None:
      import grain  # pylint: disable=import-outside-toplevel
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    out = self.manager.restore(step, args=ocp.args.Composite(**items))
    state = abstract_state.replace(
        step=out["opt"]["step"], params=out["params"], opt_state=out["opt"]["opt_state"],
        rng=jax.random.wrap_key_data(out["opt"]["rng"]), ema=out.get("ema"))
    if abstract_state.ema is not None and not has_ema:  # EMA switched on at a resume
      state = state_lib.with_fresh_ema(state)
    return state

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def restore_params(workdir: str, step: int | None = None):
  """Parameters of a training workdir's newest (or given) checkpoint, as host arrays.

  The EMA of the parameters when the run kept one, else the parameters.
  """
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{workdir}: no checkpoints/ folder")
  mgr = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(read_only=True),
                              item_handlers={"params": ocp.StandardCheckpointHandler(),
                                             "ema": ocp.StandardCheckpointHandler()})
  step = mgr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"{directory}: no complete checkpoint")
  # Restore onto this host's first device whatever topology wrote it.
  saved = mgr.item_metadata(step)
  item = "ema" if "ema" in saved and saved["ema"] is not None else "params"
  meta = saved[item]
  meta = getattr(meta, "tree", meta)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta)
  out = mgr.restore(step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(target)}))
  mgr.close()
  return jax.tree.map(np.asarray, out[item]), step
