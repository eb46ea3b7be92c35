"""LLM tokenizer: a Hugging Face `tokenizer.json` (Qwen's byte-level BPE) read with `tokenizers`.

Only the fast `tokenizers` library is needed (no transformers at run time). `byte_level`
builds a vocabulary-free tokenizer (256 byte symbols + ChatML specials) for models trained
from scratch and for tests.
"""

import json
import os

from tokenizers import AddedToken, Tokenizer as _HFTokenizer, decoders, models, pre_tokenizers

CHATML_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


class Tokenizer:
  """Text <-> ids with the chat special tokens resolved."""

  def __init__(self, hf: _HFTokenizer, eos: str = "<|im_end|>", pad: str = "<|endoftext|>"):
    self.hf = hf
    for tok in (eos, pad, "<|im_start|>"):
      if hf.token_to_id(tok) is None:
        raise ValueError(f"tokenizer has no {tok!r} token (needed by the ChatML prompt)")
    self.eos_id = hf.token_to_id(eos)
    self.pad_id = hf.token_to_id(pad)
    self.im_start_id = hf.token_to_id("<|im_start|>")

  @classmethod
  def from_folder(cls, folder: str) -> "Tokenizer":
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{folder}: no tokenizer.json")
    eos = "<|im_end|>"
    cfg_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(cfg_path):
      with open(cfg_path) as f:
        eos = json.load(f).get("eos_token", eos) or eos
      if isinstance(eos, dict):
        eos = eos.get("content", "<|im_end|>")
    return cls(_HFTokenizer.from_file(path), eos=eos)

  @classmethod
  def byte_level(cls, extra_specials=()) -> "Tokenizer":
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    hf = _HFTokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(s, special=True, normalized=False)
                           for s in CHATML_SPECIALS + tuple(extra_specials)])
    return cls(hf)

  def save(self, folder: str):
    os.makedirs(folder, exist_ok=True)
    self.hf.save(os.path.join(folder, "tokenizer.json"))

  @property
  def vocab_size(self) -> int:
    return self.hf.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> list[int]:
    return self.hf.encode(text, add_special_tokens=False).ids

  def decode(self, ids, skip_special: bool = True) -> str:
    return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special)
