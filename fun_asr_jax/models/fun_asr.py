"""The composite recognizer: frontend -> encoder -> adaptor -> LLM, plus the CTC branch.

    waveform [B, N] --fbank+LFR--> feats [B, T, 560] --encoder--> enc [B, T', E]
      enc --adaptor--> audio [B, T'', D]  (first n per row fill the prompt's audio slots)
      enc --ctc head--> ctc_logits [B, T', V_ctc]
      (ctc_compress: enc --keep frames where CTC emits--> adaptor; spare slots masked)
    prompt tokens [B, S] --embed, splice audio--> LLM --> logits [B, S, V]

Everything from waveform to logits is one pure function, so the frontend runs on the
accelerator inside the jitted step. The number of audio slots per example is decided on
the host (`num_audio_tokens`) from the sample count alone, which keeps shapes static.
"""

import dataclasses
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fun_asr_jax.audio import features as F
from fun_asr_jax.models import adaptor as adaptor_lib
from fun_asr_jax.models import ctc as ctc_lib
from fun_asr_jax.models import encoder as encoder_lib
from fun_asr_jax.models import llm as llm_lib
from fun_asr_jax.models.adaptor import Adaptor, AdaptorConfig
from fun_asr_jax.models.ctc import CTCConfig, CTCHead
from fun_asr_jax.models.encoder import EncoderConfig, build_encoder
from fun_asr_jax.models.llm import LLMConfig, Qwen3


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
  fbank: F.FbankOptions = F.FbankOptions()
  lfr_m: int = 7
  lfr_n: int = 6
  waveform_scale: float = 32768.0  # [-1, 1] audio -> Kaldi's int16 scale
  cmvn_mean: tuple[float, ...] = ()  # optional global CMVN (empty = none)
  cmvn_istd: tuple[float, ...] = ()
  utterance_norm: bool = False  # per-utterance mean/variance normalisation (from scratch)

  @property
  def feature_dim(self) -> int:
    return self.fbank.num_mel_bins * self.lfr_m


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  frontend: FrontendConfig = FrontendConfig()
  encoder: EncoderConfig = EncoderConfig()
  adaptor: AdaptorConfig = AdaptorConfig()
  ctc: CTCConfig = CTCConfig()
  llm: LLMConfig = LLMConfig()
  # 'fake_token_len': the release's rule, only the first ~T/8 adaptor frames reach the LLM;
  # 'all': every valid adaptor frame (transformers' FunAsrNano port; our from-scratch models
  # downsample in the adaptor instead).
  audio_tokens: str = "fake_token_len"
  # The adaptor reads only the encoder frames where the CTC branch's best path starts a
  # label (`ctc.compress`): about one audio token per text token. The prompt keeps its
  # slot count (static shapes); slots left empty are masked out of attention.
  ctc_compress: bool = False
  # > 0 (with ctc_compress): only the first ceil(T / cap) kept frames of T encoder frames
  # reach the adaptor, so with adaptor downsampling 1 the adaptor and the prompt cost what
  # downsampling by `cap` costs, at one frame per label. Labels past the cap are dropped
  # (at 40 ms frames and cap 2: speech of more than 12.5 CTC labels per second).
  ctc_compress_cap: int = 0
  max_audio_seconds: float = 60.0

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "ModelConfig":
    return _from_dict(cls, d)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)


def _from_dict(cls, d):
  """Nested dict -> nested frozen dataclasses (lists -> tuples); unknown keys are an error."""
  if not isinstance(d, dict):
    raise TypeError(f"{cls.__name__}: expected a mapping, got {type(d).__name__}")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = set(d) - set(fields)
  if unknown:
    raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
  kwargs = {}
  for name, value in d.items():
    default = getattr(cls(), name) if name in fields else None
    if dataclasses.is_dataclass(default):
      value = _from_dict(type(default), value)
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[name] = value
  return cls(**kwargs)


def fake_token_len(lfr_frames):
  """Fun-ASR-Nano's audio-token count for T LFR frames (about T/8)."""
  o1 = 1 + (lfr_frames - 1) // 2
  o2 = 1 + (o1 - 1) // 2
  return (o2 - 1) // 2 + 1


def feature_frames(cfg: ModelConfig, num_samples):
  """Frontend frames (after LFR) for a clip of `num_samples` at 16 kHz."""
  frames = F.num_frames(num_samples, cfg.frontend.fbank)
  return F.lfr_length(frames, cfg.frontend.lfr_n) if cfg.frontend.lfr_n > 1 else frames


def frame_counts(cfg: ModelConfig, num_samples: int) -> tuple[int, int, int]:
  """(frontend, encoder, adaptor) output frames for a clip of `num_samples` (host, exact)."""
  feats = int(feature_frames(cfg, num_samples))
  enc = int(encoder_lib.output_length(cfg.encoder, np.int64(feats)))
  read = ctc_lib.capped_length(enc, cfg.ctc_compress_cap) if cfg.ctc_compress else enc
  adapted = int(adaptor_lib.output_length(cfg.adaptor, np.int64(read))) if read > 0 else 0
  return feats, enc, adapted


def num_audio_tokens(cfg: ModelConfig, num_samples: int) -> int:
  """Audio slots in the prompt for a clip of `num_samples` (host-side, exact)."""
  feats, _, adapted = frame_counts(cfg, num_samples)
  if cfg.audio_tokens == "all":
    return adapted
  if cfg.audio_tokens == "fake_token_len":
    return min(int(fake_token_len(feats)), adapted) if feats > 0 else 0
  raise ValueError(f"audio_tokens={cfg.audio_tokens!r}: expected 'all' or 'fake_token_len'")


def audio_slot_paddings(paddings, audio_mask, audio_paddings):
  """Masks the prompt's audio slots that got a padding frame (after CTC compression).

  paddings `[B, S]`, audio_mask `[B, S]` bool, audio_paddings `[B, A]` -> `[B, S]`. The
  empty slots become holes inside the prompt: attention skips them and RoPE positions
  (`llm.positions`) run on across them, so the LLM sees the prompt without them.
  """
  idx = jnp.clip(jnp.cumsum(audio_mask, axis=1) - 1, 0, audio_paddings.shape[1] - 1)
  empty = jnp.take_along_axis(audio_paddings, idx, axis=1)
  return jnp.where(audio_mask, jnp.maximum(paddings, empty.astype(paddings.dtype)), paddings)


def splice_audio(embeds, audio_mask, audio):
  """Puts audio frames, in order, into the slots marked by `audio_mask`.

  embeds `[B, S, D]`, audio_mask `[B, S]` bool, audio `[B, A, D]` -> `[B, S, D]`.
  """
  idx = jnp.clip(jnp.cumsum(audio_mask, axis=1) - 1, 0, audio.shape[1] - 1)
  gathered = jnp.take_along_axis(audio, idx[..., None], axis=1)
  return jnp.where(audio_mask[..., None], gathered.astype(embeds.dtype), embeds)


class FunASR(nn.Module):
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.encoder = build_encoder(c.encoder)
    self.adaptor = Adaptor(c.adaptor, name="adaptor")
    if c.ctc.enabled:
      self.ctc = CTCHead(c.ctc, name="ctc")
    self.llm = Qwen3(c.llm, name="llm")

  # -- audio side ---------------------------------------------------------------------
  def features(self, waveform, lengths, rng=None, warp=None, first_frame=0):
    """waveform `[B, N]` in [-1, 1], lengths `[B]` -> (feats `[B, T, F]`, paddings).

    `rng`: training's random dither (None: the fixed one, if the config dithers);
    `warp [B]`: VTLP factors for training (see `features.warped_mel_banks`);
    `first_frame`: the window's first fbank frame in its stream (streaming chunks).
    """
    fc = self.cfg.frontend
    feats, pads = F.fbank(waveform * fc.waveform_scale, lengths, fc.fbank, rng=rng, warp=warp,
                          first_frame=first_frame)
    if fc.lfr_m > 1 or fc.lfr_n > 1:
      feats, pads = F.apply_lfr(feats, pads, fc.lfr_m, fc.lfr_n)
    if fc.cmvn_mean:
      feats = F.apply_cmvn(feats, pads, np.asarray(fc.cmvn_mean, np.float32),
                           np.asarray(fc.cmvn_istd, np.float32))
    if fc.utterance_norm:
      feats = F.utterance_norm(feats, pads)
    return feats, pads

  def encode(self, feats, paddings, deterministic=True, cache=None, index=0):
    """-> (frames, paddings); with a streaming `cache` (a chunk's feature window, see
    `encoder.stream_window`) -> (frames, paddings, new_cache)."""
    if cache is None:
      return self.encoder(feats, paddings, deterministic)
    return self.encoder(feats, paddings, deterministic, cache, index)

  def adapt(self, enc, enc_paddings, deterministic=True, ctc_logits=None):
    """enc `[B, T, E]` -> (audio `[B, A, D]`, audio paddings `[B, A]`); with
    `cfg.ctc_compress`, from the frames the CTC branch keeps (`ctc_logits` if computed)."""
    if self.cfg.ctc_compress:
      if not self.cfg.ctc.enabled:
        raise ValueError("model.ctc_compress=True needs the CTC branch (model.ctc.enabled)")
      if ctc_logits is None:
        ctc_logits, _ = self.ctc(enc, enc_paddings, deterministic)
      enc, enc_paddings = ctc_lib.compress(enc, enc_paddings, ctc_logits, self.cfg.ctc.blank_id,
                                           self.cfg.ctc_compress_cap)
    return self.adaptor(enc, enc_paddings, deterministic)

  def ctc_logits(self, enc, enc_paddings, deterministic=True):
    return self.ctc(enc, enc_paddings, deterministic)

  # -- text side ----------------------------------------------------------------------
  def prompt(self, tokens, audio_mask, paddings, audio, audio_paddings=None):
    """The LLM's input: tokens `[B, S]` with the audio frames `[B, A, D]` spliced, in order,
    into the slots of `audio_mask` -> `(embeds [B, S, D], paddings [B, S])`; with the
    adaptor's `audio_paddings [B, A]` the slots CTC compression left empty become holes."""
    embeds = splice_audio(self.llm.embed(tokens), audio_mask, audio)
    if audio_paddings is not None:
      paddings = audio_slot_paddings(paddings, audio_mask, audio_paddings)
    return embeds, paddings

  def read(self, tokens, audio_mask, paddings, audio, audio_paddings=None,
           deterministic=True, return_hidden=False):
    """Teacher-forced LLM pass over a prompt with its audio (`prompt`'s arguments) ->
    `logits [B, S, V]`, or the last hidden states `[B, S, D]` with `return_hidden`."""
    embeds, paddings = self.prompt(tokens, audio_mask, paddings, audio, audio_paddings)
    out, _ = self.llm(embeds, llm_lib.positions(paddings), paddings,
                      deterministic=deterministic, return_hidden=return_hidden)
    return out

  def embed_tokens(self, tokens):
    return self.llm.embed(tokens)

  def llm_logits(self, hidden):  # [B, T, D] -> [B, T, V] fp32
    return self.llm.logits(hidden)

  def decoder(self, embeds, positions, paddings, cache=None, index=0, deterministic=True,
              last=None):
    return self.llm(embeds, positions, paddings, cache=cache, index=index,
                    deterministic=deterministic, last=last)

  def __call__(self, batch: dict[str, Any], deterministic: bool = True, rng=None,
               return_hidden: bool = False):
    """Teacher-forced forward (`return_hidden`: the LLM's last hidden states `hidden [B, S, D]`
    instead of `logits`, for a loss that needs logits at a few positions only).

    batch: `waveform [B, N]`, `wave_lengths [B]`, `tokens [B, S]`, `audio_mask [B, S]`,
      `paddings [B, S]` (text); optional `feats`/`feat_paddings` instead of the waveform.

    Returns:
      dict with `logits [B, S, V]`, `ctc_logits [B, T', Vc]` and `ctc_paddings` (if enabled),
      the encoder's `enc [B, T', E]` and `enc_paddings`, the adaptor's `audio [B, A, D]` and
      `audio_paddings [B, A]`.
    """
    if "feats" in batch:
      feats, feat_pads = batch["feats"], batch["feat_paddings"]
    else:
      feats, feat_pads = self.features(batch["waveform"], batch["wave_lengths"], rng)
    enc, enc_pads = self.encode(feats, feat_pads, deterministic)
    out = {"enc": enc, "enc_paddings": enc_pads}
    if self.cfg.ctc.enabled:
      out["ctc_logits"], out["ctc_paddings"] = self.ctc(enc, enc_pads, deterministic)
    audio, audio_pads = self.adapt(enc, enc_pads, deterministic, out.get("ctc_logits"))
    out["audio"], out["audio_paddings"] = audio, audio_pads
    out["hidden" if return_hidden else "logits"] = self.read(
        batch["tokens"], batch["audio_mask"], batch["paddings"], audio, audio_pads,
        deterministic, return_hidden)
    return out


def decoding_layout(cfg: ModelConfig, params, out_major: bool | None = None):
  """(cfg, params) -> the same model with its LLM layers unrolled and their weights stored
  in the kernel layout this machine runs faster (`llm.decoding_layout`), for decoding.

  The scanned stack slices (copies) each layer's weights out of the stacked arrays once per
  generated token, which at batch 1 doubles the bytes a token costs (bench/RESULTS.md,
  issue 8), and few-row matmuls on CPU run faster on `[out, in]` weights on some machines,
  on `[in, out]` ones on others. Called inside a jitted decoder it copies them once per
  call; called once at load (inference.asr.FunASR, evaluation) not even that. A no-op on
  an unrolled config.
  """
  if not cfg.llm.scan_layers:
    return cfg, params
  llm_cfg, llm_params = llm_lib.decoding_layout(cfg.llm, params["llm"], out_major)
  return dataclasses.replace(cfg, llm=llm_cfg), dict(params, llm=llm_params)


def init_params(cfg: ModelConfig, rng, batch_size: int = 1, seconds: float = 1.0):
  """Random parameters (boxed with logical axis metadata) for a model config."""
  model = FunASR(cfg)
  batch = dummy_batch(cfg, batch_size, seconds)
  return jax.jit(model.init)(rng, batch)


def dummy_batch(cfg: ModelConfig, batch_size: int = 1, seconds: float = 1.0) -> dict:
  n = int(seconds * cfg.frontend.fbank.sample_rate)
  s = num_audio_tokens(cfg, n) + 4
  mask = np.zeros((batch_size, s), bool)
  mask[:, 2: s - 2] = True
  return {"waveform": np.zeros((batch_size, n), np.float32),
          "wave_lengths": np.full((batch_size,), n, np.int32),
          "tokens": np.zeros((batch_size, s), np.int32), "audio_mask": mask,
          "paddings": np.zeros((batch_size, s), np.float32)}


def param_shapes(cfg: ModelConfig):
  """Boxed parameter ShapeDtypeStructs, without allocating anything."""
  return jax.eval_shape(lambda r: init_params(cfg, r), jax.random.key(0))["params"]
