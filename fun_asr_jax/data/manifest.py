"""Reading corpora descriptions: JSONL manifests and Kaldi data folders -> rows.

A row is a dict with `audio` (absolute path), `text`, `id` and optional `lang`, `speaker`,
`hotwords`, `kind`, plus `start`/`end` seconds for Kaldi segments. Problems with a row are
reported as `(row_index, id, reason)` rejects; they never stop the reading.
"""

import json
import os

Reject = tuple[int, str, str]


def read_jsonl(path: str) -> tuple[list[dict], list[Reject]]:
  """JSONL manifest -> (rows, rejects). Audio paths are relative to the manifest's folder."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"manifest {path} does not exist")
  folder = os.path.dirname(os.path.abspath(path))
  rows, rejects = [], []
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        rejects.append((i, f"line{i + 1}", f"{path}:{i + 1}: invalid JSON ({e.msg})"))
        continue
      if not isinstance(row, dict) or "audio" not in row:
        rejects.append((i, f"line{i + 1}", f"{path}:{i + 1}: no 'audio' field"))
        continue
      row = dict(row)
      row.setdefault("id", os.path.splitext(os.path.basename(str(row["audio"])))[0])
      row["id"] = str(row["id"])
      row["audio"] = os.path.join(folder, row["audio"])
      row.setdefault("text", "")
      row["index"] = i
      rows.append(row)
  return rows, rejects


def _read_table(path: str) -> dict[str, str]:
  out = {}
  if not os.path.exists(path):
    return out
  with open(path, encoding="utf-8") as f:
    for line in f:
      parts = line.rstrip("\n").split(maxsplit=1)
      if parts:
        out[parts[0]] = parts[1] if len(parts) > 1 else ""
  return out


def read_kaldi_dir(folder: str) -> tuple[list[dict], list[Reject]]:
  """Kaldi data folder (wav.scp, text, optional segments, utt2spk) -> (rows, rejects)."""
  for required in ("wav.scp", "text"):
    if not os.path.exists(os.path.join(folder, required)):
      raise FileNotFoundError(f"Kaldi folder {folder} has no {required}")
  wavs = _read_table(os.path.join(folder, "wav.scp"))
  texts = _read_table(os.path.join(folder, "text"))
  spk = _read_table(os.path.join(folder, "utt2spk"))
  segments = _read_table(os.path.join(folder, "segments"))
  rows, rejects = [], []

  def wav_path(rec_id):
    value = wavs.get(rec_id)
    if value is None:
      return None, f"recording {rec_id} is not in wav.scp"
    if value.strip().endswith("|"):
      return None, f"wav.scp entry for {rec_id} is a command pipe; convert it to a file first"
    path = value if os.path.isabs(value) else os.path.join(folder, value)
    return path, None

  utts = sorted(segments) if segments else sorted(wavs)
  for i, utt in enumerate(utts):
    row = {"id": utt, "text": texts.get(utt, ""), "speaker": spk.get(utt, ""), "index": i}
    if segments:
      parts = segments[utt].split()
      if len(parts) != 3:
        rejects.append((i, utt, f"segments line for {utt} needs 'recording start end'"))
        continue
      rec, start, end = parts
      path, err = wav_path(rec)
      row.update(start=float(start), end=float(end))
    else:
      path, err = wav_path(utt)
    if err:
      rejects.append((i, utt, err))
      continue
    if utt not in texts:
      rejects.append((i, utt, f"utterance {utt} has no line in text"))
      continue
    row["audio"] = path
    rows.append(row)
  return rows, rejects
