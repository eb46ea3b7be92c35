"""A tiny checkpoint trained inside the tests, loaded through the public API."""

import pytest

from fun_asr_jax import FunASR
from fun_asr_jax.train import loop
from tests.conftest import read_manifest
from tests.train.helpers import tiny_config


@pytest.fixture(scope="session")
def asr_workdir(corpus, tmp_path_factory):
  work = str(tmp_path_factory.mktemp("asr") / "run")
  loop.train(tiny_config(corpus, steps=2), work)
  return work


@pytest.fixture(scope="session")
def asr(asr_workdir):
  return FunASR.load(asr_workdir)


@pytest.fixture(scope="session")
def clips(corpus):
  rows = [r for r in read_manifest(corpus["test"]) if r["text"]][:3]
  return [r["audio"] for r in rows]


