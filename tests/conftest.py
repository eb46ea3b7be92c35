"""Shared fixtures: the project's ../shared data (skipped with a reason when absent)."""

import json
import os
import shutil
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("FUN_ASR_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
# The suite runs on CPU. With libtpu installed (the AOT tests compile for TPU topologies)
# JAX would otherwise probe for a local TPU in every process; subprocesses inherit this.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compilation dominates this suite, and many tests compile the same programs: every
# `loop.train` (resume, SIGTERM, stages, EMA ...) jits a fresh step for the same tiny model.
# One XLA cache per session, empty at its start, loads a program compiled once by an
# earlier test or process instead of compiling it again (subprocesses inherit it).
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix="fun_asr_jax_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"


def pytest_unconfigure(config):
  """The process that made the cache removes it (xdist workers inherit it, not own it)."""
  if _OWN_CACHE and not hasattr(config, "workerinput"):
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


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


# The longest tests (minutes, in subprocesses) go first, so that with `-n 2` (pytest.ini)
# the short ones fill in around them instead of one long test finishing the run alone.
_LONGEST_FIRST = ("tests/parallel/test_multi_device.py", "tests/rl/test_grpo_stage.py",
                  "tests/train/test_loop.py::test_sigterm")


def pytest_collection_modifyitems(items):
  items.sort(key=lambda item: not item.nodeid.startswith(_LONGEST_FIRST))
