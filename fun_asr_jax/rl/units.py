"""Token ids -> scoring units (Latin words, CJK characters), in-graph.

GRPO scores sampled hypotheses inside the jitted step, so the host's
`decode -> normalize -> mixed_units` chain is rebuilt from two tables precomputed from the
vocabulary:

    token_bytes [V, L]   each token's UTF-8 bytes (-1 padded; special tokens are empty)
    char_map   [65536, E] each BMP code point after NFKC + lower case + punctuation to
                          space (32), up to E output characters (-1 padded)

and run per sequence as: bytes -> UTF-8 decode -> char_map -> word runs hashed to one
int32 per unit (a CJK character is its own unit). Units compare equal exactly when the host
units are equal (up to 2^-32 hash collisions). Known differences from the host path:
NFKC expansions longer than E characters are cut; invalid UTF-8 becomes a space (the host
gets U+FFFD, which normalisation also turns into a space); tokens longer than L bytes are
cut; code points beyond the BMP are word characters.
"""

import dataclasses
import functools
import unicodedata

import jax
import jax.numpy as jnp
import numpy as np


SPACE = 32
_HASH_MUL = np.uint32(1000003)
_CJK_MARK = np.uint32(0x9E3779B9)
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x3040, 0x30FF),
               (0xAC00, 0xD7AF))  # the ranges `normalize` treats as CJK


@dataclasses.dataclass(frozen=True)
class UnitTables:
  token_bytes: np.ndarray  # [V, L] int32
  char_map: np.ndarray  # [65536, E] int32

  def as_arrays(self):
    return {"token_bytes": jnp.asarray(self.token_bytes), "char_map": jnp.asarray(self.char_map)}


# -- host: tables ---------------------------------------------------------------------------
def _bytes_of_tokens(tokenizer) -> list[bytes]:
  """Each token id's contribution to decoded text, as bytes."""
  if hasattr(tokenizer, "sp"):  # sentencepiece
    sp, out = tokenizer.sp, []
    special = getattr(tokenizer, "_special", set())
    for i in range(sp.get_piece_size()):
      piece = sp.id_to_piece(i)
      if i in special or sp.is_control(i) or sp.is_unknown(i):
        out.append(b"")
      elif sp.is_byte(i):
        out.append(bytes([int(piece[3:5], 16)]))
      else:
        out.append(piece.replace("\u2581", " ").encode("utf-8"))
    return out
  hf = tokenizer.hf
  special = {t.content for t in hf.get_added_tokens_decoder().values() if t.special}
  byte_level = type(hf.decoder).__name__ == "ByteLevel"
  alphabet = {c: b for b, c in enumerate(_gpt2_byte_chars())} if byte_level else {}
  out = []
  for i in range(hf.get_vocab_size(with_added_tokens=True)):
    tok = hf.id_to_token(i)
    if tok is None or tok in special:
      out.append(b"")
    elif byte_level and all(c in alphabet for c in tok):
      out.append(bytes(alphabet[c] for c in tok))
    else:
      out.append(hf.decode([i], skip_special_tokens=True).encode("utf-8"))
  return out


def _gpt2_byte_chars() -> list[str]:
  """The byte -> printable character table of byte-level BPE (index = byte)."""
  keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
  chars, extra = {}, 0
  for b in range(256):
    if b in keep:
      chars[b] = chr(b)
    else:
      chars[b] = chr(256 + extra)
      extra += 1
  return [chars[b] for b in range(256)]


def _normalized_char(cp: int) -> list[int]:
  """What `normalize` makes of one code point: characters, with 32 for a boundary."""
  out = []
  for ch in unicodedata.normalize("NFKC", chr(cp)).lower():
    if ch == "'":
      continue
    cat = unicodedata.category(ch)
    out.append(SPACE if ch.isspace() or cat[0] in "PS" or cat in ("Cc", "Cs", "Zl", "Zp")
               else ord(ch))
  return out


MAX_TOKEN_BYTES = 48  # token_bytes width cap (longer tokens are cut)
EXPANSION = 4  # char_map width: units one character may expand to


def build_tables(tokenizer, max_token_bytes: int = MAX_TOKEN_BYTES,
                 expansion: int = EXPANSION) -> UnitTables:
  """The two lookup tables for `tokenizer` (host, once per run)."""
  toks = _bytes_of_tokens(tokenizer)
  width = max(1, min(max_token_bytes, max(len(b) for b in toks)))
  token_bytes = np.full((len(toks), width), -1, np.int32)
  for i, b in enumerate(toks):
    token_bytes[i, : min(len(b), width)] = list(b[:width])
  return UnitTables(token_bytes, _char_map(expansion))


@functools.lru_cache(maxsize=2)
def _char_map(expansion: int) -> np.ndarray:
  out = np.full((65536, expansion), -1, np.int32)
  for cp in range(65536):
    chars = _normalized_char(cp)[:expansion]
    out[cp, : len(chars)] = chars
  out.setflags(write=False)
  return out


# -- device: tokens -> units ----------------------------------------------------------------
def compact(values, valid, width: int):
  """Moves the valid entries of each row to the front: `[N, M] -> [N, width]`, count `[N]`."""
  n = values.shape[0]
  pos = jnp.cumsum(valid, axis=1) - 1
  dest = jnp.where(valid, pos, width)  # invalid or past `width` -> dropped
  out = jnp.full((n, width), -1, values.dtype)
  out = out.at[jnp.arange(n)[:, None], dest].set(values, mode="drop")
  return out, jnp.minimum(jnp.sum(valid, axis=1), width).astype(jnp.int32)


def _shift(x, k):
  """x[:, i + k] with -1 past the end."""
  m = x.shape[1]
  return jnp.concatenate([x, jnp.full((x.shape[0], k), -1, x.dtype)], axis=1)[:, k:k + m]


def utf8_decode(b):
  """Byte rows `[N, M]` (-1 = none) -> code points `[N, M]` (-1 = no character here).

  A valid sequence yields its code point at its lead byte; its continuation bytes yield
  nothing; an invalid byte yields a space (a replacement character's normalised form).
  """
  cont = lambda x: (x >= 0) & ((x & 0xC0) == 0x80)
  b1, b2, b3 = _shift(b, 1), _shift(b, 2), _shift(b, 3)
  n1 = (b >= 0) & (b < 0x80)
  n2 = (b >= 0xC2) & (b <= 0xDF) & cont(b1)
  n3 = (b >= 0xE0) & (b <= 0xEF) & cont(b1) & cont(b2)
  n4 = (b >= 0xF0) & (b <= 0xF4) & cont(b1) & cont(b2) & cont(b3)
  size = jnp.where(n1, 1, jnp.where(n2, 2, jnp.where(n3, 3, jnp.where(n4, 4, 0))))
  prev = lambda x, k: jnp.concatenate([jnp.zeros((x.shape[0], k), x.dtype), x],
                                      1)[:, :x.shape[1]]
  consumed = (prev(size, 1) >= 2) | (prev(size, 2) >= 3) | (prev(size, 3) >= 4)
  cp = jnp.where(n1, b, 0)
  cp = jnp.where(n2, ((b & 0x1F) << 6) | (b1 & 0x3F), cp)
  cp = jnp.where(n3, ((b & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F), cp)
  cp = jnp.where(n4, ((b & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6)
                 | (b3 & 0x3F), cp)
  invalid = (b >= 0) & (size == 0) & ~consumed
  return jnp.where(size > 0, cp, jnp.where(invalid, SPACE, -1))


def _is_cjk(cp):
  out = jnp.zeros(cp.shape, bool)
  for lo, hi in _CJK_RANGES:
    out = out | ((cp >= lo) & (cp <= hi))
  return out


def units(tokens, lengths, tables: dict, max_units: int):
  """Token rows `[N, T]` (first `lengths` valid) -> unit hashes `[N, max_units]`, counts `[N]`.

  Hashes are uint32 stored as int32; -1 pads (a real unit can hash to -1 only by a 2^-32
  chance, and padding is tracked by the counts anyway).
  """
  n, t = tokens.shape
  tb = tables["token_bytes"]
  valid_tok = jnp.arange(t)[None] < lengths[:, None]
  byts = jnp.where(valid_tok[..., None], tb[jnp.clip(tokens, 0, tb.shape[0] - 1)], -1)
  byts = byts.reshape(n, -1)  # [N, T * L]
  byts, _ = compact(byts, byts >= 0, byts.shape[1])
  cps = utf8_decode(byts)  # [N, M]
  cm = tables["char_map"]
  mapped = jnp.where((cps >= 0)[..., None] & (cps < cm.shape[0])[..., None],
                     cm[jnp.clip(cps, 0, cm.shape[0] - 1)], -1)  # [N, M, E]
  big = jnp.concatenate([cps[..., None], jnp.full(mapped.shape[:-1] + (mapped.shape[-1] - 1,),
                                                  -1, cps.dtype)], -1)
  mapped = jnp.where((cps >= cm.shape[0])[..., None], big, mapped).reshape(n, -1)
  chars, count = compact(mapped, mapped >= 0, min(mapped.shape[1], max(4 * max_units, 16)))
  in_row = jnp.arange(chars.shape[1])[None] < count[:, None]
  cjk = _is_cjk(chars) & in_row
  word = (chars >= 0) & (chars != SPACE) & ~cjk & in_row
  prev_word = jnp.concatenate([jnp.zeros((n, 1), bool), word[:, :-1]], 1)
  next_word = jnp.concatenate([word[:, 1:], jnp.zeros((n, 1), bool)], 1)
  # word hash h_i = a_i h_{i-1} + c_i (mod 2^32): a linear recurrence, so an associative scan
  a = jnp.where(word & prev_word, _HASH_MUL, np.uint32(0)).astype(jnp.uint32)
  c = jnp.where(word, chars, 0).astype(jnp.uint32)
  combine = lambda x, y: (x[0] * y[0], x[1] * y[0] + y[1])
  _, h = jax.lax.associative_scan(combine, (a, c), axis=1)
  h = jnp.where(cjk, chars.astype(jnp.uint32) ^ _CJK_MARK, h)
  ends = cjk | (word & ~next_word)
  out, num = compact(jax.lax.bitcast_convert_type(h, jnp.int32), ends, max_units)
  return out, num, {"cjk": jnp.sum(ends & cjk, 1), "latin": jnp.sum(ends & word, 1)}


def edit_distance(a, a_len, b, b_len):
  """Levenshtein distance between unit rows `a [N, U]` and `b [N, W]` (valid prefixes)."""
  n, w = b.shape
  j = jnp.arange(w + 1)[None].astype(jnp.int32)
  row0 = jnp.broadcast_to(j, (n, w + 1))

  def step(carry, i):
    row, keep = carry
    ai = a[:, i][:, None]
    sub = row[:, :-1] + (ai != b).astype(jnp.int32)
    dele = row[:, 1:] + 1
    best = jnp.minimum(sub, dele)  # [N, W]
    first = (row[:, :1] + 1)
    cand = jnp.concatenate([first, best], 1)  # insertion runs: cummin(cand - j) + j
    new = jax.lax.cummin(cand - j, axis=1) + j
    done = (i + 1) == a_len
    keep = jnp.where(done[:, None], new, keep)
    return (new, keep), None

  (_, keep), _ = jax.lax.scan(step, (row0, row0), jnp.arange(a.shape[1]))
  return jnp.take_along_axis(keep, b_len[:, None], axis=1)[:, 0]

