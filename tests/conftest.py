"""Shared fixtures: the project's ../shared data (skipped with a reason when absent)."""

import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("FUN_ASR_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
# The suite runs on CPU. With libtpu installed (the AOT tests compile for TPU topologies)
# JAX would otherwise probe for a local TPU in every process; subprocesses inherit this.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def read_manifest(path):
  folder = os.path.dirname(path)
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  for r in rows:
    r["audio"] = os.path.join(folder, r["audio"])
  return rows


@pytest.fixture(scope="session")
def shared_data():
  data = os.path.join(SHARED, "data")
  if not os.path.isdir(data):
    pytest.skip(f"{data} is absent: the real-recording tests need the project's ../shared folder")
  return data


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
  """A small embedded corpus and its shards, built once per test session."""
  from fun_asr_jax.data import build, synth  # pylint: disable=import-outside-toplevel
  folder = str(tmp_path_factory.mktemp("corpus"))
  paths = synth.write_corpus(folder, num_utterances=80, seed=1, test_fraction=0.25,
                             num_workers=1)
  shards = os.path.join(folder, "shards")
  build.build_from_manifest(paths["train"], shards, num_shards=4, num_workers=1)
  return {"folder": folder, "train": paths["train"], "test": paths["test"], "shards": shards}
