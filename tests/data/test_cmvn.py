"""Global CMVN: statistics against kaldi-native-fbank + NumPy, and how a run keeps them."""

import json
import os

import numpy as np
import pytest

from configs import models
from fun_asr_jax.data import cmvn
from fun_asr_jax.train import loop
from tests.audio.test_features import knf_fbank
from tests.train.helpers import tiny_config


def test_estimate_is_numpy_statistics_of_kaldi_fbank_frames():
  mc = models.model_config("tiny")
  rng = np.random.default_rng(0)
  t = np.arange(16000 * 2) / 16000
  waves = [(0.3 * np.sin(2 * np.pi * f * t[: n]) + rng.normal(0, 0.02, n)).astype(np.float32)
           for f, n in ((220, 9000), (700, 23000), (1500, 16000))]
  mean, istd = cmvn.estimate(waves, mc)
  frames = np.concatenate([knf_fbank(w * 32768.0, mc.frontend.fbank) for w in waves])
  np.testing.assert_allclose(mean, frames.mean(0), atol=2e-3)
  np.testing.assert_allclose(istd, 1.0 / np.sqrt(frames.var(0) + 1e-5), rtol=2e-3)


def test_a_run_estimates_once_and_keeps_its_statistics(corpus, tmp_path):
  work = str(tmp_path / "run")
  c = tiny_config(corpus, steps=2, **{"data.global_cmvn": 12})
  c.model.frontend.utterance_norm = False
  loop.train(c, work)
  saved = json.load(open(os.path.join(work, "model_config.json")))["frontend"]
  assert len(saved["cmvn_mean"]) == 80 and min(saved["cmvn_istd"]) > 0
  # resuming keeps the workdir's statistics even if the data would now give others
  c2 = tiny_config(corpus, steps=4, **{"data.global_cmvn": 5})
  c2.model.frontend.utterance_norm = False
  loop.train(c2, work)
  again = json.load(open(os.path.join(work, "model_config.json")))["frontend"]
  assert again["cmvn_mean"] == saved["cmvn_mean"]
  # a later stage initialised from it normalises the same way
  c3 = tiny_config(corpus, steps=2, **{"data.global_cmvn": 5, "init_from": work})
  c3.model.frontend.utterance_norm = False
  loop.train(c3, str(tmp_path / "next"))
  nxt = json.load(open(os.path.join(str(tmp_path / "next"), "model_config.json")))["frontend"]
  assert nxt["cmvn_istd"] == saved["cmvn_istd"]


def test_global_cmvn_with_utterance_norm_is_rejected(corpus, tmp_path):
  c = tiny_config(corpus, steps=2, **{"data.global_cmvn": 10})
  with pytest.raises(ValueError, match="model.frontend.utterance_norm"):
    loop.train(c, str(tmp_path / "run"))
