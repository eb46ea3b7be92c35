"""Builds tiny random reference models offline: funasr's FunASRNano and transformers'
FunAsrNanoForConditionalGeneration, saved in their release layouts."""

import base64
import os

import numpy as np
import yaml

from fun_asr_jax.text.tokenizer import Tokenizer

TINY_QWEN = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                 tie_word_embeddings=True, max_position_embeddings=512)


def perturb_norms(torch, model, seed=0):
  """Norm affine params default to 1/0, which hides mistakes; randomise them."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.add_(0.1 * torch.randn(p.shape, generator=g))


def build_funasr_nano(folder: str, with_ctc: bool = True, seed: int = 0, encoder=None,
                      adaptor=None, qwen=None, vocab_size: int | None = None):
  """A random FunASRNano in FunASR's folder layout. Returns (model, tokenizer, frontend).

  Tiny by default; `encoder`, `adaptor` and `qwen` override the geometry (e.g. the real
  Fun-ASR-Nano's for benchmarks), `vocab_size` the LLM's vocabulary.
  """
  import torch
  import transformers
  from funasr.frontends.wav_frontend import WavFrontend
  from funasr.models.fun_asr_nano.model import FunASRNano
  from funasr.models.sense_voice.whisper_lib.tokenizer import get_encoding

  torch.manual_seed(seed)
  os.makedirs(folder, exist_ok=True)
  llm_dir = os.path.join(folder, "Qwen3-tiny")
  tok = Tokenizer.byte_level()
  tok.save(llm_dir)
  hf_tok = transformers.PreTrainedTokenizerFast(
      tokenizer_file=os.path.join(llm_dir, "tokenizer.json"), eos_token="<|im_end|>",
      pad_token="<|endoftext|>")
  hf_tok.save_pretrained(llm_dir)
  qcfg = transformers.Qwen3Config(vocab_size=vocab_size or tok.vocab_size + 5,
                                  bos_token_id=tok.pad_id, eos_token_id=tok.eos_id,
                                  initializer_range=0.5 if qwen is None else 0.02,
                                  **dict(TINY_QWEN, **(qwen or {})))
  transformers.Qwen3ForCausalLM(qcfg).save_pretrained(llm_dir)
  ctc_vocab = os.path.join(folder, "ctc.tiktoken")
  with open(ctc_vocab, "w") as f:
    for i in range(256):
      f.write(f"{base64.b64encode(bytes([i])).decode()} {i}\n")
  ctc_v = get_encoding("multilingual", num_languages=8749, vocab_path=ctc_vocab).n_vocab
  conf = dict(
      audio_encoder="SenseVoiceEncoderSmall",
      audio_encoder_conf=dict(dict(output_size=32, attention_heads=2, linear_units=64,
                                   num_blocks=3, tp_blocks=2), **(encoder or {}),
                              dropout_rate=0.0, positional_dropout_rate=0.0,
                              attention_dropout_rate=0.0, input_layer="pe",
                              pos_enc_class="SinusoidalPositionEncoder", normalize_before=True,
                              kernel_size=11, sanm_shfit=0, selfattention_layer_type="sanm"),
      llm="Qwen3-0.6b",
      llm_conf=dict(hub="hf", freeze=True, llm_dtype="fp32", init_param_path=llm_dir,
                    use_lora=False),
      audio_adaptor="Transformer",
      audio_adaptor_conf=dict(downsample_rate=1, use_low_frame_rate=True,
                              **dict(dict(ffn_dim=40, llm_dim=48, encoder_dim=32, n_layer=2),
                                     **(adaptor or {}))),
      frontend_conf=dict(fs=16000, window="hamming", n_mels=80, frame_length=25,
                         frame_shift=10, lfr_m=7, lfr_n=6, cmvn_file=None),
  )
  if with_ctc:
    conf.update(ctc_decoder="Transformer", detach_ctc_decoder=True,
                ctc_decoder_conf=dict(downsample_rate=1, ffn_dim=40, llm_dim=32, encoder_dim=32,
                                      n_layer=2),
                ctc_vocab_size=ctc_v, ctc_conf=dict(dropout_rate=0.0),
                ctc_tokenizer="SenseVoiceTokenizer",
                ctc_tokenizer_conf=dict(vocab_path=ctc_vocab, is_multilingual=True,
                                        num_languages=8749))
  model = FunASRNano(input_size=560, **conf)
  perturb_norms(torch, model, seed)
  model.eval()
  torch.save(model.state_dict(), os.path.join(folder, "model.pt"))
  with open(os.path.join(folder, "config.yaml"), "w") as f:
    yaml.safe_dump({k: v for k, v in conf.items()}, f, allow_unicode=True)
  frontend = WavFrontend(fs=16000, window="hamming", n_mels=80, frame_length=25,
                         frame_shift=10, lfr_m=7, lfr_n=6, cmvn_file=None, dither=0.0)
  return model, hf_tok, frontend


def build_hf_fun_asr_nano(folder: str, seed: int = 0, audio_token_id: int = 199):
  """A tiny transformers FunAsrNanoForConditionalGeneration saved with save_pretrained."""
  import torch
  import transformers
  torch.manual_seed(seed)
  cfg = transformers.FunAsrNanoConfig(
      audio_config=dict(model_type="fun_asr_nano_encoder", hidden_size=32,
                        num_attention_heads=2, intermediate_size=64, num_hidden_layers=4,
                        num_timestamp_prediction_layers=1),
      adaptor_config=dict(hidden_size=48, num_attention_heads=2, intermediate_size=12,
                          num_hidden_layers=2, projector_hidden_size=40),
      text_config=dict(model_type="qwen3", vocab_size=200, **TINY_QWEN),
      audio_token_id=audio_token_id)
  model = transformers.FunAsrNanoForConditionalGeneration(cfg).eval()
  perturb_norms(torch, model, seed)
  model.save_pretrained(folder)
  return model


def test_waveforms(seed=0, seconds=(1.3, 0.7)):
  rng = np.random.RandomState(seed)
  return [(0.1 * rng.randn(int(s * 16000))).astype(np.float32) for s in seconds]
