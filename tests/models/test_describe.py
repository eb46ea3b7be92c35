"""Size presets: parameter counts and logical axis names, from shapes only."""

import pytest

from configs import models
from fun_asr_jax.models import describe
from fun_asr_jax.parallel.sharding import KNOWN_AXES


def test_nano_matches_fun_asr_nano_parameter_count():
  counts = describe.parameter_counts(models.model_config("nano"))
  # Fun-ASR-Nano-2512: encoder 221.1M + adaptor 12.6M + LLM 596.0M = 829.8M; CTC ~39M.
  assert abs(counts["total_without_ctc"] - 829.8e6) / 829.8e6 < 0.05
  assert abs(counts["encoder"] - 221.1e6) < 0.5e6
  assert abs(counts["adaptor"] - 12.6e6) < 0.1e6
  assert abs(counts["llm_total"] - 596.0e6) < 0.5e6
  assert abs(counts["ctc"] - 39e6) < 1e6


def test_full_is_about_7_7b():
  counts = describe.parameter_counts(models.model_config("full"))
  assert abs(counts["total_without_ctc"] - 7.7e9) / 7.7e9 < 0.05
  assert 0.6e9 < counts["encoder"] < 0.8e9
  assert 6.5e9 < counts["llm_total"] < 7.5e9


@pytest.mark.parametrize("size", ["tiny", "small", "nano", "full"])
def test_every_parameter_has_known_logical_axes(size):
  cfg = models.model_config(size)
  axes = describe.logical_axes(cfg)
  missing = [p for p, names in axes.items() if names is None]
  assert not missing, missing[:10]
  unknown = {n for names in axes.values() for n in names if n not in KNOWN_AXES}
  assert not unknown, f"axis names not in the rules table: {unknown}"


def test_lora_parameters_only_on_targets():
  import dataclasses
  cfg = models.model_config("tiny")
  cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, lora_rank=4))
  lora = [p for p in describe.logical_axes(cfg) if "/lora_" in p]
  assert lora and all(("q_proj" in p or "v_proj" in p) and p.startswith("llm/") for p in lora)
  assert len(lora) == 4


def test_unknown_size_is_an_error():
  with pytest.raises(ValueError, match="tiny, small, nano, full"):
    models.model_config("huge")
