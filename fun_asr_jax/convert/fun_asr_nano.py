"""Fun-ASR-Nano weights -> our FunASR params, from either release layout.

* `hf_fun_asr_nano`: a transformers `FunAsrNanoForConditionalGeneration` folder
  (config.json + safetensors). It has no CTC branch.
* `funasr_nano`: FunASR's folder (`model.pt` state dict + `config.yaml` + the Qwen3 config
  folder it names), including the CTC decoder tensors when present.

Both end in the same flat {our/path: array} mapping that `tensors.fit` checks against the
shapes our model expects, so a missing, extra or misshaped tensor is always reported.
"""

import json
import os

import numpy as np

from fun_asr_jax.audio.features import FbankOptions
from fun_asr_jax.convert import hf_qwen3
from fun_asr_jax.convert import tensors as T
from fun_asr_jax.models.adaptor import AdaptorConfig
from fun_asr_jax.models.ctc import CTCConfig
from fun_asr_jax.models.encoder import EncoderConfig
from fun_asr_jax.models.fun_asr import FrontendConfig, ModelConfig, param_shapes


def _stack(tensors, pattern, indices, transpose=False):
  arrays = []
  for i in indices:
    name = pattern.format(i)
    a = tensors.pop(name)  # KeyError -> reported by the loader with the file name
    arrays.append(a.T if transpose else a)
  return np.stack(arrays)


# ---------------------------------------------------------------------------------------
# FunASR naming (model.pt): encoders0 / encoders / tp_encoders, fused q|k|v.
# ---------------------------------------------------------------------------------------
_SANM_MAP = (  # ours, theirs, transpose
    ("norm1/scale", "norm1.weight", False), ("norm1/bias", "norm1.bias", False),
    ("norm2/scale", "norm2.weight", False), ("norm2/bias", "norm2.bias", False),
    ("self_attn/linear_q_k_v/kernel", "self_attn.linear_q_k_v.weight", True),
    ("self_attn/linear_q_k_v/bias", "self_attn.linear_q_k_v.bias", False),
    ("self_attn/linear_out/kernel", "self_attn.linear_out.weight", True),
    ("self_attn/linear_out/bias", "self_attn.linear_out.bias", False),
    ("feed_forward/w_1/kernel", "feed_forward.w_1.weight", True),
    ("feed_forward/w_1/bias", "feed_forward.w_1.bias", False),
    ("feed_forward/w_2/kernel", "feed_forward.w_2.weight", True),
    ("feed_forward/w_2/bias", "feed_forward.w_2.bias", False),
)
_TRANSFORMER_MAP = tuple(
    (o.replace("linear_q_k_v", x), t.replace("linear_q_k_v", x), tr)
    for x in ("linear_q", "linear_k", "linear_v") for o, t, tr in _SANM_MAP
    if "linear_q_k_v" in o) + tuple(m for m in _SANM_MAP if "linear_q_k_v" not in m[0])


def _fsmn(w):  # torch depthwise Conv1d weight (D, 1, K) -> our [K, D]
  return w[:, 0, :].T


def _funasr_block(tensors, prefix, indices, mapping, stacked):
  out = {}
  for ours, theirs, tr in mapping:
    pattern = prefix + "{}." + theirs
    out[ours] = _stack(tensors, pattern, indices, tr) if stacked else \
        _stack(tensors, pattern, indices, tr)[0]
  if mapping is _SANM_MAP:
    w = _stack(tensors, prefix + "{}.self_attn.fsmn_block.weight", indices)
    out["self_attn/fsmn_kernel"] = np.stack([_fsmn(x) for x in w]) if stacked else _fsmn(w[0])
  return out


def _prefixed(prefix, d):
  return {f"{prefix}/{k}": v for k, v in d.items()}


def _funasr_transformer(tensors, prefix, num_layers):
  flat = {"linear1/kernel": tensors.pop(prefix + "linear1.weight").T,
          "linear1/bias": tensors.pop(prefix + "linear1.bias"),
          "linear2/kernel": tensors.pop(prefix + "linear2.weight").T,
          "linear2/bias": tensors.pop(prefix + "linear2.bias")}
  if num_layers:
    flat.update(_prefixed("blocks/layer", _funasr_block(
        tensors, prefix + "blocks.", range(num_layers), _TRANSFORMER_MAP, True)))
  return flat


def convert_funasr_state(tensors: dict, cfg: ModelConfig) -> dict:
  """Pops FunASR `model.pt` tensors into our flat names (mutates `tensors`)."""
  e = cfg.encoder
  flat = _prefixed("encoder/encoders0", _funasr_block(
      tensors, "audio_encoder.encoders0.", [0], _SANM_MAP, False))
  if e.num_blocks > 1:
    flat.update(_prefixed("encoder/encoders/layer", _funasr_block(
        tensors, "audio_encoder.encoders.", range(e.num_blocks - 1), _SANM_MAP, True)))
  if e.tp_blocks:
    flat.update(_prefixed("encoder/tp_encoders/layer", _funasr_block(
        tensors, "audio_encoder.tp_encoders.", range(e.tp_blocks), _SANM_MAP, True)))
  for norm in ("after_norm", "tp_norm") if e.tp_blocks else ("after_norm",):
    flat[f"encoder/{norm}/scale"] = tensors.pop(f"audio_encoder.{norm}.weight")
    flat[f"encoder/{norm}/bias"] = tensors.pop(f"audio_encoder.{norm}.bias")
  flat.update(_prefixed("adaptor", _funasr_transformer(
      tensors, "audio_adaptor.", cfg.adaptor.num_layers)))
  if cfg.ctc.enabled:
    flat.update(_prefixed("ctc/decoder", _funasr_transformer(
        tensors, "ctc_decoder.", cfg.ctc.decoder.num_layers)))
    flat["ctc/ctc_lo/kernel"] = tensors.pop("ctc.ctc_lo.weight").T
    flat["ctc/ctc_lo/bias"] = tensors.pop("ctc.ctc_lo.bias")
  flat.update(_prefixed("llm", hf_qwen3.convert_tensors(
      tensors, cfg.llm, prefix="llm.model.", lm_head="llm.lm_head.weight")))
  return flat


def funasr_config(conf: dict, llm_hf: dict, has_ctc: bool, ctc_vocab: int | None) -> ModelConfig:
  """ModelConfig from FunASR's config.yaml dict and the Qwen3 config.json dict."""
  enc = conf.get("audio_encoder_conf", {})
  ad = conf.get("audio_adaptor_conf", {})
  fe = conf.get("frontend_conf", {})
  llm = hf_qwen3.config_from_hf(llm_hf)
  fbank = FbankOptions(sample_rate=int(fe.get("fs", 16000)),
                       num_mel_bins=int(fe.get("n_mels", 80)),
                       frame_length_ms=float(fe.get("frame_length", 25)),
                       frame_shift_ms=float(fe.get("frame_shift", 10)),
                       window_type=fe.get("window", "hamming"), dither=0.0)
  frontend = FrontendConfig(fbank=fbank, lfr_m=int(fe.get("lfr_m", 7)),
                            lfr_n=int(fe.get("lfr_n", 6)))
  if fe.get("cmvn_file"):
    raise T.CheckpointMismatchError("frontend_conf.cmvn_file is set; CMVN import is not "
                                    "supported (Fun-ASR-Nano has none)")
  encoder = EncoderConfig(
      kind="sanm", input_dim=frontend.feature_dim, hidden=int(enc.get("output_size", 512)),
      num_heads=int(enc.get("attention_heads", 4)), mlp_dim=int(enc.get("linear_units", 2048)),
      num_blocks=int(enc.get("num_blocks", 50)), tp_blocks=int(enc.get("tp_blocks", 20)),
      kernel_size=int(enc.get("kernel_size", 11)), sanm_shift=int(enc.get("sanm_shfit", 0)))
  adaptor = AdaptorConfig(
      downsample=int(ad.get("downsample_rate", 1)), proj_hidden=int(ad.get("ffn_dim", 2048)),
      hidden=llm.hidden_size, num_layers=int(ad.get("n_layer", 2)),
      num_heads=int(ad.get("attention_heads", 8)), mlp_dim=llm.hidden_size // 4,
      norm_eps=1e-12)
  ctc_conf = conf.get("ctc_decoder_conf", {})
  ctc_hidden = int(ctc_conf.get("llm_dim", encoder.hidden))
  ctc = CTCConfig(enabled=has_ctc, vocab_size=int(ctc_vocab or conf.get("ctc_vocab_size", 60515)),
                  blank_id=int(conf.get("ctc_conf", {}).get(
                      "blank_id", (ctc_vocab or conf.get("ctc_vocab_size", 60515)) - 1)),
                  decoder=AdaptorConfig(
                      downsample=int(ctc_conf.get("downsample_rate", 1)),
                      proj_hidden=int(ctc_conf.get("ffn_dim", 2048)), hidden=ctc_hidden,
                      num_layers=int(ctc_conf.get("n_layer", 5)),
                      num_heads=int(ctc_conf.get("attention_heads", 8)),
                      mlp_dim=ctc_hidden // 4, norm_eps=1e-12))
  audio_tokens = "fake_token_len" if ad.get("use_low_frame_rate", True) else "all"
  return ModelConfig(frontend=frontend, encoder=encoder, adaptor=adaptor, ctc=ctc, llm=llm,
                     audio_tokens=audio_tokens)


def _read_torch_state(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading FunASR's model.pt needs torch: pip install torch==2.13.0") from e
  state = torch.load(path, map_location="cpu", weights_only=False)
  if isinstance(state, dict) and "state_dict" in state:
    state = state["state_dict"]
  if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
    state = state["model"]
  return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
          for k, v in state.items() if hasattr(v, "detach")}


def load_funasr(folder: str) -> tuple[ModelConfig, dict, str | None]:
  """FunASR Fun-ASR-Nano folder -> (ModelConfig, params, LLM folder for the tokenizer)."""
  import yaml  # pylint: disable=import-outside-toplevel
  pt = os.path.join(folder, "model.pt")
  cfg_yaml = os.path.join(folder, "config.yaml")
  for p in (pt, cfg_yaml):
    if not os.path.exists(p):
      raise FileNotFoundError(f"{folder}: missing {os.path.basename(p)} (expected FunASR's "
                              "Fun-ASR-Nano folder: model.pt, config.yaml, Qwen3 folder)")
  with open(cfg_yaml) as f:
    conf = yaml.safe_load(f)
  llm_dir = conf.get("llm_conf", {}).get("init_param_path", "Qwen3-0.6B")
  if not os.path.isabs(llm_dir):
    llm_dir = os.path.join(folder, llm_dir)
  if not os.path.exists(os.path.join(llm_dir, "config.json")):
    raise FileNotFoundError(f"{folder}: llm_conf.init_param_path -> {llm_dir} has no "
                            "config.json")
  with open(os.path.join(llm_dir, "config.json")) as f:
    llm_hf = json.load(f)
  tensors = _read_torch_state(pt)
  has_ctc = "ctc.ctc_lo.weight" in tensors
  ctc_vocab = tensors["ctc.ctc_lo.weight"].shape[0] if has_ctc else None
  cfg = funasr_config(conf, llm_hf, has_ctc, ctc_vocab)
  try:
    flat = convert_funasr_state(tensors, cfg)
  except KeyError as err:
    raise T.CheckpointMismatchError(f"{pt}: missing tensor {err.args[0]}") from err
  leftover = sorted(tensors)
  if leftover:
    raise T.CheckpointMismatchError(f"{pt}: unexpected tensors {leftover[:20]}")
  return cfg, T.fit(_unboxed_shapes(cfg), flat, pt), llm_dir


# ---------------------------------------------------------------------------------------
# transformers naming: audio_tower.layers.i (q/k/v separate), multi_modal_projector.
# ---------------------------------------------------------------------------------------
def hf_config(hf: dict) -> ModelConfig:
  a, ad, t = hf.get("audio_config", {}), hf.get("adaptor_config", {}), hf.get("text_config", {})
  llm = hf_qwen3.config_from_hf(t)
  total, tp = a.get("num_hidden_layers", 70), a.get("num_timestamp_prediction_layers", 20)
  encoder = EncoderConfig(
      kind="sanm", input_dim=a.get("num_mel_bins", 80) * a.get("num_stacked_frames", 7),
      hidden=a.get("hidden_size", 512), num_heads=a.get("num_attention_heads", 4),
      mlp_dim=a.get("intermediate_size", 2048), num_blocks=total - tp, tp_blocks=tp,
      kernel_size=a.get("fsmn_kernel_size", 11), norm_eps=a.get("layer_norm_eps", 1e-5))
  for key, want in (("hidden_act", "relu"),):
    if a.get(key, want) != want or ad.get(key, want) != want:
      raise T.CheckpointMismatchError(f"{key} must be {want!r}")
  adaptor = AdaptorConfig(
      proj_hidden=ad.get("projector_hidden_size", 2048), hidden=ad.get("hidden_size", 1024),
      num_layers=ad.get("num_hidden_layers", 2), num_heads=ad.get("num_attention_heads", 8),
      mlp_dim=ad.get("intermediate_size", 256), norm_eps=ad.get("layer_norm_eps", 1e-5))
  frontend = FrontendConfig(lfr_m=a.get("num_stacked_frames", 7), fbank=FbankOptions(
      num_mel_bins=a.get("num_mel_bins", 80)))
  # transformers feeds every valid adaptor frame to the LLM (its processor inserts
  # mask.sum() placeholders); keep that so outputs match the port.
  return ModelConfig(frontend=frontend, encoder=encoder, adaptor=adaptor,
                     ctc=CTCConfig(enabled=False), llm=llm, audio_tokens="all")


_HF_LAYER = (  # ours (SAN-M), theirs, transpose
    ("norm1/scale", "input_layernorm.weight", False), ("norm1/bias", "input_layernorm.bias", False),
    ("norm2/scale", "post_attention_layernorm.weight", False),
    ("norm2/bias", "post_attention_layernorm.bias", False),
    ("self_attn/linear_out/kernel", "self_attn.o_proj.weight", True),
    ("self_attn/linear_out/bias", "self_attn.o_proj.bias", False),
    ("feed_forward/w_1/kernel", "mlp.fc1.weight", True), ("feed_forward/w_1/bias", "mlp.fc1.bias", False),
    ("feed_forward/w_2/kernel", "mlp.fc2.weight", True), ("feed_forward/w_2/bias", "mlp.fc2.bias", False),
)


def _hf_sanm_layer(tensors, prefix):
  out = {o: (tensors.pop(prefix + t).T if tr else tensors.pop(prefix + t)) for o, t, tr in _HF_LAYER}
  qkv_w = [tensors.pop(f"{prefix}self_attn.{p}_proj.weight") for p in "qkv"]
  qkv_b = [tensors.pop(f"{prefix}self_attn.{p}_proj.bias") for p in "qkv"]
  out["self_attn/linear_q_k_v/kernel"] = np.concatenate(qkv_w, 0).T
  out["self_attn/linear_q_k_v/bias"] = np.concatenate(qkv_b, 0)
  out["self_attn/fsmn_kernel"] = _fsmn(tensors.pop(prefix + "self_attn.fsmn.conv.weight"))
  return out


def _hf_adaptor_layer(tensors, prefix):
  out = {o: (tensors.pop(prefix + t).T if tr else tensors.pop(prefix + t)) for o, t, tr in _HF_LAYER}
  for ours, p in (("linear_q", "q"), ("linear_k", "k"), ("linear_v", "v")):
    out[f"self_attn/{ours}/kernel"] = tensors.pop(f"{prefix}self_attn.{p}_proj.weight").T
    out[f"self_attn/{ours}/bias"] = tensors.pop(f"{prefix}self_attn.{p}_proj.bias")
  return out


def _stack_dicts(dicts):
  return {k: np.stack([d[k] for d in dicts]) for k in dicts[0]}


def convert_hf_state(tensors: dict, cfg: ModelConfig) -> dict:
  e = cfg.encoder
  pre = "model.audio_tower.layers.{}."
  main_last, last = e.num_blocks - 1, e.num_blocks + e.tp_blocks - 1
  layers = [_hf_sanm_layer(tensors, pre.format(i)) for i in range(last + 1)]
  flat = _prefixed("encoder/encoders0", layers[0])
  if e.num_blocks > 1:
    flat.update(_prefixed("encoder/encoders/layer", _stack_dicts(layers[1: e.num_blocks])))
  if e.tp_blocks:
    flat.update(_prefixed("encoder/tp_encoders/layer", _stack_dicts(layers[e.num_blocks:])))
  norms = [("after_norm", main_last)] + ([("tp_norm", last)] if e.tp_blocks else [])
  for name, idx in norms:
    flat[f"encoder/{name}/scale"] = tensors.pop(pre.format(idx) + "final_layernorm.weight")
    flat[f"encoder/{name}/bias"] = tensors.pop(pre.format(idx) + "final_layernorm.bias")
  p = "model.multi_modal_projector."
  flat.update({"adaptor/linear1/kernel": tensors.pop(p + "linear_1.weight").T,
               "adaptor/linear1/bias": tensors.pop(p + "linear_1.bias"),
               "adaptor/linear2/kernel": tensors.pop(p + "linear_2.weight").T,
               "adaptor/linear2/bias": tensors.pop(p + "linear_2.bias")})
  if cfg.adaptor.num_layers:
    flat.update(_prefixed("adaptor/blocks/layer", _stack_dicts(
        [_hf_adaptor_layer(tensors, f"{p}layers.{j}.") for j in range(cfg.adaptor.num_layers)])))
  flat.update(_prefixed("llm", hf_qwen3.convert_tensors(
      tensors, cfg.llm, prefix="model.language_model.", lm_head="lm_head.weight")))
  return flat


def load_hf(folder: str) -> tuple[ModelConfig, dict, str]:
  """transformers FunAsrNano folder -> (ModelConfig, params, folder for the tokenizer)."""
  path = os.path.join(folder, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{folder}: no config.json (expected a transformers FunAsrNano "
                            "folder)")
  with open(path) as f:
    hf = json.load(f)
  if hf.get("model_type") != "fun_asr_nano":
    raise T.CheckpointMismatchError(f"{path}: model_type {hf.get('model_type')!r}, expected "
                                    "'fun_asr_nano'")
  cfg = hf_config(hf)
  tensors = T.read_safetensors_folder(folder)
  try:
    flat = convert_hf_state(tensors, cfg)
  except KeyError as err:
    raise T.CheckpointMismatchError(f"{folder}: missing tensor {err.args[0]}") from err
  leftover = sorted(k for k in tensors if "rotary_emb" not in k and "positional_embedding" not in k)
  if leftover:
    raise T.CheckpointMismatchError(f"{folder}: unexpected tensors {leftover[:20]}")
  return cfg, T.fit(_unboxed_shapes(cfg), flat, folder), folder


def _unboxed_shapes(cfg: ModelConfig):
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  return nn.meta.unbox(param_shapes(cfg))
