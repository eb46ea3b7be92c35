"""A small embedded corpus and its shards, built once per test session."""

import os

import pytest

from fun_asr_jax.data import build, synth


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("corpus"))
  paths = synth.write_corpus(folder, num_utterances=80, seed=1, test_fraction=0.25,
                             num_workers=1)
  shards = os.path.join(folder, "shards")
  build.build_from_manifest(paths["train"], shards, num_shards=4, num_workers=1)
  return {"folder": folder, "train": paths["train"], "test": paths["test"], "shards": shards}
