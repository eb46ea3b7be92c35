"""Model size presets: tiny (CPU tests), small (CPU accuracy runs), nano (Fun-ASR-Nano
geometry, ~0.83B), full (~7.7B: 0.7B SAN-M encoder + a 7B-class Qwen3-style LLM).

Each preset is a plain nested dict of `ModelConfig` fields, so any field can be overridden
from the command line (`--config.model.llm.num_layers=4`).
"""

import copy
import dataclasses

from fun_asr_jax.models.fun_asr import ModelConfig

SIZES = ("tiny", "small", "nano", "full")

# From-scratch presets size their vocabularies from the tokenizer the run builds
# (vocab_size 0 = "from the tokenizer"); 288 fits the byte-level tokenizer.
BYTE_VOCAB = 288

# conformer consumes 10 ms fbank frames, normalised per utterance. From-scratch presets use
# pre-LN blocks (block_final_norm False): the original block-closing LayerNorm makes a deep
# stack train several times slower without a long warmup (12 blocks needed >150 steps to
# fit one batch of 8 digit clips, against ~75 with pre-LN).
# They also dither at inference as in training (Kaldi's default; `features.fixed_dither`
# keeps it deterministic): trained on dithered frames, a model decodes zero-filled gaps
# (exact digital silence, log-floored) badly: on the unseen FSDD speaker one checkpoint
# scored LLM WER 0.189 without, 0.083 with (bench/RESULTS.md). Training's is `data.dither`.
_FBANK_ONLY = {"fbank": {"dither": 1.0}, "lfr_m": 1, "lfr_n": 1, "utterance_norm": True}

# The small preset runs each layer stack unrolled (`scan_unroll` 0; same parameter layout):
# the rolled loop's activation plumbing cost ~10 % of its training step on 2 cores
# (bench/RESULTS.md, issue 8). tiny (the tests' preset, compile-bound), nano and full keep
# rolled loops for compile time.
_UNROLLED = {"scan_unroll": 0}

_PRESETS = {
    "tiny": {
        "frontend": _FBANK_ONLY,
        "encoder": {"kind": "conformer", "input_dim": 80, "hidden": 64, "num_heads": 4,
                    "mlp_dim": 128, "num_blocks": 2, "kernel_size": 7, "subsampling": 4,
                    "block_final_norm": False},
        "adaptor": {"downsample": 2, "proj_hidden": 128, "hidden": 64, "num_layers": 1,
                    "num_heads": 4, "mlp_dim": 128, "norm_eps": 1e-5},
        "ctc": {"vocab_size": 0, "blank_id": -1,
                "decoder": {"proj_hidden": 128, "hidden": 64, "num_layers": 1, "num_heads": 4,
                            "mlp_dim": 128, "norm_eps": 1e-5}},
        "llm": {"vocab_size": 0, "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                "num_kv_heads": 2, "head_dim": 16, "mlp_dim": 128, "rope_theta": 10000.0},
        "audio_tokens": "all",
    },
    # Sized for from-scratch runs on 2 CPU cores: FSDD digit runs are limited by how many
    # utterances a run sees in 30 minutes, not by capacity. A 49.6M version (Conformer
    # 256x12, LLM 512x8) managed 1250 steps in 29 min and its LLM never left the label
    # prior; this one (8.3M) runs ~3.5 steps/s and its LLM starts reading the audio after
    # ~2000 steps (bench/RESULTS.md).
    "small": {
        "frontend": _FBANK_ONLY,
        "encoder": {**_UNROLLED, "kind": "conformer", "input_dim": 80, "hidden": 144,
                    "num_heads": 4, "mlp_dim": 576, "num_blocks": 6, "kernel_size": 15,
                    "subsampling": 4, "subsampling_channels": 64, "block_final_norm": False},
        "adaptor": {**_UNROLLED, "downsample": 2, "proj_hidden": 512, "hidden": 256,
                    "num_layers": 2, "num_heads": 4, "mlp_dim": 768, "norm_eps": 1e-5},
        "ctc": {"vocab_size": 0, "blank_id": -1,
                "decoder": {**_UNROLLED, "proj_hidden": 288, "hidden": 144, "num_layers": 1,
                            "num_heads": 4, "mlp_dim": 288, "norm_eps": 1e-5}},
        "llm": {**_UNROLLED, "vocab_size": 0, "hidden_size": 256, "num_layers": 4,
                "num_heads": 4, "num_kv_heads": 2, "head_dim": 64, "mlp_dim": 768,
                "rope_theta": 10000.0},
        "audio_tokens": "all",
    },
    # Fun-ASR-Nano-2512: the dataclass defaults are its geometry.
    "nano": {},
    "full": {
        "encoder": {"hidden": 1024, "num_heads": 16, "mlp_dim": 4096, "num_blocks": 40,
                    "tp_blocks": 16},
        "adaptor": {"hidden": 3584, "proj_hidden": 2048, "num_heads": 28, "mlp_dim": 896},
        "ctc": {"decoder": {"hidden": 1024, "proj_hidden": 2048, "num_heads": 16,
                            "mlp_dim": 256}},
        # Qwen2.5-7B-class layer geometry; 27 layers and tied embeddings give 6.8B.
        "llm": {"hidden_size": 3584, "num_layers": 27, "num_heads": 28, "num_kv_heads": 4,
                "head_dim": 128, "mlp_dim": 18944, "tie_embeddings": True},
    },
}


def _merge(base: dict, override: dict) -> dict:
  out = copy.deepcopy(base)
  for k, v in override.items():
    out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def model_dict(size: str) -> dict:
  """The preset as a nested dict of ModelConfig fields."""
  if size not in _PRESETS:
    raise ValueError(f"model size {size!r}: expected one of {', '.join(SIZES)}")
  return _merge(dataclasses.asdict(ModelConfig()), _PRESETS[size])


def resolve_vocab(d: dict, vocab: int) -> dict:
  """Fills vocab_size 0 with `vocab` (rounded up to 32); the CTC blank is its last id."""
  d = copy.deepcopy(d)
  rounded = -(-vocab // 32) * 32
  if d["llm"]["vocab_size"] == 0:
    d["llm"]["vocab_size"] = rounded
  if d["ctc"]["vocab_size"] == 0:
    d["ctc"]["vocab_size"] = -(-(vocab + 1) // 32) * 32
    d["ctc"]["blank_id"] = d["ctc"]["vocab_size"] - 1
  return d


def from_dict(d: dict, vocab: int = BYTE_VOCAB - 3) -> ModelConfig:
  """A model dict (e.g. `cfg.model.to_dict()`) as a ModelConfig; vocab 0 sized for `vocab`.

  Without a tokenizer at hand (describe, AOT), the byte-level size stands in.
  """
  return ModelConfig.from_dict(resolve_vocab(d, vocab))


def model_config(size: str, vocab: int = BYTE_VOCAB - 3) -> ModelConfig:
  """The preset as a ModelConfig; from-scratch vocabularies sized for `vocab` tokens."""
  return from_dict(model_dict(size), vocab)
