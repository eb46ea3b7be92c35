"""Normalisation for scoring and the tokenizers."""

import pytest

from fun_asr_jax.text import normalize as N
from fun_asr_jax.text import prompts
from fun_asr_jax.text.tokenizer import Tokenizer, load_tokenizer, train_sentencepiece


@pytest.mark.parametrize("raw,norm", [
    ("Hello, World!", "hello world"),
    ("我用Python写代码。", "我 用 python 写 代 码"),
    ("ＡＢＣ１２３，你好", "abc123 你 好"),
    ("Don't  STOP", "dont stop"),
    ("“引号”和《书名》", "引 号 和 书 名"),
])
def test_normalize(raw, norm):
  assert N.normalize(raw) == norm


def test_mixed_units_and_script():
  assert N.mixed_units("我们有一个meeting!") == ["我", "们", "有", "一", "个", "meeting"]
  assert N.script_of("hello") == "en" and N.script_of("你好") == "zh"
  assert N.script_of("你好 ok") == "mix" and N.script_of("...") == ""


def test_sentencepiece_roundtrip_and_specials(tmp_path):
  texts = ["我们在北京有一个 meeting", "the pilot watched three chairs", "一二三四五"] * 50
  tok = train_sentencepiece(texts + [prompts.task_prompt()], str(tmp_path), vocab_size=400)
  ids = tok.encode("<|im_start|>user\n我们在北京<|im_end|>")
  assert ids[0] == tok.im_start_id and ids[-1] == tok.eos_id
  assert tok.decode(ids) == "user\n我们在北京"
  assert tok.decode(tok.encode("unseen 字 ✓")) == "unseen 字 ✓"  # byte fallback
  tok.save(str(tmp_path / "saved"))
  again = load_tokenizer(str(tmp_path / "saved"))
  assert again.encode("三四五") == tok.encode("三四五")


def test_sentencepiece_prompt_symbols_are_single_pieces(tmp_path):
  texts = ["one two three", "nine four"] * 50
  symbols = ("system\n", prompts.SYSTEM, "语音转写")
  tok = train_sentencepiece(texts, str(tmp_path), vocab_size=300, symbols=symbols)
  head = f"<|im_start|>system\n{prompts.SYSTEM}<|im_end|>"
  assert len(tok.encode(head)) == 4  # start, role, the whole system sentence, end
  assert len(tok.encode("语音转写")) == 1
  for text in (head, "a helpful assistant? You are.", "语音 转写 one"):
    assert tok.decode(tok.encode(text), skip_special=False) == text


def test_byte_level_tokenizer_roundtrip(tmp_path):
  tok = Tokenizer.byte_level()
  s = "你好 world<|im_end|>"
  assert tok.decode(tok.encode(s), skip_special=False) == s
  tok.save(str(tmp_path))
  assert load_tokenizer(str(tmp_path)).encode(s) == tok.encode(s)


def test_unknown_language_names_the_supported_ones():
  with pytest.raises(ValueError, match="en, ja, ko, yue, zh"):
    prompts.task_prompt(language="xx")
