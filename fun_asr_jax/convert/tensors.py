"""Reading foreign weights and fitting them into our param trees, loudly.

`read_safetensors` parses the format directly (header JSON + raw bytes) so bf16 checkpoints
load through ml_dtypes without torch. `fit` checks a flat {path: array} mapping against the
shapes our model expects and reports every missing, unexpected and misshaped tensor at once.
"""

import glob
import json
import os
import struct

import jax
import ml_dtypes
import numpy as np

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


class CheckpointMismatchError(ValueError):
  """Source tensors do not match the model the config describes."""


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """One .safetensors file -> {name: array} (fp32 for floating types)."""
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    if info["dtype"] not in _ST_DTYPES:
      raise CheckpointMismatchError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
    start, end = info["data_offsets"]
    arr = np.frombuffer(data[start:end], dtype=_ST_DTYPES[info["dtype"]]).reshape(info["shape"])
    out[name] = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) or \
        arr.dtype == ml_dtypes.bfloat16 else arr
  return out


def read_safetensors_folder(folder: str) -> dict[str, np.ndarray]:
  """All tensors of a Hugging Face folder (single file or sharded with an index)."""
  index = os.path.join(folder, "model.safetensors.index.json")
  if os.path.exists(index):
    with open(index) as f:
      files = sorted(set(json.load(f)["weight_map"].values()))
    paths = [os.path.join(folder, p) for p in files]
  else:
    paths = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
  if not paths:
    raise FileNotFoundError(f"{folder}: no *.safetensors files (and no model.safetensors.index.json)")
  tensors = {}
  for p in paths:
    if not os.path.exists(p):
      raise FileNotFoundError(f"{folder}: index names shard {os.path.basename(p)}, which is missing")
    tensors.update(read_safetensors(p))
  return tensors


def flatten(tree) -> dict[str, object]:
  """Nested dict -> {'a/b/c': leaf}."""
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    flat["/".join(str(getattr(k, "key", k)) for k in path)] = leaf
  return flat


def unflatten(flat: dict[str, object]) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    parts = key.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = value
  return tree


def fit(expected_shapes, flat: dict[str, np.ndarray], source: str) -> dict:
  """Checks `flat` against the expected tree of ShapeDtypeStructs and nests it.

  Raises:
    CheckpointMismatchError listing every missing, unexpected and misshaped tensor.
  """
  want = flatten(expected_shapes)
  missing = sorted(set(want) - set(flat))
  extra = sorted(set(flat) - set(want))
  bad = [f"{k}: source {tuple(flat[k].shape)} vs model {tuple(want[k].shape)}"
         for k in sorted(set(want) & set(flat)) if tuple(flat[k].shape) != tuple(want[k].shape)]
  problems = []
  if missing:
    problems.append(f"missing {len(missing)}: {', '.join(missing[:20])}")
  if extra:
    problems.append(f"unexpected {len(extra)}: {', '.join(extra[:20])}")
  if bad:
    problems.append(f"misshaped {len(bad)}: {'; '.join(bad[:20])}")
  if problems:
    raise CheckpointMismatchError(f"{source} does not match the model: " + " | ".join(problems))
  return unflatten({k: np.asarray(flat[k], dtype=want[k].dtype) for k in want})


def stack_layers(tensors: dict[str, np.ndarray], pattern: str, num_layers: int,
                 transpose: bool = False) -> np.ndarray:
  """Stacks per-layer tensors `pattern.format(i)` into `[L, ...]`, raising on a missing one."""
  arrays = []
  for i in range(num_layers):
    name = pattern.format(i)
    if name not in tensors:
      raise CheckpointMismatchError(f"missing tensor {name} (expected {num_layers} layers)")
    a = tensors.pop(name)
    arrays.append(a.T if transpose else a)
  return np.stack(arrays)
