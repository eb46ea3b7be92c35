"""Manifest rows -> ArrayRecord shards of `schema` records, resumably and in parallel.

Row k goes to shard k mod N (deterministic, balances durations). Each shard is written to
`*.partial` and renamed when complete, with a `*.stats.json` beside it; a rerun skips shards
that are complete, so an interrupted build resumes where it stopped. Every rejected row
(unreadable or missing audio, empty text on a speech clip, absurd duration) lands in
`rejects.jsonl` with its reason; nothing is dropped silently.
"""

import concurrent.futures
import json
import multiprocessing
import os

import numpy as np

from fun_asr_jax.data import schema

SUMMARY = "summary.json"
REJECTS = "rejects.jsonl"


def shard_name(i: int, n: int) -> str:
  return f"data-{i:05d}-of-{n:05d}.array_record"


def shard_paths(folder: str) -> list[str]:
  """The shards listed in a built folder's summary (error if the folder is not built)."""
  summary = os.path.join(folder, SUMMARY)
  if not os.path.exists(summary):
    raise FileNotFoundError(f"{folder}: no {SUMMARY}; build it with "
                            "data_pipelines/build_arrayrecord.py")
  with open(summary) as f:
    names = json.load(f)["shards"]
  paths = [os.path.join(folder, n) for n in names]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise FileNotFoundError(f"{folder}: shard(s) missing: {', '.join(missing[:5])}")
  return paths


def load_row(row: dict, max_seconds: float, min_seconds: float) -> schema.Utterance:
  """Reads and checks one row; raises ValueError with the reason to reject it."""
  import soundfile as sf  # pylint: disable=import-outside-toplevel
  path = row["audio"]
  if not os.path.exists(path):
    raise ValueError(f"audio file {path} does not exist")
  try:
    info = sf.info(path)
    start = int(row.get("start", 0.0) * info.samplerate)
    stop = int(row["end"] * info.samplerate) if "end" in row else None
    audio, rate = sf.read(path, dtype="int16", start=start, stop=stop, always_2d=True)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"unreadable audio {path} ({type(e).__name__}: {e})") from e
  if audio.shape[1] > 1:
    audio = np.round(audio.astype(np.float32).mean(axis=1)).astype(np.int16)
  else:
    audio = audio[:, 0]
  kind = row.get("kind", "speech")
  if kind not in schema.KINDS:
    raise ValueError(f"kind {kind!r} is not one of {schema.KINDS}")
  text = str(row.get("text", "")).strip()
  if not text and kind == "speech":
    raise ValueError("empty text (mark noise-only or silent clips with kind=noise|silence)")
  seconds = len(audio) / rate
  if seconds < min_seconds or seconds > max_seconds:
    raise ValueError(f"duration {seconds:.3f} s is outside [{min_seconds}, {max_seconds}] s")
  hotwords = row.get("hotwords") or []
  if not isinstance(hotwords, list):
    raise ValueError("hotwords must be a list of strings")
  return schema.Utterance(id=row["id"], audio=audio, sample_rate=int(rate), text=text,
                          lang=str(row.get("lang", "")), hotwords=[str(h) for h in hotwords],
                          speaker=str(row.get("speaker", "")), kind=kind)


def write_shard(rows: list[dict], path: str, max_seconds: float, min_seconds: float) -> dict:
  """Writes one shard atomically; returns its stats (with per-row rejects)."""
  from array_record.python.array_record_module import ArrayRecordWriter  # pylint: disable=import-outside-toplevel
  tmp = path + ".partial"
  writer = ArrayRecordWriter(tmp, "group_size:1")
  stats = {"utterances": 0, "seconds": 0.0, "langs": {}, "kinds": {}, "rejects": []}
  try:
    for row in rows:
      try:
        u = load_row(row, max_seconds, min_seconds)
      except ValueError as e:
        stats["rejects"].append({"index": row.get("index"), "id": row.get("id"),
                                 "audio": row.get("audio"), "reason": str(e)})
        continue
      writer.write(schema.encode(u))
      stats["utterances"] += 1
      stats["seconds"] += u.duration
      stats["langs"][u.lang or "?"] = stats["langs"].get(u.lang or "?", 0) + 1
      stats["kinds"][u.kind] = stats["kinds"].get(u.kind, 0) + 1
  finally:
    writer.close()
  os.replace(tmp, path)
  with open(path + ".stats.json", "w") as f:
    json.dump(stats, f)
  return stats


def build(rows: list[dict], rejects: list, output_dir: str, num_shards: int | None = None,
          num_workers: int = 2, max_seconds: float = 60.0, min_seconds: float = 0.05,
          source: str = "") -> dict:
  """Builds (or completes) a shard folder; returns the summary dict (also written)."""
  os.makedirs(output_dir, exist_ok=True)
  n = num_shards or max(1, min(64, len(rows) // 2000 + 1))
  names = [shard_name(i, n) for i in range(n)]
  todo = [i for i, name in enumerate(names)
          if not (os.path.exists(os.path.join(output_dir, name)) and
                  os.path.exists(os.path.join(output_dir, name + ".stats.json")))]
  jobs = {i: [r for k, r in enumerate(rows) if k % n == i] for i in todo}
  if todo:
    if num_workers > 1 and len(todo) > 1:
      ctx = multiprocessing.get_context("spawn")
      with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=ctx) as pool:
        futures = [pool.submit(write_shard, jobs[i], os.path.join(output_dir, names[i]),
                               max_seconds, min_seconds) for i in todo]
        for fut in futures:
          fut.result()
    else:
      for i in todo:
        write_shard(jobs[i], os.path.join(output_dir, names[i]), max_seconds, min_seconds)
  summary = {"source": source, "shards": names, "utterances": 0, "hours": 0.0, "langs": {},
             "kinds": {}, "rejected": 0, "schema_version": schema.VERSION}
  all_rejects = [{"index": i, "id": rid, "reason": reason} for i, rid, reason in rejects]
  for name in names:
    with open(os.path.join(output_dir, name + ".stats.json")) as f:
      st = json.load(f)
    summary["utterances"] += st["utterances"]
    summary["hours"] += st["seconds"] / 3600.0
    for key in ("langs", "kinds"):
      for k, v in st[key].items():
        summary[key][k] = summary[key].get(k, 0) + v
    all_rejects.extend(st["rejects"])
  all_rejects.sort(key=lambda r: (r.get("index") is None, r.get("index") or 0))
  summary["rejected"] = len(all_rejects)
  summary["hours"] = round(summary["hours"], 6)
  with open(os.path.join(output_dir, REJECTS), "w", encoding="utf-8") as f:
    for r in all_rejects:
      f.write(json.dumps(r, ensure_ascii=False) + "\n")
  with open(os.path.join(output_dir, SUMMARY), "w") as f:
    json.dump(summary, f, indent=1, ensure_ascii=False)
  return summary


def build_from_manifest(manifest: str, output_dir: str, **kwargs) -> dict:
  """JSONL manifest or Kaldi data folder -> shards (see `build`)."""
  from fun_asr_jax.data import manifest as manifest_lib  # pylint: disable=import-outside-toplevel
  if os.path.isdir(manifest):
    rows, rejects = manifest_lib.read_kaldi_dir(manifest)
  else:
    rows, rejects = manifest_lib.read_jsonl(manifest)
  return build(rows, rejects, output_dir, source=os.path.abspath(manifest), **kwargs)
