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
  """-> (ModelConfig, params (plain arrays), Tokenizer or None, meta dict)."""
  from fun_asr_jax.text.tokenizer import load_tokenizer  # pylint: disable=import-outside-toplevel
  cfg = load_config(folder)
  params = ocp.PyTreeCheckpointer().restore(os.path.join(os.path.abspath(folder), "params"))
  tok_dir = os.path.join(folder, "tokenizer")
  tokenizer = load_tokenizer(tok_dir) if os.path.isdir(tok_dir) else None
  meta_path = os.path.join(folder, "meta.json")
  meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
  return cfg, params, tokenizer, meta
