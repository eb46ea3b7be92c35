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


class SentencePieceTokenizer(Tokenizer):
  """A sentencepiece model trained on the corpus, with the ChatML specials as symbols.

  For from-scratch configs: a few thousand pieces cover mixed zh/en text far more compactly
  than bytes (one token per common hanzi instead of three).
  """

  def __init__(self, model_path: str):  # pylint: disable=super-init-not-called
    import sentencepiece as spm  # pylint: disable=import-outside-toplevel
    self.model_path = model_path
    self.sp = spm.SentencePieceProcessor(model_file=model_path)
    ids = {s: self.sp.piece_to_id(s) for s in CHATML_SPECIALS}
    if any(self.sp.id_to_piece(i) != s for s, i in ids.items()):
      raise ValueError(f"{model_path}: sentencepiece model lacks the ChatML symbols "
                       f"{CHATML_SPECIALS}")
    self.eos_id, self.pad_id = ids["<|im_end|>"], ids["<|endoftext|>"]
    self.im_start_id = ids["<|im_start|>"]
    self._special = set(ids.values()) | {self.sp.unk_id()}

  def save(self, folder: str):
    import shutil  # pylint: disable=import-outside-toplevel
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(self.model_path, os.path.join(folder, "tokenizer.model"))

  @property
  def vocab_size(self) -> int:
    return self.sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    return self.sp.encode(text)

  def decode(self, ids, skip_special: bool = True) -> str:
    ids = [int(i) for i in ids if not (skip_special and int(i) in self._special)]
    return self.sp.decode(ids)


def train_sentencepiece(texts, folder: str, vocab_size: int = 2000,
                        model_type: str = "unigram", symbols=()) -> SentencePieceTokenizer:
  """Trains a sentencepiece model on `texts` into `folder/tokenizer.model`.

  `symbols` become single pieces (the fixed prompt phrases: a from-scratch LLM would
  otherwise spend most of its sequence on a system prompt spelled out in characters).
  """
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  os.makedirs(folder, exist_ok=True)
  texts = [t for t in texts if t and t.strip()]
  if not texts:
    raise ValueError("train_sentencepiece: no non-empty text to train on")
  prefix = os.path.join(folder, "tokenizer")
  # byte fallback needs 256 pieces, every character a piece, and the symbols theirs
  # sentencepiece matches symbols after mapping spaces to its meta symbol
  symbols = list(CHATML_SPECIALS) + [s.replace(" ", "\u2581") for s in dict.fromkeys(symbols)
                                     if s not in CHATML_SPECIALS]
  floor = 256 + len(set("".join(texts))) + len(symbols) + 8
  vocab_size = max(vocab_size, floor)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_prefix=prefix, vocab_size=vocab_size,
      model_type=model_type, character_coverage=1.0, byte_fallback=True,
      user_defined_symbols=symbols, normalization_rule_name="identity",
      remove_extra_whitespaces=False, add_dummy_prefix=False, split_digits=True,
      hard_vocab_limit=False,
      unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, minloglevel=2)
  return SentencePieceTokenizer(prefix + ".model")


def load_tokenizer(folder: str) -> Tokenizer:
  """tokenizer.json (Hugging Face) or tokenizer.model (sentencepiece) in `folder`."""
  if os.path.exists(os.path.join(folder, "tokenizer.model")) and \
      not os.path.exists(os.path.join(folder, "tokenizer.json")):
    return SentencePieceTokenizer(os.path.join(folder, "tokenizer.model"))
  return Tokenizer.from_folder(folder)
