"""Fun-ASR's ChatML prompt, laid out as token ids with the audio span and loss span marked.

    <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{task}  [audio x n]
    <|im_end|>\n<|im_start|>assistant\n  {text}<|im_end|>

The three text pieces are tokenized separately (the release does the same, so BPE never
merges across the audio boundary). `task` is `语音转写：` ("transcribe:"), optionally into a
language, without inverse text normalisation, after a hotword header, or with a CTC
first-pass line.
"""

import dataclasses

import numpy as np

SYSTEM = "You are a helpful assistant."
HOTWORD_HEADER = ("请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。"
                  "\n\n\n**上下文信息：**\n\n\n")
LANGUAGES = {"zh": "中文", "en": "英文", "ja": "日文", "ko": "韩文", "yue": "粤语"}


def language_name(code: str | None) -> str | None:
  """Prompt name of a language code; None/'auto' means no language in the prompt."""
  if code in (None, "", "auto"):
    return None
  if code in LANGUAGES.values():
    return code
  if code not in LANGUAGES:
    raise ValueError(f"language {code!r} is not supported; use one of "
                     f"{', '.join(sorted(LANGUAGES))} or 'auto'")
  return LANGUAGES[code]


def task_prompt(language: str | None = None, hotwords=None, itn: bool = True,
                ctc_text: str | None = None) -> str:
  """The user-turn instruction that precedes the audio."""
  parts = []
  if hotwords:
    parts.append(HOTWORD_HEADER + f"热词列表：[{', '.join(hotwords)}]\n")
  if ctc_text:
    parts.append(f"语音识别初稿：{ctc_text}\n")
  name = language_name(language)
  parts.append("语音转写" if name is None else f"语音转写成{name}")
  if not itn:
    parts.append("，不进行文本规整")
  parts.append("：")
  return "".join(parts)


@dataclasses.dataclass
class PromptLayout:
  """One example: `tokens` with `audio_mask` (audio slots) and `target_mask` (loss)."""
  tokens: np.ndarray  # [S] int32
  audio_mask: np.ndarray  # [S] bool
  target_mask: np.ndarray  # [S] bool: tokens the model must predict

  @property
  def prompt_length(self) -> int:
    """Tokens before the answer (what decoding is conditioned on)."""
    idx = np.flatnonzero(self.target_mask)
    return int(idx[0]) if idx.size else len(self.tokens)


def layout(tokenizer, num_audio_tokens: int, task: str, target: str | None = None,
           system: str | None = SYSTEM, audio_token_id: int = 0) -> PromptLayout:
  """Builds one example's token layout; `target=None` gives the inference prompt."""
  head = (f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else "")
  prefix = tokenizer.encode(head + f"<|im_start|>user\n{task}")
  suffix = tokenizer.encode("<|im_end|>\n<|im_start|>assistant\n")
  answer = tokenizer.encode(f"{target}<|im_end|>") if target is not None else []
  tokens = prefix + [audio_token_id] * num_audio_tokens + suffix + answer
  n_pre = len(prefix) + num_audio_tokens + len(suffix)
  audio = np.zeros(len(tokens), bool)
  audio[len(prefix): len(prefix) + num_audio_tokens] = True
  target_mask = np.zeros(len(tokens), bool)
  target_mask[n_pre:] = True
  return PromptLayout(np.asarray(tokens, np.int32), audio, target_mask)


def collate(layouts: list[PromptLayout], pad_id: int, length: int | None = None) -> dict:
  """Right-pads layouts into `[B, S]` arrays: tokens, audio_mask, target_mask, paddings."""
  s = length or max(len(l.tokens) for l in layouts)
  if any(len(l.tokens) > s for l in layouts):
    raise ValueError(f"a prompt of {max(len(l.tokens) for l in layouts)} tokens exceeds the "
                     f"configured text length {s}")
  out = {"tokens": np.full((len(layouts), s), pad_id, np.int32),
         "audio_mask": np.zeros((len(layouts), s), bool),
         "target_mask": np.zeros((len(layouts), s), bool),
         "paddings": np.ones((len(layouts), s), np.float32)}
  for i, l in enumerate(layouts):
    n = len(l.tokens)
    out["tokens"][i, :n] = l.tokens
    out["audio_mask"][i, :n] = l.audio_mask
    out["target_mask"][i, :n] = l.target_mask
    out["paddings"][i, :n] = 0.0
  return out
